"""Deleted customers: ask before deleting one, and a place to find and restore them.

Deleting is a tombstone (DESIGN.md): the customer leaves search but stays restorable.
:func:`ask_delete` asks first ("Delete Ada Lovelace?", saying where to find it again).
:class:`DeletedCustomersDialog` (Edit ▸ Deleted customers…) lists the deleted customers of
the local directory (``core.deleted_customers``, offline too), most recently deleted first,
searchable like the directory; "Restore" brings the selected one back (a new change by this
rep, which syncs like any edit) and offers to open it. A customer this computer never held
is fetched first (``open_customer`` + sync), so the restore is made on the real document;
offline that is not possible, and the dialog says so. Open both with ``open()`` (never a
nested event loop).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.core import ClientCore
from app.errors import CoreError, SyncTimeout

from .bridge import CoreBridge
from .outbox_dialog import age_text
from .tasks import report_error, spawn

__all__ = ["DeleteQuestion", "DeletedCustomersDialog", "ask_delete", "show_deleted_customers"]

log = logging.getLogger(__name__)

_ROLE_CUSTOMER = Qt.ItemDataRole.UserRole
#: How long a restore waits for a customer's document it never held (seconds).
_FETCH_TIMEOUT = 15.0
_REFRESH_MS = 150


class DeleteQuestion(QMessageBox):
    """"Delete <name>?" with Delete (``delete_button``) and Cancel (the default)."""

    def __init__(self, parent: QWidget, name: str, delete: Callable[[], object]) -> None:
        super().__init__(QMessageBox.Icon.Question, "Delete customer?",
                         f"Delete {name or 'this customer'}?",
                         QMessageBox.StandardButton.Cancel, parent)
        self.setInformativeText("It leaves the directory for everyone. You can bring it "
                                "back from Edit ▸ Deleted customers…, from its history, or "
                                "with Ctrl+Z right away.")
        self.delete_button = self.addButton("Delete", QMessageBox.ButtonRole.DestructiveRole)
        self.setDefaultButton(QMessageBox.StandardButton.Cancel)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self._delete = delete
        self.buttonClicked.connect(self._answered)

    def _answered(self, button: Any) -> None:
        if button is self.delete_button:
            self._delete()


def ask_delete(parent: QWidget, name: str, delete: Callable[[], object]) -> DeleteQuestion:
    """Ask before deleting customer ``name``; ``delete()`` runs on "Delete". Returns the
    (window-modal, already open) question, so a caller or a test can answer it."""
    box = DeleteQuestion(parent, name, delete)
    box.open()
    return box


class DeletedCustomersDialog(QDialog):
    """A searchable list of deleted customers with Restore."""

    #: Open this customer (customer id), e.g. right after restoring it.
    customerRequested = Signal(str)

    def __init__(self, core: ClientCore, bridge: CoreBridge,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.core = core
        self.setWindowTitle("Deleted customers")
        self.setAccessibleName("Deleted customers")
        self.resize(620, 420)
        self.search = QLineEdit(self)
        self.search.setPlaceholderText("Search deleted customers (name, e-mail, phone, city…)")
        self.search.setClearButtonEnabled(True)
        self.search.setAccessibleName("Search deleted customers")
        self.message = QLabel(self)
        self.message.setWordWrap(True)
        self.tree = QTreeWidget(self)
        self.tree.setAccessibleName("Deleted customers, most recently deleted first")
        self.tree.setHeaderLabels(["Customer", "City", "Phone", "Deleted"])
        self.tree.setRootIsDecorated(False)
        self.tree.setUniformRowHeights(True)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setColumnWidth(0, 220)
        self.restore_button = QPushButton("Restore", self)
        self.restore_button.setToolTip("Bring the selected customer back for everyone")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.addButton(self.restore_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.search)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.message)
        layout.addWidget(buttons)
        self._later = QTimer(self)
        self._later.setSingleShot(True)
        self._later.setInterval(_REFRESH_MS)
        self._later.timeout.connect(self.refresh)
        self.search.textChanged.connect(lambda _t: self._later.start())
        self.tree.itemSelectionChanged.connect(self._update_buttons)
        self.tree.itemActivated.connect(lambda _item, _col: self.restore_selected())
        self.restore_button.clicked.connect(self.restore_selected)
        bridge.directoryChanged.connect(lambda *_: self._later.start())
        bridge.documentChanged.connect(lambda *_: self._later.start())
        self.refresh()

    def refresh(self) -> None:
        """Reload the list from the local directory."""
        if self.core.closed:
            return
        keep = self.selected()
        rows = self.core.deleted_customers(self.search.text())
        now = time.time()
        self.tree.clear()
        for row in rows:
            item = QTreeWidgetItem([row.get("name") or "(no name)", row.get("city") or "",
                                    row.get("phone") or "", age_text(now - row.updated_at)])
            item.setData(0, _ROLE_CUSTOMER, row.customer_id)
            item.setToolTip(3, time.strftime("%Y-%m-%d %H:%M", time.localtime(row.updated_at)))
            self.tree.addTopLevelItem(item)
            if row.customer_id == keep:
                item.setSelected(True)
        if not rows:
            self.message.setText("No deleted customer matches." if self.search.text()
                                 else "No customer has been deleted.")
        elif not self.message.text().endswith("is back."):
            self.message.setText(f"{len(rows)} deleted customer{'s' if len(rows) != 1 else ''}"
                                 ". Select one and press Restore.")
        self._update_buttons()

    def selected(self) -> str | None:
        """The selected customer's id."""
        items = self.tree.selectedItems()
        return str(items[0].data(0, _ROLE_CUSTOMER)) if items else None

    def select(self, row: int) -> None:
        """Select a row (0: the most recently deleted)."""
        item = self.tree.topLevelItem(row)
        if item is not None:
            self.tree.setCurrentItem(item)

    def names(self) -> list[str]:
        """The customers listed, top to bottom (for tests)."""
        items = (self.tree.topLevelItem(i) for i in range(self.tree.topLevelItemCount()))
        return [item.text(0) for item in items if item is not None]

    def restore_selected(self) -> None:
        """Restore the selected customer."""
        cid = self.selected()
        if cid is not None:
            self.restore_button.setEnabled(False)
            spawn(self._restore(cid), what="restore customer")

    async def _restore(self, cid: str) -> None:
        name = next((i.text(0) for i in self.tree.selectedItems()), "The customer")
        self.message.setText(f"Restoring {name}…")
        try:
            await self.core.open_customer(cid)  # the restore is made on the real document
            if not self.core.customer(cid).deleted:
                await self.core.sync(_FETCH_TIMEOUT)
            if not self.core.customer(cid).deleted:
                self.message.setText(f"{name} cannot be restored from this computer right "
                                     "now: Live Edit needs the connection to fetch it. Try "
                                     "again when you are back online.")
                return
            await self.core.restore_customer(cid)
        except SyncTimeout:
            self.message.setText(f"{name} could not be fetched from the server in time; "
                                 "try again in a moment.")
            return
        except CoreError as exc:
            report_error(str(exc))
            return
        finally:
            self._update_buttons()
        self.message.setText(f"{name} is back.")
        self.refresh()
        self.customerRequested.emit(cid)

    def _update_buttons(self) -> None:
        self.restore_button.setEnabled(self.selected() is not None)


def show_deleted_customers(core: ClientCore, bridge: CoreBridge, parent: QWidget,
                           open_customer: Callable[[str], object]) -> DeletedCustomersDialog:
    """Open (or raise) ``parent``'s Deleted customers dialog; a restored customer opens
    through ``open_customer``."""
    dialog = parent.findChild(DeletedCustomersDialog)
    if not isinstance(dialog, DeletedCustomersDialog):
        dialog = DeletedCustomersDialog(core, bridge, parent)
        dialog.customerRequested.connect(open_customer)
    dialog.refresh()
    dialog.show()
    dialog.raise_()
    dialog.activateWindow()
    return dialog
