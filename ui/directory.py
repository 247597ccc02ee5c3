"""The customer directory: a search box over a lazily paged list of every customer.

The rows come from :class:`ui.directory_model.DirectoryModel` (pages of ~200 from the local
full-text index, columns from the field table's directory fields); how a row is drawn (two
lines, the matches highlighted, the other reps' avatars) is :mod:`ui.directory_rows`.

:class:`DirectoryPanel` fits its space: every row is two lines in the first column (the
name, then the place and the other directory fields), with the other reps on the customer
as small avatars at the right and the search terms highlighted; when the pane is wide
enough, further fields get their own columns (and leave the second line). A count under
the search box says how many customers match. Search-as-you-type is debounced, the
selection survives refreshes, Tab leaves the table (arrows move inside it), and
``customerActivated(id)`` fires on Enter or double-click.
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QKeyEvent, QResizeEvent
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
from sync.protocol import schema
from ui.bridge import CoreBridge
from ui.directory_model import PAGE_SIZE, DirectoryModel
from ui.directory_rows import DETAIL_ROLE, NAME_MIN_WIDTH, VIEWERS_ROLE, RowDelegate, match_spans

__all__ = ["DETAIL_ROLE", "PAGE_SIZE", "VIEWERS_ROLE", "DirectoryModel", "DirectoryPanel",
           "count_text", "match_spans"]

log = logging.getLogger(__name__)

SEARCH_DELAY_MS = 120
REFRESH_DELAY_MS = 150


def count_text(count: int, query: str) -> str:
    """ "2 customers", "1 match", "1,204 matches"."""
    if query.strip():
        return f"{count:,} match{'es' if count != 1 else ''}"
    return f"{count:,} customer{'s' if count != 1 else ''}"


class _Table(QTableView):
    """The directory table: Enter activates the current row; Tab leaves the table."""

    activatedRow = Signal(int)
    resized = Signal()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        """Enter/Return on a row activates it; other keys behave as usual."""
        if event.key() in {Qt.Key.Key_Return, Qt.Key.Key_Enter} and self.currentIndex().isValid():
            self.activatedRow.emit(self.currentIndex().row())
            return
        super().keyPressEvent(event)

    def resizeEvent(self, event: QResizeEvent) -> None:
        """The panel re-fits its columns to the new width."""
        super().resizeEvent(event)
        self.resized.emit()


def _placeholder() -> str:
    """ "Search name, e-mail, phone, city or zip" from the searchable fields."""
    labels = [f.label.lower() if f.label != f.label.upper() else f.label
              for f in schema.searchable_fields()]
    if len(labels) > 1:
        return f"Search {', '.join(labels[:-1])} or {labels[-1]}"
    return f"Search {''.join(labels)}"


class DirectoryPanel(QWidget):
    """Search box, result count and the customer list. Emits ``customerActivated(id)``."""

    customerActivated = Signal(str)

    def __init__(self, core: ClientCore, bridge: CoreBridge,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._core = core
        self._bridge = bridge
        self._keep_selected: str | None = None
        self._stale = False
        self.model = DirectoryModel(core, self)
        self.search = QLineEdit(self)
        self.count_label = QLabel(self)
        self.table = _Table(self)
        self.empty_label = QLabel(self)
        self._search_timer = QTimer(self, singleShot=True, interval=SEARCH_DELAY_MS)
        self._refresh_timer = QTimer(self, singleShot=True, interval=REFRESH_DELAY_MS)
        self._build()
        self._connect()
        self._update_empty_label()
        self._update_count()

    def _build(self) -> None:
        self.search.setPlaceholderText(_placeholder())
        self.search.setClearButtonEnabled(True)
        self.search.setAccessibleName("Search customers")
        self.search.installEventFilter(self)
        self.count_label.setObjectName("resultCount")
        self.count_label.setAccessibleName("Number of customers shown")
        self.count_label.setEnabled(False)  # the palette's quiet text colour
        table = self.table
        table.setModel(self.model)
        table.setItemDelegateForColumn(0, RowDelegate(self))
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setTabKeyNavigation(False)  # Tab moves between panes, arrows in the table
        table.setAlternatingRowColors(True)
        table.setShowGrid(False)
        table.setWordWrap(False)
        table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        table.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        # The indicator first: enabling sorting sorts by it at once, and Qt's default is
        # descending, which sorts all 100,000 rows (~0.2 s) only to be re-sorted ascending.
        header = table.horizontalHeader()
        header.setSortIndicator(0, Qt.SortOrder.AscendingOrder)
        table.setSortingEnabled(True)
        header.setHighlightSections(False)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        vertical = table.verticalHeader()
        vertical.hide()
        vertical.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)  # uniform rows: fast
        vertical.setDefaultSectionSize(table.fontMetrics().height() * 2 + 14)
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)
        self.empty_label.setEnabled(False)  # the palette's quiet text colour
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.search)
        layout.addWidget(self.count_label)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.empty_label)
        self.setMinimumWidth(220)  # the window still shrinks to ~700 px
        self._fit_columns()

    def _connect(self) -> None:
        self.search.textChanged.connect(lambda _t: self._search_timer.start())
        self._search_timer.timeout.connect(self._apply_search)
        self.table.doubleClicked.connect(lambda index: self._activate(index.row()))
        self.table.activatedRow.connect(self._activate)
        self.model.modelAboutToBeReset.connect(self._remember_selection)
        self.model.modelReset.connect(self._restore_selection)
        self.model.modelReset.connect(self._update_empty_label)
        self._refresh_timer.timeout.connect(self.model.refresh)
        self.model.modelReset.connect(self._update_count)
        self.model.layoutChanged.connect(self._update_count)
        self.table.resized.connect(self._fit_columns)
        self._bridge.directoryChanged.connect(lambda _n, _s: self._refresh_timer.start())
        self._bridge.documentChanged.connect(self._on_document_changed)
        self._bridge.presenceUpdated.connect(self._on_presence)

    # --- public API ------------------------------------------------------------------------

    def focus_search(self) -> None:
        """Put the cursor in the search box, its text selected (Ctrl+F)."""
        self.search.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.search.selectAll()

    def row_text(self, row: int) -> str:
        """What a row shows: its name, detail line, visible columns and who is on it."""
        parts = [self.model.index(row, 0).data(Qt.ItemDataRole.AccessibleTextRole) or ""]
        parts += [str(self.model.index(row, c).data() or "")
                  for c in range(1, self.model.columnCount())
                  if not self.table.isColumnHidden(c)]
        return " · ".join(p for p in parts if p)

    def set_presence_stale(self, stale: bool) -> None:
        """Offline: the avatars in the rows may not be current, so they are greyed out."""
        if stale != self._stale:
            self._stale = stale
            self.table.viewport().update()

    def presence_stale(self) -> bool:
        """True while presence is shown greyed out."""
        return self._stale

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

    def _fit_columns(self) -> None:
        """Give the next fields (in table order) a column of their own while they fit
        beside the first column's minimum; the rest stay on each row's detail line."""
        metrics = self.table.fontMetrics()
        room = self.table.viewport().width() - NAME_MIN_WIDTH
        shown = {"name"}
        for column, field in enumerate(self.model.columns):
            if column == 0:
                continue
            width = min(220, max(70, metrics.averageCharWidth() * min(field.max_length, 24)))
            fits = room >= width and len(shown) == column  # in table order, no gaps
            self.table.setColumnHidden(column, not fits)
            if fits:
                self.table.setColumnWidth(column, width)
                room -= width
                shown.add(field.name)
        self.model.set_shown_columns(shown)
        self.table.horizontalHeader().setVisible(len(shown) > 1)

    def _update_count(self) -> None:
        self.count_label.setText(count_text(self.model.total(), self.model.query))

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
        if event.fields & {f.name for f in self.model.columns} or "meta" in event.roots:
            self._refresh_timer.start()

    def _on_presence(self, customer_id: str, peers: dict[str, tuple[str, Any]]) -> None:
        me = self._core.username
        names = [user for user, _state in peers.values() if user != me]
        self.model.set_viewers(customer_id, names)
