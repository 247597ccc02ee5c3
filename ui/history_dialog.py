"""A customer's history: its versions on the server, compared with now, and revert.

The left list shows versions (time, author, what changed), newest first, from
``core.history``. Selecting one loads it (``core.version``) and shows every field side by
side with the current value; rows that differ are marked. "Revert whole customer" and
"Revert this field" call ``core.revert``, which writes the old values as a new change by
this rep (so it syncs, and can itself be reverted). History lives on the server: offline,
the dialog says so and offers to try again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QCloseEvent, QFont, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.core import ClientCore, Version
from app.errors import CoreError, NotSignedIn, ServerUnreachable
from sync.protocol.document import FIELDS
from ui.colors import changed_color
from ui.comments_widget import format_time
from ui.tasks import report_error, spawn

__all__ = ["FIELD_LABELS", "HistoryDialog", "flatten_version"]

log = logging.getLogger(__name__)

#: How people call the fields (shared with the customer form).
FIELD_LABELS = {
    "name": "Name", "email": "E-mail", "phone": "Phone", "street1": "Street",
    "street2": "Street (2)", "city": "City", "state": "State", "zip": "Zip", "tier": "Tier",
}
_OFFLINE = ("History is kept on the server, and Live Edit cannot reach it right now. "
            "Your edits are safe; try again when you are back online.")


def flatten_version(data: dict[str, Any]) -> dict[str, Any]:
    """Field values of a version's JSON (``address`` nested) as one flat mapping."""
    address = data.get("address") or {}
    return {name: address.get(name) if name in address else data.get(name) for name in FIELDS}


def _changes_text(changes: tuple[str, ...]) -> str:
    names = [FIELD_LABELS.get(c, c.capitalize()) for c in changes]
    return ", ".join(names) if names else "No visible change"


