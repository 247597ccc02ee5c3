"""The outbox: local changes waiting for the server, oldest first.

Non-modal, so the rep can keep working while it is open. It refreshes on the bridge's
``outboxChanged`` and re-ages its rows every few seconds. Rows read from the core
(``core.outbox()``), never hold their own copy.
"""

from __future__ import annotations

import logging
import time
from typing import Any

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
        pending = self.core.pending_changes()
        now = time.time()
        names: dict[str, str] = {}
        self.tree.clear()
        # One row per run of updates to the same customer and part (a sentence typed in
        # the notes is one row, "notes (25 edits)"), oldest first.
        runs: list[list[Any]] = []
        for entry in entries:
            if runs and (runs[-1][0].doc_id, runs[-1][0].summary) == (entry.doc_id,
                                                                      entry.summary):
                runs[-1].append(entry)
            else:
                runs.append([entry])
        for run in runs:
            first, last = run[0], run[-1]
            cid = customer_id_of(first.doc_id)
            if cid not in names:
                names[cid] = customer_name(self.core, cid)
            what = first.summary or "changes"
            if len(run) > 1:
                what = f"{what} ({len(run)} edits)"
            item = QTreeWidgetItem([names[cid], what, age_text(now - first.created_at)])
            item.setData(0, _ROLE_CUSTOMER, cid)
            item.setToolTip(2, time.strftime("%Y-%m-%d %H:%M:%S",
                                             time.localtime(first.created_at)))
            attempts = max(e.attempts for e in run)
            if attempts:
                item.setToolTip(1, f"sent {attempts} time(s), not yet confirmed")
            elif last is not first:
                item.setToolTip(1, f"{len(run)} edits, the last at "
                                   f"{time.strftime('%H:%M:%S', time.localtime(last.created_at))}")
            self.tree.addTopLevelItem(item)
        self.summary.setText(
            "Everything is synced." if not entries else
            f"{pending.text()} wait for the server. They are safe on this computer and "
            "are sent as soon as the connection is back."
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
