"""One customer, live: the form, who else is here, conflicts, notes, tasks and comments.

:class:`CustomerView` shows the customer the rep picked (``show_customer``), holds it
offline through the core, and keeps it current from core events: a change by somebody
else updates the form without disturbing the field the rep is typing in, flashes the
changed field and names the author in its tooltip. The other reps on this customer are
avatars in the header, and "Sam is editing" appears under the field they are in (this
rep's own presence goes out as they move between fields, and ``None`` when they leave).
A conflict (someone overwrote this rep's concurrent value) is a banner in plain words
with "Keep theirs" / "Use mine"; a deleted customer shows a banner with Restore.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.core import ClientCore
from app.core import CustomerView as CustomerData
from app.errors import InvalidEdit, UnknownCustomer
from app.events import ConflictRecorded, DocumentChanged, Origin
from app.replica import Conflict
from sync.protocol.document import FIELDS, TIERS
from ui.bridge import CoreBridge
from ui.colors import avatar_pixmap, blend
from ui.comments_widget import CommentsWidget
from ui.field_editor import FieldEditor
from ui.history_dialog import FIELD_LABELS, HistoryDialog
from ui.notes_editor import NotesEditor
from ui.tasks import report_error, spawn
from ui.tasks_widget import TasksWidget

__all__ = ["CustomerView", "conflict_sentence"]

log = logging.getLogger(__name__)

#: Form layout: (column, fields) — who the customer is on the left, where on the right.
_COLUMNS = (("name", "email", "phone", "tier"), ("street1", "street2", "city", "state", "zip"))
_AMBER = QColor(240, 170, 30)


def conflict_sentence(conflict: Conflict) -> str:
    """ "Sam changed City to “Lyon” while you had “Paris”." """
    field = FIELD_LABELS.get(conflict.field, conflict.field)
    who = conflict.author or "Someone"
    theirs = f"changed {field} to “{conflict.theirs}”" if conflict.theirs else f"cleared {field}"
    mine = f"“{conflict.mine}”" if conflict.mine else "it empty"
    return f"{who} {theirs} while you had {mine}."


def _banner(parent: QWidget, tint: QColor) -> QFrame:
    frame = QFrame(parent)
    frame.setFrameShape(QFrame.Shape.StyledPanel)
    frame.setAutoFillBackground(True)
    palette = frame.palette()
    window = palette.color(QPalette.ColorRole.Window)
    palette.setColor(QPalette.ColorRole.Window, blend(window, tint, 0.22))
    frame.setPalette(palette)
    return frame


class _ConflictBanner(QFrame):
    """One open conflict with its two choices."""

    def __init__(self, conflict: Conflict, parent: QWidget) -> None:
        super().__init__(parent)
        self.conflict = conflict
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAutoFillBackground(True)
        palette = self.palette()
        window = palette.color(QPalette.ColorRole.Window)
        palette.setColor(QPalette.ColorRole.Window, blend(window, _AMBER, 0.22))
        self.setPalette(palette)
        self.text = QLabel(conflict_sentence(conflict), self)
        self.text.setWordWrap(True)
        self.keep_theirs = QPushButton("Keep theirs", self)
        self.use_mine = QPushButton("Use mine", self)
        self.keep_theirs.setToolTip(f"Keep “{conflict.theirs or ''}” and dismiss this")
        self.use_mine.setToolTip(f"Put back “{conflict.mine or ''}” as a new change")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.keep_theirs)
        layout.addWidget(self.use_mine)


class CustomerView(QWidget):
    """The customer pane of the main window."""

    def __init__(self, core: ClientCore, bridge: CoreBridge,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._core = core
        self._bridge = bridge
        self._customer: str | None = None
        self._deleted = False
        self.fields: dict[str, FieldEditor] = {}
        self.conflict_banners: list[_ConflictBanner] = []
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
        self.deleted_banner = self._build_deleted_banner()
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
        self.avatars = QHBoxLayout()
        self.avatars.setSpacing(3)
        self.history_button = QPushButton("History…", self.page)
        self.delete_button = QPushButton("Delete", self.page)
        self.delete_button.setToolTip("Delete this customer (it can be restored)")
        header = QHBoxLayout()
        header.addWidget(self.title, 1)
        header.addLayout(self.avatars)
        header.addSpacing(12)
        header.addWidget(self.history_button)
        header.addWidget(self.delete_button)
        return header

    def _build_deleted_banner(self) -> QFrame:
        banner = _banner(self.page, QColor(220, 70, 60))
        self.deleted_text = QLabel("This customer was deleted. Its details are read-only "
                                   "until you restore it.", banner)
        self.deleted_text.setWordWrap(True)
        self.restore_button = QPushButton("Restore", banner)
        row = QHBoxLayout(banner)
        row.setContentsMargins(10, 6, 6, 6)
        row.addWidget(self.deleted_text, 1)
        row.addWidget(self.restore_button)
        banner.hide()
        return banner

    def _build_form(self) -> QGridLayout:
        grid = QGridLayout()
        grid.setHorizontalSpacing(10)
        grid.setVerticalSpacing(6)
        for column, names in enumerate(_COLUMNS):
            for row, name in enumerate(names):
                label = FIELD_LABELS.get(name, name)
                editor = FieldEditor(name, label, TIERS if name == "tier" else None, self.page)
                editor.commitRequested.connect(self._commit)
                editor.focused.connect(self._field_focused)
                self.fields[name] = editor
                caption = QLabel(f"{label}:", self.page)
                caption.setBuddy(editor.editor)
                caption.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop)
                caption.setContentsMargins(0, 4, 0, 0)
                grid.addWidget(caption, row, column * 2)
                grid.addWidget(editor, row, column * 2 + 1, Qt.AlignmentFlag.AlignTop)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)
        grid.setColumnMinimumWidth(2, 70)
        name_editor = self.fields["name"].editor
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
        if self._customer is None:
            return None
        dialog = HistoryDialog(self._core, self._customer, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        return dialog

    def delete_customer(self) -> None:
        """Tombstone this customer (restorable from the banner or history)."""
        if self._customer is not None:
            spawn(self._core.delete_customer(self._customer), what="delete customer")

    def restore_customer(self) -> None:
        """Bring a deleted customer back."""
        if self._customer is not None:
            spawn(self._core.restore_customer(self._customer), what="restore customer")

    # --- loading -------------------------------------------------------------------------

    async def _open(self, customer_id: str) -> None:
        data = await self._core.open_customer(customer_id)
        if customer_id != self._customer:
            return
        self._apply_fields(data, frozenset(), None, 0.0)
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
        self._set_title(data)
        self._set_deleted(data.deleted)
        self.notes.set_customer(data.id, data.notes)
        self.tasks.set_customer(data.id, data.tasks)
        self.comments.set_customer(data.id, data.comments)
        self._retitle_tabs()
        self._refresh_conflicts()
        self._set_avatars({})

    def _show_empty(self) -> None:
        for editor in self.fields.values():
            editor.stop_highlight()
        self.stack.setCurrentWidget(self.empty)
        self.notes.set_customer(None)
        self.tasks.set_customer(None)
        self.comments.set_customer(None)
        self._clear_conflicts()

    def _set_title(self, data: CustomerData) -> None:
        self.title.setText(data.fields.get("name") or "New customer")
        place = ", ".join(p for p in (data.fields.get("city"), data.fields.get("state")) if p)
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

    def _field_focused(self, field: str, position: int) -> None:
        if self._customer is None:
            return
        state = {"field": field, "cursor": position, "name": self._core.username or ""}
        spawn(self._core.set_presence(self._customer, state), what="send presence")

    # --- events --------------------------------------------------------------------------

    def _on_document_changed(self, event: DocumentChanged) -> None:
        if event.customer_id != self._customer:
            return
        data = self._core.customer(event.customer_id)
        remote = event.origin is Origin.REMOTE
        self._apply_fields(data, event.fields if remote else frozenset(), event.author,
                           event.time)
        self._set_title(data)
        if data.deleted != self._deleted:
            self._set_deleted(data.deleted)
        if "comments" in event.roots:
            self._retitle_tabs()

    def _apply_fields(self, data: CustomerData, remote_fields: frozenset[str],
                      author: str | None, when: float) -> None:
        """Bring the form up to date; fields somebody else changed are highlighted (not
        when the form was empty: that is the customer arriving, not a change)."""
        arriving = all(editor.base is None for editor in self.fields.values())
        for name, editor in self.fields.items():
            value = data.fields.get(name)
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
            banner = _ConflictBanner(conflict, self.page)
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
        self._set_avatars(peers)
        editing: dict[str, list[str]] = {}
        for user, state in peers.values():
            field = state.get("field") if isinstance(state, dict) else None
            if field in FIELDS:
                editing.setdefault(field, []).append(str(state.get("name") or user))
        for name, editor in self.fields.items():
            editor.set_editing_names(sorted(set(editing.get(name, [])), key=str.casefold))

    def _set_avatars(self, peers: dict[str, tuple[str, Any]]) -> None:
        while self.avatars.count():
            item = self.avatars.takeAt(0)
            widget = item.widget() if item is not None else None
            if widget is not None:
                widget.deleteLater()
        people: dict[str, str] = {}
        for user, state in peers.values():
            field = state.get("field") if isinstance(state, dict) else None
            label = FIELD_LABELS.get(str(field), str(field)).lower()
            doing = f"editing {label}" if field else "viewing"
            people[str(state.get("name") or user)] = doing
        ratio = self.devicePixelRatioF()
        for name in sorted(people, key=str.casefold):
            avatar = QLabel(self.page)
            avatar.setObjectName("presenceAvatar")
            avatar.setPixmap(avatar_pixmap(name, 26, self.palette(), ratio))
            avatar.setToolTip(f"{name} — {people[name]}")
            avatar.setAccessibleName(name)
            self.avatars.addWidget(avatar)

    def avatar_names(self) -> list[str]:
        """Who the header shows as being on this customer now."""
        names = []
        for i in range(self.avatars.count()):
            item = self.avatars.itemAt(i)
            widget = item.widget() if item is not None else None
            if widget is not None:
                names.append(widget.accessibleName())
        return names

    def editing_note(self, field: str) -> str:
        """The note under a field ("Sam is editing"), or ""."""
        note = self.fields[field].note
        return note.text() if note.isVisibleTo(self) else ""


def _plain(message: str, field: str) -> str:
    """ "email: must be an e-mail address…" → "Must be an e-mail address…." """
    text = message.split(": ", 1)[1] if message.startswith(f"{field}:") else message
    text = text[:1].upper() + text[1:]
    return text if text.endswith(".") else f"{text}."