class HistoryDialog(QDialog):
    """Versions of one customer, a side-by-side comparison, and revert buttons."""

    def __init__(self, core: ClientCore, customer_id: str,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._core = core
        self._customer = customer_id
        self._versions: list[Version] = []
        self._selected: dict[str, Any] | None = None
        self._jobs: set[asyncio.Task[None]] = set()
        self.setWindowTitle(f"History — {self._title()}")
        self.resize(860, 480)
        self.message = QLabel(self)
        self.versions = QTableWidget(0, 3, self)
        self.compare = QTableWidget(len(FIELDS), 3, self)
        self.revert_all = QPushButton("Revert whole customer", self)
        self.revert_field = QPushButton("Revert this field", self)
        self.retry = QPushButton("Try again", self)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        self._build()
        self._connect()
        self._set_busy("Loading history…")
        self.reload()

    def _title(self) -> str:
        try:
            return self._core.customer(self._customer).fields.get("name") or "customer"
        except CoreError:
            return "customer"

    def _build(self) -> None:
        self.message.setWordWrap(True)
        self._setup_table(self.versions, ("Time", "By", "Changed"))
        self.versions.horizontalHeader().setSectionResizeMode(
            1, QHeaderView.ResizeMode.ResizeToContents)
        self.versions.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self._setup_table(self.compare, ("Field", "That version", "Now"))
        self.compare.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        for row, name in enumerate(FIELDS):
            self.compare.setItem(row, 0, QTableWidgetItem(FIELD_LABELS.get(name, name)))
        self.revert_all.setToolTip("Bring back every field as it was in the selected version")
        self.revert_field.setToolTip("Bring back only the selected field")
        self.retry.hide()
        splitter = QSplitter(Qt.Orientation.Horizontal, self)
        splitter.addWidget(self.versions)
        splitter.addWidget(self.compare)
        splitter.setSizes([340, 520])
        actions = QHBoxLayout()
        actions.addWidget(self.retry)
        actions.addStretch(1)
        actions.addWidget(self.revert_field)
        actions.addWidget(self.revert_all)
        actions.addWidget(self.buttons)
        layout = QVBoxLayout(self)
        layout.addWidget(self.message)
        layout.addWidget(splitter, 1)
        layout.addLayout(actions)

    @staticmethod
    def _setup_table(table: QTableWidget, headers: tuple[str, ...]) -> None:
        table.setHorizontalHeaderLabels(list(headers))
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.verticalHeader().hide()
        table.setShowGrid(False)
        table.setWordWrap(False)
        table.horizontalHeader().setStretchLastSection(True)
        header = table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        for column in range(1, len(headers)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Stretch)

    def _connect(self) -> None:
        self.buttons.rejected.connect(self.reject)
        self.retry.clicked.connect(self.reload)
        self.versions.itemSelectionChanged.connect(self._on_version_selected)
        self.compare.itemSelectionChanged.connect(self._update_buttons)
        self.revert_all.clicked.connect(lambda: self._revert(None))
        self.revert_field.clicked.connect(self._revert_selected_field)

    # --- public API --------------------------------------------------------------------

    def reload(self) -> None:
        """Fetch the versions from the server again."""
        self._spawn(self._load_versions(), "load history")

    def selected_seq(self) -> int | None:
        """The selected version's sequence number."""
        rows = self.versions.selectionModel().selectedRows()
        return self._versions[rows[0].row()].seq if rows else None

    def select_version(self, row: int) -> None:
        """Select a version by its row (0: the newest)."""
        self.versions.selectRow(row)

    def select_field(self, name: str) -> None:
        """Select a field's row in the comparison."""
        self.compare.selectRow(list(FIELDS).index(name))

    def loaded_version(self) -> dict[str, Any] | None:
        """The flat field values of the version shown, once loaded."""
        return self._selected

    def done(self, result: int) -> None:
        """Closing stops loads still on their way (they would update a closed dialog)."""
        for job in list(self._jobs):
            job.cancel()
        super().done(result)

    def closeEvent(self, event: QCloseEvent) -> None:
        """Closing the window is closing the dialog."""
        for job in list(self._jobs):
            job.cancel()
        super().closeEvent(event)

    def _spawn(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        job = spawn(coro, what=what)
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)

    # --- loading -----------------------------------------------------------------------

    async def _load_versions(self) -> None:
        self.retry.hide()
        try:
            versions = await self._core.history(self._customer)
        except (ServerUnreachable, NotSignedIn):
            self._set_offline()
            return
        keep = self.selected_seq()
        self.versions.blockSignals(True)
        self._versions = versions
        self.versions.setRowCount(len(versions))
        for row, version in enumerate(versions):
            cells = (format_time(version.time), version.author or "someone",
                     _changes_text(version.changes))
            for column, text in enumerate(cells):
                self.versions.setItem(row, column, QTableWidgetItem(text))
        self.versions.blockSignals(False)
        seqs = [v.seq for v in versions]
        if keep in seqs:
            self.versions.selectRow(seqs.index(keep))
        self.message.setText(
            "Pick a version to compare it with now. Reverting writes the old values as a new "
            "change, so nothing is lost." if versions else "This customer has no history yet.")
        self._update_buttons()

    def _on_version_selected(self) -> None:
        seq = self.selected_seq()
        self._selected = None
        self._update_buttons()
        if seq is not None:
            self._spawn(self._load_version(seq), "load version")

    async def _load_version(self, seq: int) -> None:
        try:
            data = await self._core.version(self._customer, seq)
        except (ServerUnreachable, NotSignedIn):
            self._set_offline()
            return
        if seq != self.selected_seq():
            return  # the rep picked another version meanwhile
        self._selected = flatten_version(data)
        self._show_comparison()

    def _show_comparison(self) -> None:
        old = self._selected or {}
        now = self._core.customer(self._customer).fields
        marked = QBrush(changed_color(self.palette()))
        plain = QBrush(self.palette().color(QPalette.ColorRole.Base))
        for row, name in enumerate(FIELDS):
            differs = old.get(name) != now.get(name)
            label = self.compare.item(row, 0)
            if label is None:  # re-inserting an item the table owns is an error in Qt
                label = QTableWidgetItem()
                self.compare.setItem(row, 0, label)
            label.setText(("● " if differs else "") + FIELD_LABELS.get(name, name))
            font = QFont(self.font())
            font.setBold(differs)
            label.setFont(font)
            for column, value in ((1, old.get(name)), (2, now.get(name))):
                shown = value.capitalize() if name == "tier" and value else value
                item = QTableWidgetItem(shown if shown else "—")
                item.setToolTip(shown or "")
                if not value:
                    item.setForeground(self.palette().color(QPalette.ColorRole.PlaceholderText))
                self.compare.setItem(row, column, item)
            for column in range(3):
                cell = self.compare.item(row, column)
                if cell is not None:
                    cell.setBackground(marked if differs else plain)
        self._update_buttons()

    # --- reverting ---------------------------------------------------------------------

    def _revert_selected_field(self) -> None:
        rows = self.compare.selectionModel().selectedRows()
        if rows:
            self._revert(list(FIELDS)[rows[0].row()])

    def _revert(self, field: str | None) -> None:
        seq = self.selected_seq()
        if seq is not None:
            self._spawn(self._do_revert(seq, field), "revert")

    async def _do_revert(self, seq: int, field: str | None) -> None:
        self._set_busy("Reverting…")
        try:
            await self._core.revert(self._customer, seq, field)
        except (ServerUnreachable, NotSignedIn):
            self._set_offline()
            return
        except CoreError as exc:
            report_error(str(exc))
        what = FIELD_LABELS.get(field, field) if field else "The customer"
        self._show_comparison()
        self.message.setText(f"{what} is back to how it was in that version.")
        await self._load_versions()
        self.message.setText(f"{what} is back to how it was in that version.")

    # --- state ---------------------------------------------------------------------------

    def _set_busy(self, text: str) -> None:
        self.message.setText(text)
        self.revert_all.setEnabled(False)
        self.revert_field.setEnabled(False)

    def _set_offline(self) -> None:
        self.message.setText(_OFFLINE)
        self.retry.show()
        self._update_buttons()

    def is_offline(self) -> bool:
        """True when the dialog is showing that the server cannot be reached."""
        return self.message.text() == _OFFLINE

    def _update_buttons(self) -> None:
        loaded = self._selected is not None
        self.revert_all.setEnabled(loaded)
        self.revert_field.setEnabled(
            loaded and bool(self.compare.selectionModel().selectedRows()))
