"""The activity feed: what other reps did, in plain words, newest first.

Live notifications go at the top of the list. Those replayed after a reconnect (changes
made while this rep was away) are gathered under a "While you were offline" group at the
top. Clicking a row (or Enter) asks to open that customer through
:attr:`ActivityDock.customerRequested`; the main window connects it to the customer view.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QTreeWidgetItem,
    QWidget,
)

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


def _doc_of(notification: Any) -> str:
    return str(getattr(notification, "doc", None) or getattr(notification, "doc_id", ""))


def _when(timestamp: float) -> str:
    local = time.localtime(timestamp)
    if time.strftime("%Y%m%d", local) == time.strftime("%Y%m%d"):
        return time.strftime("%H:%M", local)
    return time.strftime("%d %b %H:%M", local)


class ActivityDock(CustomerListDock):
    """A dock with the notification feed."""

    def __init__(self, core: ClientCore, bridge: CoreBridge,
                 parent: QWidget | None = None) -> None:
        super().__init__(
            core, "Activity", "activityDock", list_name="Activity feed, newest first",
            columns=["What happened", "When"],
            empty_text="Nothing yet.\nWhat other reps do on customers appears here.",
            empty_name="No activity yet", parent=parent,
        )
        self.tree.setWordWrap(False)
        self.tree.setRootIsDecorated(True)
        self._seen: set[int] = set()
        self._group: QTreeWidgetItem | None = None
        self._load()
        bridge.notificationsArrived.connect(self.add)

    def _load(self) -> None:
        """Start with the stored notifications (newest first)."""
        for n in reversed(self.core.notifications(limit=_INITIAL)):
            self._insert(n, None)
        self._show_feed()

    def _show_feed(self) -> None:
        self.show_list(bool(self.tree.topLevelItemCount()))

    def add(self, items: Any, offline: bool) -> None:
        """New notifications (live, or replayed after a reconnect when ``offline``)."""
        ordered = sorted(items, key=lambda n: n.seq)
        group = self._offline_group() if offline and ordered else None
        for n in ordered:
            self._insert(n, group)
        if group is not None:
            group.setText(0, f"{OFFLINE_GROUP} ({group.childCount()})")
        self._trim()
        self._show_feed()

    def _offline_group(self) -> QTreeWidgetItem:
        if self._group is None:
            group = QTreeWidgetItem([OFFLINE_GROUP, ""])
            font = QFont(group.font(0))
            font.setBold(True)
            group.setFont(0, font)
            group.setFlags(Qt.ItemFlag.ItemIsEnabled)
            self.tree.insertTopLevelItem(0, group)
            group.setExpanded(True)
            self._group = group
        return self._group

    def _insert(self, n: Any, group: QTreeWidgetItem | None) -> None:
        if n.seq in self._seen:
            return
        self._seen.add(n.seq)
        text = describe(n)
        item = QTreeWidgetItem([text, _when(n.time)])
        item.setData(0, ROLE_CUSTOMER, customer_id_of(_doc_of(n)))
        item.setToolTip(0, text)
        item.setToolTip(1, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(n.time)))
        if group is not None:
            group.insertChild(0, item)
        else:
            self.tree.insertTopLevelItem(1 if self._group is not None else 0, item)

    def _trim(self) -> None:
        while self.tree.topLevelItemCount() > _MAX_ROWS:
            self.tree.takeTopLevelItem(self.tree.topLevelItemCount() - 1)

    # --- reading (also for tests) ------------------------------------------------------

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
