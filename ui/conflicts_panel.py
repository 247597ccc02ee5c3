"""Open conflicts: where another rep's concurrent change replaced this rep's value.

One row per open conflict (customer, field, mine, theirs, who). The list is read from the
core and refreshed on ``conflictRecorded`` and ``documentChanged`` (a "use mine" is a new
edit); :meth:`ConflictsDock.refresh` may also be called by whoever resolves one.
Clicking a row (or Enter) asks to open the customer, where the rep chooses.
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import (
    QTreeWidgetItem,
    QWidget,
)

from app.core import ClientCore
from app.notifications import field_label

from .bridge import CoreBridge
from .customer_list_dock import ROLE_CUSTOMER, CustomerListDock
from .names import customer_id_of, customer_name

__all__ = ["ConflictsDock", "value_text"]

log = logging.getLogger(__name__)

_COLUMNS = ["Customer", "Field", "Mine", "Theirs", "By"]


def value_text(value: Any) -> str:
    """A field value for a cell ("(empty)" for None or "")."""
    return "(empty)" if value in (None, "") else str(value)


class ConflictsDock(CustomerListDock):
    """A dock listing every open conflict."""

    def __init__(self, core: ClientCore, bridge: CoreBridge,
                 parent: QWidget | None = None) -> None:
        super().__init__(
            core, "Conflicts", "conflictsDock", list_name="Open conflicts", columns=_COLUMNS,
            empty_text="No open conflicts.\nWhen someone changes a field you changed at "
            "the same time, it is listed here.",
            empty_name="No open conflicts", parent=parent,
        )
        self.tree.setRootIsDecorated(False)
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
            item.setData(0, ROLE_CUSTOMER, cid)
            item.setToolTip(0, f"{c.author} changed {field_label(c.field)} while you did; "
                               "open the customer to choose.")
            self.tree.addTopLevelItem(item)
        self.show_list(bool(conflicts))
        title = f"Conflicts ({len(conflicts)})" if conflicts else "Conflicts"
        self.setWindowTitle(title)
        self.toggleViewAction().setText("Conflicts")

    def rows(self) -> list[tuple[str, ...]]:
        """The rows shown, top to bottom (for tests)."""
        items = (self.tree.topLevelItem(i) for i in range(self.tree.topLevelItemCount()))
        return [tuple(item.text(c) for c in range(len(_COLUMNS)))
                for item in items if item is not None]

    def showEvent(self, event: object) -> None:
        """Resolutions that emit no event (keep theirs) show up when the dock reappears."""
        self.refresh()
        super().showEvent(event)  # type: ignore[arg-type]
