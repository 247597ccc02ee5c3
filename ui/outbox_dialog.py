"""The outbox: local changes waiting for the server, oldest first.

Non-modal, so the rep can keep working while it is open. It refreshes on the bridge's
``outboxChanged`` and re-ages its rows every few seconds. Rows read from the core
(``core.outbox()``), never hold their own copy.
"""

from __future__ import annotations

import logging
import time

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.core import ClientCore

from .bridge import CoreBridge
from .names import customer_id_of, customer_name

__all__ = ["OutboxDialog", "age_text"]

log = logging.getLogger(__name__)

_AGE_REFRESH_MS = 5000
_ROLE_CUSTOMER = Qt.ItemDataRole.UserRole


def age_text(seconds: float) -> str:
    """ "just now", "5 min", "3 h", "2 days"."""
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h"
    days = int(seconds // 86400)
    return f"{days} day{'s' if days != 1 else ''}"


class OutboxDialog(QDialog):
    """Pending changes (customer, what changed, how long it has waited)."""

    #: The rep activated a row: open that customer.
    customerRequested = Signal(str)

    def __init__(self, core: ClientCore, bridge: CoreBridge,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.core = core
        self.setWindowTitle("Changes waiting to sync")
        self.setAccessibleName("Changes waiting to sync")
        self.resize(560, 360)
        self.summary = QLabel()
        self.summary.setAccessibleName("Outbox summary")
        self.summary.setWordWrap(True)
        self.tree = QTreeWidget()
        self.tree.setAccessibleName("Pending changes, oldest first")
        self.tree.setHeaderLabels(["Customer", "What changed", "Waiting"])
        self.tree.setRootIsDecorated(False)
        self.tree.setUniformRowHeights(True)
        self.tree.setColumnWidth(0, 200)
        self.tree.setColumnWidth(1, 220)
        self.tree.itemActivated.connect(self._activated)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        buttons.button(QDialogButtonBox.StandardButton.Close).setAccessibleName("Close")
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self.tree)
        layout.addWidget(buttons)
        self._ages = QTimer(self)
        self._ages.setInterval(_AGE_REFRESH_MS)
        self._ages.timeout.connect(self.refresh)
        bridge.outboxChanged.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        """Reload the rows from the core's outbox."""
        if self.core.closed:  # a timer that outlived the session
            return
        entries = self.core.outbox()
        now = time.time()
        names: dict[str, str] = {}
        self.tree.clear()
        for entry in entries:
            cid = customer_id_of(entry.doc_id)
            if cid not in names:
                names[cid] = customer_name(self.core, cid)
            item = QTreeWidgetItem([names[cid], entry.summary or "changes",
                                    age_text(now - entry.created_at)])
            item.setData(0, _ROLE_CUSTOMER, cid)
            item.setToolTip(2, time.strftime("%Y-%m-%d %H:%M:%S",
                                             time.localtime(entry.created_at)))
            if entry.attempts:
                item.setToolTip(1, f"sent {entry.attempts} time(s), not yet confirmed")
            self.tree.addTopLevelItem(item)
        self.summary.setText(
            "Everything is synced." if not entries else
            f"{len(entries):,} change{'s' if len(entries) != 1 else ''} on this computer "
            "wait for the server. They are safe here and are sent as soon as the "
            "connection is back."
        )

    def rows(self) -> list[tuple[str, str, str]]:
        """The rows shown, top to bottom (for tests)."""
        out = []
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            if item is None:
                continue
            out.append((item.text(0), item.text(1), item.text(2)))
        return out

    def _activated(self, item: QTreeWidgetItem) -> None:
        cid = item.data(0, _ROLE_CUSTOMER)
        if cid:
            self.customerRequested.emit(cid)

    def showEvent(self, event: object) -> None:
        """Age the rows while visible only."""
        self.refresh()
        self._ages.start()
        super().showEvent(event)  # type: ignore[arg-type]

    def hideEvent(self, event: object) -> None:
        """Stop ageing while hidden."""
        self._ages.stop()
        super().hideEvent(event)  # type: ignore[arg-type]
