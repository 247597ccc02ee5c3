"""The customer directory: a search box over a lazily paged table of every customer.

:class:`DirectoryModel` reads pages of ~200 rows from the local full-text index (through
the core) only as the view scrolls (``canFetchMore``/``fetchMore``), so 100,000 customers
cost one page of rows, not 100,000 (and never one widget per row). Sorting by name comes
straight off the index; other columns ask the replica's ``search(order_by=…)`` to sort
every match, so paging stays consistent. The model caches rows only: the replica is the
truth, and a directory change re-reads the rows already loaded.

:class:`DirectoryPanel` adds search-as-you-type (debounced), keeps the selection across
refreshes, shows who else is on a customer, and emits ``customerActivated(id)`` on Enter or
double-click.
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QEvent,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QLineEdit,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.core import ClientCore
from app.events import DocumentChanged
from app.replica import DirectoryRow
from ui.bridge import CoreBridge
from ui.colors import presence_color

__all__ = ["COLUMNS", "PAGE_SIZE", "DirectoryModel", "DirectoryPanel"]

log = logging.getLogger(__name__)

PAGE_SIZE = 200
SEARCH_DELAY_MS = 120
REFRESH_DELAY_MS = 150

#: (header, DirectoryRow attribute or None for "Viewing").
COLUMNS: tuple[tuple[str, str | None], ...] = (
    ("Name", "name"), ("City", "city"), ("State", "state"), ("Zip", "zip"),
    ("E-mail", "email"), ("Phone", "phone"), ("Viewing", None),
)
VIEWING_COLUMN = len(COLUMNS) - 1
_DIRECTORY_FIELDS = frozenset({"name", "email", "phone", "city", "state", "zip"})
_Index = QModelIndex | QPersistentModelIndex


class DirectoryModel(QAbstractTableModel):
    """Rows of the local directory matching a query, loaded a page at a time."""

    def __init__(self, core: ClientCore, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._core = core
        self._query = ""
        self._order_by = "name"
        self._descending = False
        self._rows: list[DirectoryRow] = []
        self._exhausted = False
        self._viewers: dict[str, list[str]] = {}
        self._load(PAGE_SIZE, reset=True)

    # --- what the view asks ------------------------------------------------------------

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        """Rows loaded so far (more arrive through fetchMore)."""
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        """One column per entry of COLUMNS."""
        return 0 if parent.isValid() else len(COLUMNS)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        """Cell text; the Viewing column also has a tooltip and the first viewer's colour."""
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        row = self._rows[index.row()]
        attr = COLUMNS[index.column()][1]
        if role == Qt.ItemDataRole.DisplayRole:
            if attr is None:
                return ", ".join(self._viewers.get(row.customer_id, ()))
            value = getattr(row, attr)
            return value if value else ("(no name)" if attr == "name" else "")
        if role == Qt.ItemDataRole.ToolTipRole and attr is None:
            names = self._viewers.get(row.customer_id)
            return f"On this customer now: {', '.join(names)}" if names else None
        if role == Qt.ItemDataRole.ForegroundRole and attr is None:
            names = self._viewers.get(row.customer_id)
            return presence_color(names[0]) if names else None
        if role == Qt.ItemDataRole.UserRole:
            return row.customer_id
        return None

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        """Column titles."""
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section][0]
        return None

    def canFetchMore(self, parent: _Index) -> bool:
        """True until a short page showed the end of the matches."""
        return not parent.isValid() and not self._exhausted

    def fetchMore(self, parent: _Index) -> None:
        """Load the next page."""
        if not parent.isValid() and not self._exhausted:
            self._load(PAGE_SIZE, reset=False)

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Order by a column (the Viewing column sorts by name); reloads the first page."""
        attr = COLUMNS[column][1] or "name"
        self._order_by = attr
        self._descending = order == Qt.SortOrder.DescendingOrder
        self._load(PAGE_SIZE, reset=True)

    # --- what the panel asks -----------------------------------------------------------

    @property
    def query(self) -> str:
        """The current search text."""
        return self._query

    def set_query(self, query: str) -> None:
        """Show the customers matching ``query`` (from the first page)."""
        self._query = query
        self._load(PAGE_SIZE, reset=True)

    def customer_id(self, row: int) -> str | None:
        """The customer shown in ``row``."""
        return self._rows[row].customer_id if 0 <= row < len(self._rows) else None

    def row_of(self, customer_id: str) -> int:
        """The row of a customer among the loaded rows, or -1."""
        for i, row in enumerate(self._rows):
            if row.customer_id == customer_id:
                return i
        return -1

    def refresh(self) -> None:
        """Re-read the rows already loaded; unchanged order → only changed cells repaint."""
        if self._core.closed:  # a timer that outlived the session
            return
        wanted = max(PAGE_SIZE, len(self._rows))
        fresh = self._fetch(0, wanted)
        if [r.customer_id for r in fresh] == [r.customer_id for r in self._rows]:
            for i, (old, new) in enumerate(zip(self._rows, fresh, strict=True)):
                if old != new:
                    self._rows[i] = new
                    self.dataChanged.emit(self.index(i, 0), self.index(i, VIEWING_COLUMN - 1))
            return
        self.beginResetModel()
        self._rows = fresh
        self._exhausted = len(fresh) < wanted
        self.endResetModel()

    def set_viewers(self, customer_id: str, names: list[str]) -> None:
        """Who else is on ``customer_id`` now (shown in the Viewing column)."""
        if names:
            self._viewers[customer_id] = sorted(set(names), key=str.casefold)
        elif self._viewers.pop(customer_id, None) is None:
            return
        row = self.row_of(customer_id)
        if row >= 0:
            cell = self.index(row, VIEWING_COLUMN)
            self.dataChanged.emit(cell, cell)

    # --- loading -----------------------------------------------------------------------

    def _fetch(self, offset: int, limit: int) -> list[DirectoryRow]:
        if self._core.closed:
            return []
        return list(self._core.search(self._query, limit, offset, order_by=self._order_by,
                                      descending=self._descending))

    def _seed_viewers(self, rows: list[DirectoryRow]) -> None:
        """Presence the core already knows for rows just loaded (events bring the rest)."""
        me = self._core.username
        for row in rows:
            peers = self._core.presence(row.customer_id)
            names = sorted({user for user, _state in peers.values() if user != me},
                           key=str.casefold)
            if names:
                self._viewers[row.customer_id] = names

    def _load(self, count: int, *, reset: bool) -> None:
        offset = 0 if reset else len(self._rows)
        rows = self._fetch(offset, count)
        self._seed_viewers(rows)
        if reset:
            self.beginResetModel()
            self._rows = rows
            self._exhausted = len(rows) < count
            self.endResetModel()
            return
        self._exhausted = len(rows) < count
        if rows:
            self.beginInsertRows(QModelIndex(), offset, offset + len(rows) - 1)
            self._rows.extend(rows)
            self.endInsertRows()


class _Table(QTableView):
    """The directory table: Enter activates the current row."""

    activatedRow = Signal(int)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        """Enter/Return on a row activates it; other keys behave as usual."""
        if event.key() in {Qt.Key.Key_Return, Qt.Key.Key_Enter} and self.currentIndex().isValid():
            self.activatedRow.emit(self.currentIndex().row())
            return
        super().keyPressEvent(event)


class DirectoryPanel(QWidget):
    """Search box + customer table. Emits ``customerActivated(customer_id)``."""

    customerActivated = Signal(str)

    def __init__(self, core: ClientCore, bridge: CoreBridge,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._core = core
        self._bridge = bridge
        self._keep_selected: str | None = None
        self.model = DirectoryModel(core, self)
        self.search = QLineEdit(self)
        self.table = _Table(self)
        self.empty_label = QLabel(self)
        self._search_timer = QTimer(self, singleShot=True, interval=SEARCH_DELAY_MS)
        self._refresh_timer = QTimer(self, singleShot=True, interval=REFRESH_DELAY_MS)
        self._build()
        self._connect()
        self._update_empty_label()

    def _build(self) -> None:
        self.search.setPlaceholderText("Search name, e-mail, phone, city or zip")
        self.search.setClearButtonEnabled(True)
        self.search.setAccessibleName("Search customers")
        self.search.installEventFilter(self)
        table = self.table
        table.setModel(self.model)
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setAlternatingRowColors(True)
        table.setShowGrid(False)
        table.setWordWrap(False)
        # The indicator first: enabling sorting sorts by it at once, and Qt's default is
        # descending, which sorts all 100,000 rows (~0.2 s) only to be re-sorted ascending.
        table.horizontalHeader().setSortIndicator(0, Qt.SortOrder.AscendingOrder)
        table.setSortingEnabled(True)
        table.horizontalHeader().setStretchLastSection(True)
        table.horizontalHeader().setHighlightSections(False)
        vertical = table.verticalHeader()
        vertical.hide()
        vertical.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)  # uniform rows: fast
        vertical.setDefaultSectionSize(table.fontMetrics().height() + 10)
        for column, width in enumerate((200, 120, 100, 70, 210, 130)):
            table.setColumnWidth(column, width)
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)
        self.empty_label.setEnabled(False)  # the palette's quiet text colour
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        layout.addWidget(self.search)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.empty_label)

    def _connect(self) -> None:
        self.search.textChanged.connect(lambda _t: self._search_timer.start())
        self._search_timer.timeout.connect(self._apply_search)
        self.table.doubleClicked.connect(lambda index: self._activate(index.row()))
        self.table.activatedRow.connect(self._activate)
        self.model.modelAboutToBeReset.connect(self._remember_selection)
        self.model.modelReset.connect(self._restore_selection)
        self.model.modelReset.connect(self._update_empty_label)
        self._refresh_timer.timeout.connect(self.model.refresh)
        self._bridge.directoryChanged.connect(lambda _n, _s: self._refresh_timer.start())
        self._bridge.documentChanged.connect(self._on_document_changed)
        self._bridge.presenceUpdated.connect(self._on_presence)

    # --- public API ------------------------------------------------------------------------

    def focus_search(self) -> None:
        """Put the cursor in the search box, its text selected (Ctrl+F)."""
        self.search.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.search.selectAll()

    def selected_customer(self) -> str | None:
        """The customer of the selected row, if any."""
        rows = self.table.selectionModel().selectedRows()
        return self.model.customer_id(rows[0].row()) if rows else None

    def select_customer(self, customer_id: str) -> bool:
        """Select a customer's row if it is loaded; False otherwise."""
        row = self.model.row_of(customer_id)
        if row < 0:
            return False
        self.table.selectRow(row)
        self.table.scrollTo(self.model.index(row, 0))
        return True

    # --- slots -------------------------------------------------------------------------

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """In the search box, Down moves into the table and Enter opens the first match."""
        if watched is self.search and isinstance(event, QKeyEvent) \
                and event.type() == QEvent.Type.KeyPress:
            key = event.key()
            if key == Qt.Key.Key_Down and self.model.rowCount():
                self.table.setFocus()
                if not self.table.currentIndex().isValid():
                    self.table.selectRow(0)
                return True
            if key in {Qt.Key.Key_Return, Qt.Key.Key_Enter}:
                if self._search_timer.isActive():
                    self._search_timer.stop()
                    self._apply_search()
                selected = self.selected_customer()
                row = self.model.row_of(selected) if selected else 0
                if self.model.rowCount():
                    self._activate(max(row, 0))
                return True
        return super().eventFilter(watched, event)

    def _apply_search(self) -> None:
        self.model.set_query(self.search.text())
        if self.model.rowCount() and not self.table.selectionModel().hasSelection():
            self.table.scrollToTop()

    def _activate(self, row: int) -> None:
        customer_id = self.model.customer_id(row)
        if customer_id is not None:
            self.table.selectRow(row)
            self.customerActivated.emit(customer_id)

    def _remember_selection(self) -> None:
        self._keep_selected = self.selected_customer()

    def _restore_selection(self) -> None:
        if self._keep_selected is not None:
            self.select_customer(self._keep_selected)

    def _update_empty_label(self) -> None:
        if self.model.rowCount():
            self.empty_label.hide()
            return
        query = self.model.query.strip()
        self.empty_label.setText(
            f"No customers match “{query}”." if query
            else "No customers yet. They appear here as soon as the directory syncs."
        )
        self.empty_label.show()

    def _on_document_changed(self, event: DocumentChanged) -> None:
        """A local edit changes the directory too (no DirectoryChanged for those)."""
        if event.fields & _DIRECTORY_FIELDS or "meta" in event.roots:
            self._refresh_timer.start()

    def _on_presence(self, customer_id: str, peers: dict[str, tuple[str, Any]]) -> None:
        me = self._core.username
        names = [user for user, _state in peers.values() if user != me]
        self.model.set_viewers(customer_id, names)
