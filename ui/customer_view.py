"""One customer, live: the form, who else is here, conflicts, notes, tasks and comments.

:class:`CustomerView` shows the customer the rep picked (``show_customer``), holds it
offline through the core, and keeps it current from core events: a change by somebody
else updates the form without disturbing the field the rep is typing in, flashes the
changed field and names the author in its tooltip. The other reps on this customer are
avatars in the header, and "Sam is editing" appears under the field they are in (this
rep's own presence goes out as they move between fields, and ``None`` when they leave).
A conflict (someone overwrote this rep's concurrent value) is a banner in plain words
with "Keep theirs" / "Use mine"; a deleted customer shows a banner with Restore (both
banners are :mod:`ui.customer_banners`; the avatars :mod:`ui.presence_avatars`). A mark
beside a field says "not yet synced" while its edit waits in the outbox, then "saved"
(:mod:`ui.sync_marks`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QIcon
from PySide6.QtWidgets import (
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QStackedWidget,
    QStyle,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.core import ClientCore
from app.core import CustomerView as CustomerData
from app.errors import InvalidEdit, UnknownCustomer
from app.events import ConflictRecorded, DocumentChanged, Origin
from sync.protocol import schema
from ui.bridge import CoreBridge
from ui.comments_widget import CommentsWidget
from ui.customer_banners import ConflictBanner, DeletedBanner, conflict_sentence
from ui.deleted_customers import DeleteQuestion, ask_delete
from ui.field_editor import FieldEditor
from ui.notes_editor import NotesEditor
from ui.presence_avatars import AvatarRow
from ui.sync_marks import SyncMarks
from ui.tasks import report_error, spawn
from ui.tasks_widget import TasksWidget

if TYPE_CHECKING:
    from ui.history_dialog import HistoryDialog

__all__ = ["CustomerView", "conflict_sentence", "form_columns"]

log = logging.getLogger(__name__)

def form_columns() -> list[list[tuple[str, list[schema.Field]]]]:
    """The form's two columns of (group, fields), read from the field table: groups keep
    table order, each goes to the shorter column (Contact | Address, then Account…)."""
    groups: dict[str, list[schema.Field]] = {}
    for field in schema.fields():
        groups.setdefault(field.group, []).append(field)
    columns: list[list[tuple[str, list[schema.Field]]]] = [[], []]
    heights = [0, 0]
    for group, members in groups.items():
        target = 0 if heights[0] <= heights[1] else 1
        columns[target].append((group, members))
        heights[target] += len(members) + 1
    return columns


class CustomerView(QWidget):
    """The customer pane of the main window."""

    def __init__(self, core: ClientCore, bridge: CoreBridge,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._core = core
        self._bridge = bridge
        self._customer: str | None = None
        self._deleted = False
        self._presence_stale = False
        self.fields: dict[str, FieldEditor] = {}
        self.sync_marks = SyncMarks(core, self.fields)
        self.conflict_banners: list[ConflictBanner] = []
        self._build()
        self._connect()
        self._show_empty()

    # --- building ------------------------------------------------------------------------

    def _build(self) -> None:
        self.stack = QStackedWidget(self)
        self.empty = QLabel("Pick a customer from the directory, or create a new one.", self)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setEnabled(False)
        self.page = QWidget(self)
        self.stack.addWidget(self.empty)
        self.stack.addWidget(self.page)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.stack)
        layout = QVBoxLayout(self.page)
        layout.setContentsMargins(12, 10, 12, 10)
        layout.setSpacing(8)
        layout.addLayout(self._build_header())
        self.deleted_banner = DeletedBanner(self.page)
        self.deleted_text = self.deleted_banner.text
        self.restore_button = self.deleted_banner.restore_button
        layout.addWidget(self.deleted_banner)
        self.conflicts_box = QVBoxLayout()
        self.conflicts_box.setSpacing(4)
        layout.addLayout(self.conflicts_box)
        layout.addLayout(self._build_form())
        layout.addWidget(self._build_tabs(), 1)

    def _build_header(self) -> QHBoxLayout:
        self.title = QLabel(self.page)
        font = QFont(self.title.font())
        font.setPointSizeF(font.pointSizeF() * 1.45)
        font.setBold(True)
        self.title.setFont(font)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.avatars = AvatarRow(self.page)
        style = self.style()
        self.history_button = QPushButton(
            QIcon.fromTheme("document-open-recent",
                            style.standardIcon(QStyle.StandardPixmap.SP_FileDialogDetailedView)),
            "History…", self.page)
        self.delete_button = QPushButton(
            QIcon.fromTheme("edit-delete",
                            style.standardIcon(QStyle.StandardPixmap.SP_TrashIcon)),
            "Delete", self.page)
        self.delete_button.setToolTip("Delete this customer (it can be restored)")
        header = QHBoxLayout()
        header.addWidget(self.title, 1)
        header.addLayout(self.avatars)
        header.addSpacing(12)
        header.addWidget(self.history_button)
        header.addWidget(self.delete_button)
        return header

    def _build_form(self) -> QGridLayout:
        """Label/editor pairs in two columns, sections and order from the field table."""
        grid = QGridLayout()
        grid.setHorizontalSpacing(10)
        grid.setVerticalSpacing(4)
        for column, groups in enumerate(form_columns()):
            row = 0
            for group, members in groups:
                heading = QLabel(group.upper(), self.page)
                heading.setObjectName("formSection")
                heading.setEnabled(False)  # the palette's quiet text colour
                font = heading.font()
                font.setPointSizeF(font.pointSizeF() * 0.8)
                font.setBold(True)
                heading.setFont(font)
                grid.addWidget(heading, row, column * 2 + 1)
                row += 1
                for field in members:
                    editor = FieldEditor(field.name, field.label, field.choices, self.page,
                                         max_length=field.max_length)
                    editor.commitRequested.connect(self._commit)
                    editor.focused.connect(self._field_focused)
                    self.fields[field.name] = editor
                    caption = QLabel(f"{field.label}:", self.page)
                    caption.setBuddy(editor.editor)
                    caption.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop)
                    caption.setContentsMargins(0, 5, 0, 0)
                    grid.addWidget(caption, row, column * 2)
                    grid.addWidget(editor, row, column * 2 + 1, Qt.AlignmentFlag.AlignTop)
                    row += 1
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)
        grid.setColumnMinimumWidth(2, 60)
        name_editor = self.fields["name"].editor if "name" in self.fields else None
        if isinstance(name_editor, QLineEdit):
            name_editor.setPlaceholderText("Name")
        return grid

    def _build_tabs(self) -> QTabWidget:
        self.tabs = QTabWidget(self.page)
        self.notes = NotesEditor(self._core, self._bridge, self.tabs)
        self.tasks = TasksWidget(self._core, self._bridge, self.tabs)
        self.comments = CommentsWidget(self._core, self._bridge, self.tabs)
        self.tabs.addTab(self.notes, "Notes")
        self.tabs.addTab(self.tasks, "Tasks")
        self.tabs.addTab(self.comments, "Comments")
        self.tabs.setDocumentMode(True)
        return self.tabs

    def _connect(self) -> None:
        self.history_button.clicked.connect(self.open_history)
        self.delete_button.clicked.connect(self.delete_customer)
        self.restore_button.clicked.connect(self.restore_customer)
        self.tasks.countChanged.connect(self._retitle_tabs)
        self._bridge.documentChanged.connect(self._on_document_changed)
        self._bridge.conflictRecorded.connect(self._on_conflict)
        self._bridge.presenceUpdated.connect(self._on_presence)
        self._bridge.outboxChanged.connect(self._on_outbox)

    # --- public API ----------------------------------------------------------------------

    def current_customer(self) -> str | None:
        """The customer shown, if any."""
        return self._customer

    def show_customer(self, customer_id: str) -> None:
        """Show a customer now (from the replica) and hold it offline in the background."""
        if customer_id == self._customer:
            return
        try:
            data = self._core.customer(customer_id)
        except UnknownCustomer as exc:
            # Not here yet (a link or notification before the directory caught up): online,
            # the core fetches it; offline this says so.
            spawn(self._fetch_then_show(customer_id, str(exc)), what="open customer")
            return
        self.leave()
        self._customer = data.id
        self._populate(data)
        self.stack.setCurrentWidget(self.page)
        spawn(self._open(data.id), what="open customer")

    def set_online(self, online: bool) -> None:
        """Offline, who else is here cannot be current: grey the avatars and notes out."""
        if self._presence_stale == (not online):
            return
        self._presence_stale = not online
        self.avatars.set_stale(not online)
        for editor in self.fields.values():
            editor.set_presence_stale(not online)

    def focus_target(self) -> QWidget | None:
        """Where the keyboard focus goes when the rep moves into this pane (F6): the first
        field of the form, or None while no customer is shown."""
        if self.stack.currentWidget() is not self.page or not self.fields:
            return None
        return next(iter(self.fields.values())).editor

    def presence_stale(self) -> bool:
        """True while the avatars are shown greyed out (offline: maybe not current)."""
        return self._presence_stale and bool(self.avatars.widgets())

    def new_customer(self) -> asyncio.Task[None]:
        """Create an empty customer (works offline), show it and put the cursor in Name."""
        return spawn(self._create(), what="new customer")

    def leave(self) -> None:
        """Stop showing the current customer and tell the others this rep left it."""
        if self._customer is not None:
            spawn(self._core.set_presence(self._customer, None), what="leave customer")
        self._customer = None
        self._show_empty()

    def open_history(self) -> HistoryDialog | None:
        """Open the history of this customer (non-modal)."""
        from ui.history_dialog import HistoryDialog

        if self._customer is None:
            return None
        dialog = HistoryDialog(self._core, self._customer, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        return dialog

    def delete_customer(self) -> DeleteQuestion | None:
        """Ask, then tombstone this customer (restorable: banner, history, Edit ▸ Deleted
        customers). Returns the open question (None without a customer)."""
        if self._customer is None:
            return None
        cid = self._customer
        return ask_delete(self, self.title.text(), lambda: spawn(
            self._core.delete_customer(cid), what="delete customer"))

    def restore_customer(self) -> None:
        """Bring a deleted customer back."""
        if self._customer is not None:
            spawn(self._core.restore_customer(self._customer), what="restore customer")

    # --- loading -------------------------------------------------------------------------

    async def _open(self, customer_id: str) -> None:
        data = await self._core.open_customer(customer_id)
        if customer_id != self._customer:
            return
        self._apply_fields({name: data.fields.get(name) for name in self.fields}, frozenset(),
                           None, 0.0)
        self._set_title(None)
        await self._core.set_presence(customer_id, {"name": self._core.username or ""})
        self._on_presence(customer_id, self._core.presence(customer_id))

    async def _fetch_then_show(self, customer_id: str, offline_message: str) -> None:
        try:
            await self._core.open_customer(customer_id)
        except UnknownCustomer:
            report_error(offline_message)
            return
        self.show_customer(customer_id)

    async def _create(self) -> None:
        customer_id = await self._core.create_customer({})
        self.show_customer(customer_id)
        self.fields["name"].editor.setFocus(Qt.FocusReason.OtherFocusReason)

    def _populate(self, data: CustomerData) -> None:
        for name, editor in self.fields.items():
            editor.stop_highlight()
            editor.set_value(data.fields.get(name))
            editor.show_error(None)
            editor.set_editing_names([])
            editor.editor.setToolTip("")
        self.sync_marks.reset(data.id)
        self._set_title(data)
        self._set_deleted(data.deleted)
        self.notes.set_customer(data.id, data.notes)
        self.tasks.set_customer(data.id, data.tasks)
        self.comments.set_customer(data.id, data.comments)
        self._retitle_tabs()
        self._refresh_conflicts()
        self.avatars.set_peers({})

    def _show_empty(self) -> None:
        for editor in self.fields.values():
            editor.stop_highlight()
        self.stack.setCurrentWidget(self.empty)
        self.notes.set_customer(None)
        self.tasks.set_customer(None)
        self.comments.set_customer(None)
        self._clear_conflicts()

    def _set_title(self, data: CustomerData | None) -> None:
        """The header: the name, with the place in its tooltip (from ``data``, or from what
        the form holds)."""
        def value(name: str) -> Any:
            if data is not None:
                return data.fields.get(name)
            editor = self.fields.get(name)
            return editor.base if editor is not None else None

        self.title.setText(value("name") or "New customer")
        place = ", ".join(str(p) for f in schema.address_fields() if f.directory
                          and (p := value(f.name)))
        self.title.setToolTip(place)

    def _set_deleted(self, deleted: bool) -> None:
        self._deleted = deleted
        self.deleted_banner.setVisible(deleted)
        self.delete_button.setEnabled(not deleted)
        for editor in self.fields.values():
            editor.set_read_only(deleted)
        self.notes.setReadOnly(deleted)

    def _retitle_tabs(self, *_args: object) -> None:
        open_tasks = sum(1 for t in self.tasks.tasks() if not t.done)
        self.tabs.setTabText(1, f"Tasks ({open_tasks})" if open_tasks else "Tasks")
        count = self.comments.count()
        self.tabs.setTabText(2, f"Comments ({count})" if count else "Comments")

    # --- editing -------------------------------------------------------------------------

    def _commit(self, field: str, value: Any) -> None:
        if self._customer is not None:
            spawn(self._set_field(self._customer, field, value), what=f"save {field}")

    async def _set_field(self, customer_id: str, field: str, value: Any) -> None:
        editor = self.fields[field]
        try:
            await self._core.set_fields(customer_id, {field: value})
        except InvalidEdit as exc:
            if customer_id == self._customer:
                editor.show_error(_plain(str(exc), field))
            return
        if customer_id == self._customer:
            editor.show_error(None)
            editor.set_value(self._core.customer(customer_id).fields.get(field))
            self.sync_marks.committed(customer_id, field)

    def _on_outbox(self, _pending: int) -> None:
        """The outbox shrank or grew: the sync marks follow it."""
        if self._customer is not None and not self._core.closed:
            self.sync_marks.outbox_changed(self._customer)

    def _field_focused(self, field: str, position: int) -> None:
        if self._customer is None:
            return
        state = {"field": field, "cursor": position, "name": self._core.username or ""}
        spawn(self._core.set_presence(self._customer, state), what="send presence")

    # --- events --------------------------------------------------------------------------

    def _on_document_changed(self, event: DocumentChanged) -> None:
        if event.customer_id != self._customer:
            return
        # The event carries the new values (issue 11): no re-read of the whole customer.
        remote = event.origin is Origin.REMOTE
        self._apply_fields(event.values, event.fields if remote else frozenset(),
                           event.author, event.time)
        self._set_title(None)
        if event.deleted != self._deleted:
            self._set_deleted(event.deleted)
        if "comments" in event.roots:
            self._retitle_tabs()

    def _apply_fields(self, values: Mapping[str, Any], remote_fields: frozenset[str],
                      author: str | None, when: float) -> None:
        """Bring the fields named in ``values`` up to date; fields somebody else changed
        are highlighted (not when the form was empty: that is the customer arriving)."""
        arriving = all(editor.base is None for editor in self.fields.values())
        for name, value in values.items():
            editor = self.fields.get(name)
            if editor is None:
                continue
            if name in remote_fields and not arriving and value != editor.base:
                editor.changed_remotely(value, author or "", when)
            elif value != editor.base and not editor.typing():
                editor.set_value(value)

    def _on_conflict(self, event: ConflictRecorded) -> None:
        if event.customer_id == self._customer:
            self._refresh_conflicts()

    def _refresh_conflicts(self) -> None:
        self._clear_conflicts()
        if self._customer is None or self._core.closed:
            return
        for conflict in self._core.conflicts(self._customer):
            banner = ConflictBanner(conflict, self.page)
            banner.keep_theirs.clicked.connect(
                lambda _c=False, f=conflict.field: self._resolve(f, use_mine=False))
            banner.use_mine.clicked.connect(
                lambda _c=False, f=conflict.field: self._resolve(f, use_mine=True))
            self.conflicts_box.addWidget(banner)
            self.conflict_banners.append(banner)

    def _clear_conflicts(self) -> None:
        for banner in self.conflict_banners:
            banner.hide()
            banner.deleteLater()
        self.conflict_banners = []

    def _resolve(self, field: str, *, use_mine: bool) -> None:
        if self._customer is not None:
            spawn(self._do_resolve(self._customer, field, use_mine), what="resolve conflict")

    async def _do_resolve(self, customer_id: str, field: str, use_mine: bool) -> None:
        await self._core.resolve_conflict(customer_id, field, use_mine=use_mine)
        if customer_id == self._customer:
            self._refresh_conflicts()

    def _on_presence(self, customer_id: str, peers: dict[str, tuple[str, Any]]) -> None:
        if customer_id != self._customer:
            return
        self.avatars.set_peers(peers)
        editing: dict[str, list[str]] = {}
        for user, state in peers.values():
            field = state.get("field") if isinstance(state, dict) else None
            if field in self.fields:
                editing.setdefault(field, []).append(str(state.get("name") or user))
        for name, editor in self.fields.items():
            editor.set_editing_names(sorted(set(editing.get(name, [])), key=str.casefold))

    def avatar_names(self) -> list[str]:
        """Who the header shows as being on this customer now."""
        return self.avatars.names()

    def editing_note(self, field: str) -> str:
        """The note under a field ("Sam is editing"), or ""."""
        return self.fields[field].editing_text()


def _plain(message: str, field: str) -> str:
    """ "email: must be an e-mail address…" → "Must be an e-mail address…." """
    text = message.split(": ", 1)[1] if message.startswith(f"{field}:") else message
    text = text[:1].upper() + text[1:]
    return text if text.endswith(".") else f"{text}."
