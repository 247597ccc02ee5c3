"""A customer's history: its versions on the server, compared with now, and revert.

The left list shows versions (time, author, what changed), newest first, from
``core.history``. Entries that changed the notes or tasks say how (a word diff, task by
task: :mod:`ui.version_diff`), filled in as the versions arrive. Selecting one loads it
(``core.version``) and shows every field side by side with the current value; rows that
differ are marked, and what that version changed is listed below. "Revert whole customer"
first shows what the revert will change (fields, notes, tasks; comments stay) in a
:class:`~ui.revert_preview.RevertPreviewDialog`, and reverts only when the rep confirms;
"Revert this field" reverts at once. Both call ``core.revert``, which writes the old values
as a new change by this rep (so it syncs, and can itself be reverted). History lives on
the server: offline, the dialog says so and offers to try again. Field labels come from the
field table (``schema.label``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterator, Mapping
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
from sync.protocol import schema
from ui.colors import changed_color
from ui.comments_widget import format_time
from ui.revert_preview import RevertPreviewDialog
from ui.tasks import report_error, spawn
from ui.version_diff import flatten_version, revert_plan, version_changes

__all__ = ["FIELD_LABELS", "HistoryDialog", "flatten_version"]

log = logging.getLogger(__name__)


class _Labels(Mapping[str, str]):
    """Field name → label, read from the field table at each use (kept for callers of
    the old dict; new code calls ``schema.label``)."""

    def __getitem__(self, name: str) -> str:
        if name not in schema.field_names():
            raise KeyError(name)
        return schema.label(name)

    def __iter__(self) -> Iterator[str]:
        return iter(schema.field_names())

    def __len__(self) -> int:
        return len(schema.field_names())


#: How people call the fields (the field table's labels).
FIELD_LABELS: Mapping[str, str] = _Labels()
_OFFLINE = ("History is kept on the server, and Live Edit cannot reach it right now. "
            "Your edits are safe; try again when you are back online.")
#: Roots whose history entries get a diff (fetched per entry).
_DIFFED = frozenset({"notes", "tasks"})
#: How many of the newest entries get their notes/tasks diff fetched.
_DIFF_ENTRIES = 30


def _changes_text(changes: tuple[str, ...]) -> str:
    names = [schema.label(c) for c in changes if c != "meta"]
    if not names and "meta" in changes:
        return "Deleted or restored"
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
        self._selected_json: dict[str, Any] | None = None
        self._cache: dict[int, dict[str, Any]] = {}
        self.preview: RevertPreviewDialog | None = None
        self._jobs: set[asyncio.Task[None]] = set()
        self.setWindowTitle(f"History — {self._title()}")
        self.resize(860, 480)
        self.message = QLabel(self)
        self.versions = QTableWidget(0, 3, self)
        self.compare = QTableWidget(len(schema.fields()), 3, self)
        self.details = QLabel(self)
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
        for row, f in enumerate(schema.fields()):
            self.compare.setItem(row, 0, QTableWidgetItem(f.label))
        self.details.setWordWrap(True)
        self.details.setTextFormat(Qt.TextFormat.PlainText)
        self.details.setAccessibleName("What this version changed")
        self.revert_all.setToolTip("See what a revert changes (fields, notes, tasks), "
                                   "then bring the customer back to the selected version")
        self.revert_field.setToolTip("Bring back only the selected field")
        self.retry.hide()
        splitter = QSplitter(Qt.Orientation.Horizontal, self)
        splitter.addWidget(self.versions)
        right = QWidget(self)
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(self.compare, 1)
        right_layout.addWidget(self.details)
        splitter.addWidget(right)
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
        self.compare.selectRow(schema.field_names().index(name))

    def loaded_version(self) -> dict[str, Any] | None:
        """The flat field values of the version shown, once loaded."""
        return self._selected

    def done(self, result: int) -> None:
        """Closing stops loads still on their way (they would update a closed dialog)."""
        for job in list(self._jobs):
            job.cancel()
        if self.preview is not None:
            self.preview.reject()
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
        if any(_DIFFED & set(v.changes) for v in versions[:_DIFF_ENTRIES]):
            self._spawn(self._describe_entries(versions[:_DIFF_ENTRIES + 1]), "diff history")

    async def _fetch(self, seq: int) -> dict[str, Any]:
        """One version's JSON (fetched once per dialog)."""
        if seq not in self._cache:
            self._cache[seq] = await self._core.version(self._customer, seq)
        return self._cache[seq]

    async def _describe_entries(self, versions: list[Version]) -> None:
        """Say what the notes and tasks entries changed (diff with the entry before)."""
        for index, version in enumerate(versions[:_DIFF_ENTRIES]):
            if not _DIFFED & set(version.changes):
                continue
            try:
                after = await self._fetch(version.seq)
                before = (await self._fetch(versions[index + 1].seq)
                          if index + 1 < len(versions) else None)
            except (ServerUnreachable, NotSignedIn):
                return  # the list itself stays; the comparison says offline when asked
            lines = [line for line in version_changes(before, after)
                     if line.startswith("Notes:") or "task" in line]
            fields = [c for c in version.changes if c not in _DIFFED]
            text = "; ".join([*([_changes_text(tuple(fields))] if fields else []), *lines])
            if version not in self._versions:
                return  # reloaded meanwhile
            item = self.versions.item(self._versions.index(version), 2)
            if item is not None and text:
                item.setText(text)
                item.setToolTip("\n".join(lines))

    def change_texts(self) -> list[str]:
        """The "Changed" column, top (newest) to bottom (for tests)."""
        items = (self.versions.item(row, 2) for row in range(self.versions.rowCount()))
        return [item.text() if item is not None else "" for item in items]

    def _on_version_selected(self) -> None:
        seq = self.selected_seq()
        self._selected = None
        self._selected_json = None
        self.details.clear()
        self._update_buttons()
        if seq is not None:
            self._spawn(self._load_version(seq), "load version")

    async def _load_version(self, seq: int) -> None:
        try:
            data = await self._fetch(seq)
            seqs = [v.seq for v in self._versions]
            index = seqs.index(seq) if seq in seqs else -1
            before = (await self._fetch(seqs[index + 1])
                      if 0 <= index < len(seqs) - 1 else None)
        except (ServerUnreachable, NotSignedIn):
            self._set_offline()
            return
        if seq != self.selected_seq():
            return  # the rep picked another version meanwhile
        self._selected = flatten_version(data)
        self._selected_json = data
        changed = version_changes(before, data)
        self.details.setText("This version changed:\n" + "\n".join(f"• {c}" for c in changed)
                             if changed else "This version changed nothing visible.")
        self._show_comparison()

    def _show_comparison(self) -> None:
        old = self._selected or {}
        now = self._core.customer(self._customer).fields
        marked = QBrush(changed_color(self.palette()))
        plain = QBrush(self.palette().color(QPalette.ColorRole.Base))
        for row, f in enumerate(schema.fields()):
            name = f.name
            differs = old.get(name) != now.get(name)
            label = self.compare.item(row, 0)
            if label is None:  # re-inserting an item the table owns is an error in Qt
                label = QTableWidgetItem()
                self.compare.setItem(row, 0, label)
            label.setText(("● " if differs else "") + f.label)
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
            self._revert(schema.field_names()[rows[0].row()])

    def _revert(self, field: str | None) -> None:
        seq = self.selected_seq()
        if seq is None:
            return
        if field is not None:
            self._spawn(self._do_revert(seq, field), "revert")
            return
        self._preview_revert(seq)

    def _preview_revert(self, seq: int) -> None:
        """Show what reverting the whole customer to ``seq`` changes; revert on OK."""
        then = self._selected_json
        if then is None:
            return
        plan = revert_plan(then, self._core.customer(self._customer))
        if plan.empty:
            self.message.setText("The customer is already as it was in that version: "
                                 "there is nothing to revert.")
            return
        if self.preview is not None:
            self.preview.reject()
        when = next((format_time(v.time) for v in self._versions if v.seq == seq), "")
        self.preview = RevertPreviewDialog(plan, when, self)
        self.preview.accepted.connect(
            lambda: self._spawn(self._do_revert(seq, None), "revert"))
        self.preview.open()

    async def _do_revert(self, seq: int, field: str | None) -> None:
        self._set_busy("Reverting…")
        try:
            await self._core.revert(self._customer, seq, field)
        except (ServerUnreachable, NotSignedIn):
            self._set_offline()
            return
        except CoreError as exc:
            report_error(str(exc))
        what = schema.label(field) if field else "The customer"
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
