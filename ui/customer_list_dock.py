"""A dock listing rows about customers, with a placeholder while it is empty.

The Activity and Conflicts docks are both this: a tree whose rows carry a customer id
(``ROLE_CUSTOMER``; clicking or activating a row asks to open that customer), and a
greyed explanation shown instead of the tree when there is nothing to list.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal
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

__all__ = ["ROLE_CUSTOMER", "CustomerListDock"]

#: Item data role holding a row's customer id.
ROLE_CUSTOMER = Qt.ItemDataRole.UserRole


class CustomerListDock(QDockWidget):
    """The shared frame: ``tree``, ``empty``, ``stack`` and ``customerRequested``."""

    #: Open this customer (customer id).
    customerRequested = Signal(str)

    def __init__(self, core: ClientCore, title: str, object_name: str, *,
                 list_name: str, columns: Sequence[str], empty_text: str, empty_name: str,
                 parent: QWidget | None = None) -> None:
        super().__init__(title, parent)
        self.core = core
        self.setObjectName(object_name)
        self.setAccessibleName(title)
        self.tree = QTreeWidget()
        self.tree.setAccessibleName(list_name)
        self.tree.setHeaderLabels(list(columns))
        self.tree.setUniformRowHeights(True)
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.tree.itemClicked.connect(self._open)
        self.tree.itemActivated.connect(self._open)
        self.empty = QLabel(empty_text)
        self.empty.setAccessibleName(empty_name)
        self.empty.setWordWrap(True)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setEnabled(False)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.empty)
        self.stack.addWidget(self.tree)
        self.setWidget(self.stack)

    def show_list(self, has_rows: bool) -> None:
        """The tree when there are rows, else the placeholder."""
        self.stack.setCurrentWidget(self.tree if has_rows else self.empty)

    def _open(self, item: QTreeWidgetItem) -> None:
        cid = item.data(0, ROLE_CUSTOMER)
        if cid:
            self.customerRequested.emit(cid)
