"""The activity feed: what other reps did to the customers this rep follows, newest first.

Which notifications are shown is :class:`app.activity.ActivityFeed`'s rule: other reps'
changes (fields, notes, tasks, comments) to customers this rep opened or edited, and the
customers they create, delete or restore — never "opened"/"closed", never this rep's own
edits. Rows replayed after a reconnect (changes made while this rep was away) are gathered
under a "While you were offline" group, which sits where its time puts it: newer live rows
go above it. Unread rows are bold and counted in the dock's title ("Activity (3)");
opening a row (click or Enter) marks it read and asks to open that customer through
:attr:`ActivityDock.customerRequested`; "Mark all read" (context menu) clears the count.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QFont
from PySide6.QtWidgets import QTreeWidgetItem, QWidget

from app.activity import ActivityFeed
from app.core import ClientCore
from app.notifications import describe

from .bridge import CoreBridge
from .customer_list_dock import ROLE_CUSTOMER, CustomerListDock
from .names import customer_id_of

__all__ = ["OFFLINE_GROUP", "ActivityDock"]

log = logging.getLogger(__name__)

OFFLINE_GROUP = "While you were offline"
#: How many stored notifications the feed starts with.
_INITIAL = 100
#: The feed never grows beyond this many rows (oldest go first).
_MAX_ROWS = 500
#: Item data role holding a row's notification seq.
ROLE_SEQ = Qt.ItemDataRole.UserRole + 1


def _doc_of(notification: Any) -> str:
    return str(getattr(notification, "doc", None) or getattr(notification, "doc_id", ""))


def _when(timestamp: float) -> str:
    local = time.localtime(timestamp)
    if time.strftime("%Y%m%d", local) == time.strftime("%Y%m%d"):
        return time.strftime("%H:%M", local)
    return time.strftime("%d %b %H:%M", local)


class ActivityDock(CustomerListDock):
    """A dock with the activity feed; ``feed`` holds the rules (shared with tray notices)."""

    def __init__(self, core: ClientCore, bridge: CoreBridge,
                 parent: QWidget | None = None) -> None:
        super().__init__(
            core, "Activity", "activityDock", list_name="Activity feed, newest first",
            columns=["What happened", "When"],
            empty_text="Nothing yet. Other reps' changes to\ncustomers you opened "
            "or edited show here.",
            empty_name="No activity yet", parent=parent,
        )
        self.feed = ActivityFeed(core)
        self.tree.setWordWrap(False)
        self.tree.setRootIsDecorated(True)
        self._seen: set[int] = set()
        self._unread: set[int] = set()
        self._group: QTreeWidgetItem | None = None
        self.tree.itemClicked.connect(self._read)
        self.tree.itemActivated.connect(self._read)
        self._load()
        bridge.notificationsArrived.connect(self.add)
        feed = self.feed
        self.destroyed.connect(lambda *_: feed.close())
        mark = QAction("Mark all read", self.tree)
        mark.triggered.connect(self.mark_all_read)
        self.tree.addAction(mark)
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)

    def _load(self) -> None:
        """Start with the stored rows (newest first)."""
        for n in reversed(self.feed.recent(limit=_INITIAL)):
            self._insert(n, None)
        self._show_feed()

    def _show_feed(self) -> None:
        self.show_list(bool(self.tree.topLevelItemCount()))
        count = len(self._unread)
        self.setWindowTitle(f"Activity ({count})" if count else "Activity")
        self.toggleViewAction().setText("&Activity")

    def add(self, items: Any, offline: bool) -> None:
        """New notifications (live, or replayed after a reconnect when ``offline``)."""
        ordered = sorted(self.feed.select(items), key=lambda n: n.seq)
        group = self._offline_group() if offline and ordered else None
        for n in ordered:
            self._insert(n, group)
        if group is not None:
            group.setText(0, f"{OFFLINE_GROUP} ({group.childCount()})")
        self._trim()
        self._show_feed()

    def _offline_group(self) -> QTreeWidgetItem:
        """The group for a replay: at the top now (older live rows stay below it)."""
        group = self._group
        if group is None:
            group = QTreeWidgetItem([OFFLINE_GROUP, ""])
            font = QFont(group.font(0))
            font.setBold(True)
            group.setFont(0, font)
            group.setFlags(Qt.ItemFlag.ItemIsEnabled)
            self._group = group
        else:
            index = self.tree.indexOfTopLevelItem(group)
            if index > 0:
                self.tree.takeTopLevelItem(index)
        if self.tree.indexOfTopLevelItem(group) < 0:
            self.tree.insertTopLevelItem(0, group)
        group.setExpanded(True)
        return group

    def _insert(self, n: Any, group: QTreeWidgetItem | None) -> None:
        if n.seq in self._seen:
            return
        self._seen.add(n.seq)
        text = describe(n)
        item = QTreeWidgetItem([text, _when(n.time)])
        item.setData(0, ROLE_CUSTOMER, customer_id_of(_doc_of(n)))
        item.setData(0, ROLE_SEQ, n.seq)
        item.setToolTip(0, text)
        item.setToolTip(1, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(n.time)))
        if not getattr(n, "read", False):
            self._unread.add(n.seq)
            self._set_bold(item, True)
        if group is not None:
            group.insertChild(0, item)
        else:
            self.tree.insertTopLevelItem(0, item)  # newest on top, above any group

    @staticmethod
    def _set_bold(item: QTreeWidgetItem, bold: bool) -> None:
        font = QFont(item.font(0))
        font.setBold(bold)
        item.setFont(0, font)

    def _read(self, item: QTreeWidgetItem) -> None:
        seq = item.data(0, ROLE_SEQ)
        if seq is None or seq not in self._unread:
            return
        self._unread.discard(seq)
        self._set_bold(item, False)
        self.feed.mark_read([seq])
        self._show_feed()

    def mark_all_read(self) -> None:
        """Every row read (the count goes)."""
        self.feed.mark_read(sorted(self._unread))
        self._unread.clear()
        for item in self._items():
            self._set_bold(item, False)
        self._show_feed()

    def _items(self) -> list[QTreeWidgetItem]:
        out = []
        for i in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(i)
            if top is None:
                continue
            out.append(top)
            out += [c for c in (top.child(j) for j in range(top.childCount())) if c]
        return out

    def _trim(self) -> None:
        while self.tree.topLevelItemCount() > _MAX_ROWS:
            item = self.tree.takeTopLevelItem(self.tree.topLevelItemCount() - 1)
            if item is self._group:
                self._group = None
            if item is not None:
                self._unread.discard(item.data(0, ROLE_SEQ))

    # --- reading (also for tests) ------------------------------------------------------

    def unread(self) -> int:
        """How many rows are unread."""
        return len(self._unread)

    def texts(self) -> list[str]:
        """The top-level rows' texts, top to bottom (the group shows its title)."""
        items = (self.tree.topLevelItem(i) for i in range(self.tree.topLevelItemCount()))
        return [item.text(0) for item in items if item is not None]

    def offline_texts(self) -> list[str]:
        """The rows under "While you were offline", newest first."""
        if self._group is None:
            return []
        items = (self._group.child(i) for i in range(self._group.childCount()))
        return [item.text(0) for item in items if item is not None]
