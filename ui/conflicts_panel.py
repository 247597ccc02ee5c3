"""Open conflicts: where another rep's concurrent change replaced this rep's value.

One row per open conflict (customer, field, mine, theirs, who). The list is read from the
core and refreshed on ``conflictRecorded`` and ``documentChanged`` (a "use mine" is a new
edit); :meth:`ConflictsDock.refresh` may also be called by whoever resolves one.
Clicking a row (or Enter) asks to open the customer, where the rep chooses.
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QDockWidget,
    QHeaderView,
    QLabel,
    QStackedWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QWidget,
)

from app.core import ClientCore
from app.notifications import field_label

from .bridge import CoreBridge
from .names import customer_id_of, customer_name

__all__ = ["ConflictsDock", "value_text"]

log = logging.getLogger(__name__)

_ROLE_CUSTOMER = Qt.ItemDataRole.UserRole
_COLUMNS = ["Customer", "Field", "Mine", "Theirs", "By"]


def value_text(value: Any) -> str:
    """A field value for a cell ("(empty)" for None or "")."""
    return "(empty)" if value in (None, "") else str(value)


class ConflictsDock(QDockWidget):
    """A dock listing every open conflict."""

    #: Open this customer (customer id).
    customerRequested = Signal(str)

    def __init__(self, core: ClientCore, bridge: CoreBridge,
                 parent: QWidget | None = None) -> None:
        super().__init__("Conflicts", parent)
        self.core = core
        self.setObjectName("conflictsDock")
        self.setAccessibleName("Conflicts")
        self.tree = QTreeWidget()
        self.tree.setAccessibleName("Open conflicts")
        self.tree.setHeaderLabels(_COLUMNS)
        self.tree.setRootIsDecorated(False)
        self.tree.setUniformRowHeights(True)
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.empty = QLabel("No open conflicts.\nWhen someone changes a field you changed at "
                            "the same time, it is listed here.")
        self.empty.setAccessibleName("No open conflicts")
        self.empty.setWordWrap(True)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setEnabled(False)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.empty)
        self.stack.addWidget(self.tree)
        self.tree.itemClicked.connect(self._open)
        self.tree.itemActivated.connect(self._open)
        self.setWidget(self.stack)
        # Coalesce bursts (a sync brings many document changes) into one reload.
        self._later = QTimer(self)
        self._later.setSingleShot(True)
        self._later.setInterval(100)
        self._later.timeout.connect(self.refresh)
        bridge.conflictRecorded.connect(self._later.start)
        bridge.conflictResolved.connect(self._later.start)
        bridge.documentChanged.connect(self._later.start)
        self.refresh()

    def refresh(self) -> None:
        """Reload the open conflicts from the core."""
        if self.core.closed:  # a timer that outlived the session
            return
        conflicts = self.core.conflicts()
        self.tree.clear()
        for c in conflicts:
            cid = customer_id_of(c.doc_id)
            item = QTreeWidgetItem([customer_name(self.core, cid), field_label(c.field),
                                    value_text(c.mine), value_text(c.theirs), c.author])
            item.setData(0, _ROLE_CUSTOMER, cid)
            item.setToolTip(0, f"{c.author} changed {field_label(c.field)} while you did; "
                               "open the customer to choose.")
            self.tree.addTopLevelItem(item)
        self.stack.setCurrentWidget(self.tree if conflicts else self.empty)
        title = f"Conflicts ({len(conflicts)})" if conflicts else "Conflicts"
        self.setWindowTitle(title)
        self.toggleViewAction().setText("Conflicts")

    def rows(self) -> list[tuple[str, ...]]:
        """The rows shown, top to bottom (for tests)."""
        items = (self.tree.topLevelItem(i) for i in range(self.tree.topLevelItemCount()))
        return [tuple(item.text(c) for c in range(len(_COLUMNS)))
                for item in items if item is not None]

    def _open(self, item: QTreeWidgetItem) -> None:
        cid = item.data(0, _ROLE_CUSTOMER)
        if cid:
            self.customerRequested.emit(cid)

    def showEvent(self, event: object) -> None:
        """Resolutions that emit no event (keep theirs) show up when the dock reappears."""
        self.refresh()
        super().showEvent(event)  # type: ignore[arg-type]
