"""Follow-up tasks of one customer: check, add, retitle, delete and drag to reorder.

Every action goes to the core (``add_task``, ``edit_task``, ``delete_task``,
``move_task``); the list re-reads the tasks when the document's ``tasks`` change, from
this rep or anyone else, keeping the selected task selected. A refresh waits while the rep
is retitling a task, so a remote change never closes the editor under their fingers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QDropEvent, QKeyEvent, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.core import ClientCore
from app.events import DocumentChanged
from ui.bridge import CoreBridge
from ui.tasks import spawn

__all__ = ["TasksWidget"]

log = logging.getLogger(__name__)

_ID = Qt.ItemDataRole.UserRole
#: How long the "Ctrl+Z brings it back" notice stays after deleting a task (ms).
_NOTICE_MS = 10_000


class Task(Protocol):
    """What the list needs of a task (the core's tasks have this shape)."""

    @property
    def id(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def done(self) -> bool: ...


class _TaskList(QListWidget):
    """A list whose items can be dragged to a new place; reports (task id, new row)."""

    moved = Signal(str, int)
    deleteRequested = Signal()

    def dropEvent(self, event: QDropEvent) -> None:
        """Let Qt move the item, then report where the dragged task landed."""
        item = self.currentItem()
        task_id = item.data(_ID) if item is not None else None
        super().dropEvent(event)
        if task_id is None:
            return
        for row in range(self.count()):
            if self.item(row).data(_ID) == task_id:
                self.moved.emit(task_id, row)
                return

    def keyPressEvent(self, event: QKeyEvent) -> None:
        """Delete/Backspace deletes the selected task (unless an editor is open)."""
        is_delete = event.matches(QKeySequence.StandardKey.Delete) or event.key() in {
            Qt.Key.Key_Delete, Qt.Key.Key_Backspace}
        if is_delete and self.state() != QAbstractItemView.State.EditingState:
            self.deleteRequested.emit()
            return
        super().keyPressEvent(event)


class TasksWidget(QWidget):
    """The task list of one customer."""

    countChanged = Signal(int)

    def __init__(self, core: ClientCore, bridge: CoreBridge,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._core = core
        self._customer: str | None = None
        self._tasks: list[Task] = []
        self._loading = False
        self._stale = False
        self.list = _TaskList(self)
        self.new_title = QLineEdit(self)
        self.add_button = QPushButton("Add", self)
        self.delete_button = QPushButton("Delete", self)
        #: "Deleted “X”. Press Ctrl+Z to bring it back." for a while after a delete.
        self.notice = QLabel(self)
        self.notice.setWordWrap(True)
        self.notice.setAccessibleName("Task deleted")
        self.notice.hide()
        self._notice_timer = QTimer(self)
        self._notice_timer.setSingleShot(True)
        self._notice_timer.setInterval(_NOTICE_MS)
        self._notice_timer.timeout.connect(self.notice.hide)
        self._build()
        self.list.itemChanged.connect(self._on_item_changed)
        self.list.moved.connect(self._on_moved)
        self.list.deleteRequested.connect(self.delete_selected)
        self.list.itemSelectionChanged.connect(self._update_buttons)
        self.list.itemDelegate().closeEditor.connect(lambda *_: self._refresh_if_stale())
        self.new_title.returnPressed.connect(self.add_from_input)
        self.new_title.textChanged.connect(lambda _t: self._update_buttons())
        self.add_button.clicked.connect(self.add_from_input)
        self.delete_button.clicked.connect(self.delete_selected)
        bridge.documentChanged.connect(self._on_document_changed)
        self._update_buttons()

    def _build(self) -> None:
        self.list.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.list.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked
                                  | QAbstractItemView.EditTrigger.EditKeyPressed)
        self.list.setAccessibleName("Follow-up tasks")
        self.list.setToolTip("Double-click to rename, drag to reorder, Delete to remove.")
        self.new_title.setPlaceholderText("Add a follow-up task…")
        self.delete_button.setToolTip("Delete the selected task (Del)")
        add_row = QHBoxLayout()
        add_row.addWidget(self.new_title, 1)
        add_row.addWidget(self.add_button)
        add_row.addWidget(self.delete_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 6, 0, 0)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.notice)
        layout.addLayout(add_row)

    # --- public API --------------------------------------------------------------------

    def set_customer(self, customer_id: str | None, tasks: Sequence[Task] = ()) -> None:
        """Show a customer's tasks (None: nothing)."""
        self._customer = customer_id
        self._show(tasks)
        self.setEnabled(customer_id is not None)

    def tasks(self) -> list[Task]:
        """The tasks shown, in order."""
        return list(self._tasks)

    def add_from_input(self) -> None:
        """Add a task titled with the input's text."""
        title = self.new_title.text().strip()
        if not title or self._customer is None:
            return
        self.new_title.clear()
        spawn(self._core.add_task(self._customer, title), what="add task")

    def delete_selected(self) -> None:
        """Delete the selected task."""
        item = self.list.currentItem()
        if item is None or self._customer is None:
            return
        spawn(self._core.delete_task(self._customer, item.data(_ID)), what="delete task")
        self.notice.setText(f"Deleted “{item.text()}”. Press Ctrl+Z to bring it back.")
        self.notice.show()
        self._notice_timer.start()

    # --- slots -------------------------------------------------------------------------

    def _on_item_changed(self, item: QListWidgetItem) -> None:
        if self._loading or self._customer is None:
            return
        task = next((t for t in self._tasks if t.id == item.data(_ID)), None)
        if task is None:
            return
        done = item.checkState() == Qt.CheckState.Checked
        title = item.text().strip()
        if not title:  # an emptied title is refused: put the old one back
            self._show(self._tasks)
            return
        if done != task.done or title != task.title:
            spawn(self._core.edit_task(
                self._customer, task.id, title=title if title != task.title else None,
                done=done if done != task.done else None), what="edit task")

    def _on_moved(self, task_id: str, row: int) -> None:
        if self._customer is not None:
            spawn(self._core.move_task(self._customer, task_id, row), what="reorder tasks")

    def _on_document_changed(self, event: DocumentChanged) -> None:
        if event.customer_id == self._customer and "tasks" in event.roots:
            self._stale = True
            self._refresh_if_stale()

    def _refresh_if_stale(self) -> None:
        if not self._stale or self._customer is None or self._core.closed:
            return
        if self.list.state() == QAbstractItemView.State.EditingState:
            return  # after the editor closes
        self._stale = False
        self._show(self._core.customer(self._customer).tasks)

    def _show(self, tasks: Sequence[Task]) -> None:
        selected = self.list.currentItem().data(_ID) if self.list.currentItem() else None
        self._loading = True
        try:
            self._tasks = list(tasks)
            self.list.clear()
            for task in tasks:
                item = QListWidgetItem(task.title)
                item.setData(_ID, task.id)
                item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
                              | Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEditable
                              | Qt.ItemFlag.ItemIsDragEnabled)
                item.setCheckState(Qt.CheckState.Checked if task.done
                                   else Qt.CheckState.Unchecked)
                font = item.font()
                font.setStrikeOut(task.done)
                item.setFont(font)
                self.list.addItem(item)
                if task.id == selected:
                    self.list.setCurrentItem(item)
        finally:
            self._loading = False
        self._update_buttons()
        self.countChanged.emit(sum(1 for t in tasks if not t.done))

    def _update_buttons(self) -> None:
        self.add_button.setEnabled(bool(self.new_title.text().strip()))
        self.delete_button.setEnabled(self.list.currentItem() is not None)
