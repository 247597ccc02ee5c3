"""The directory's rows: a Qt table model over the local search, loaded a page at a time.

:class:`DirectoryModel` reads pages of ~200 rows from the local full-text index (through
the core) only as the view scrolls (``canFetchMore``/``fetchMore``), so 100,000 customers
cost one page of rows, not 100,000 (and never one widget per row). Its columns are the
field table's directory fields (``schema.directory_fields()``, read when the model is
built), name first. Sorting by name comes straight off the index; other columns ask the
replica's ``search(order_by=…)`` to sort every match, so paging stays consistent. The model
caches rows only: the replica is the truth, and a directory change re-reads the rows
already loaded. Column 0 also answers :data:`~ui.directory_rows.DETAIL_ROLE` and
:data:`~ui.directory_rows.VIEWERS_ROLE` for the row delegate.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt

from app.core import ClientCore
from sync.protocol import schema
from ui.directory_rows import DETAIL_ROLE, VIEWERS_ROLE, detail_fields

__all__ = ["PAGE_SIZE", "DirectoryModel"]

PAGE_SIZE = 200
_Index = QModelIndex | QPersistentModelIndex


class DirectoryModel(QAbstractTableModel):
    """Rows of the local directory matching a query, loaded a page at a time."""

    def __init__(self, core: ClientCore, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._core = core
        fields = schema.directory_fields()
        #: The columns: the field table's directory fields, the name first.
        self.columns: tuple[schema.Field, ...] = (
            *(f for f in fields if f.name == "name"), *(f for f in fields if f.name != "name"))
        self._query = ""
        self._order_by = "name"
        self._descending = False
        self._rows: list[Any] = []
        self._exhausted = False
        self._total = 0
        self._viewers: dict[str, list[str]] = {}
        self._shown: set[str] = {f.name for f in self.columns}
        self._load(PAGE_SIZE, reset=True)

    # --- what the view asks ------------------------------------------------------------

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        """Rows loaded so far (more arrive through fetchMore)."""
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        """One column per directory field."""
        return 0 if parent.isValid() else len(self.columns)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        """Cell text; column 0 also has the detail line, the viewers and a tooltip."""
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        row = self._rows[index.row()]
        field = self.columns[index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            value = row.get(field.name)
            return value if value else ("(no name)" if field.name == "name" else "")
        if index.column() != 0:
            return None
        if role == DETAIL_ROLE:
            return self.detail(row)
        if role == VIEWERS_ROLE:
            return list(self._viewers.get(row.customer_id, ()))
        if role == Qt.ItemDataRole.ToolTipRole:
            names = self._viewers.get(row.customer_id)
            lines = [f"{f.label}: {row.get(f.name)}" for f in self.columns if row.get(f.name)]
            if names:
                lines.append(f"On this customer now: {', '.join(names)}")
            return "\n".join(lines) or None
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return " — ".join(p for p in (row.get("name") or "(no name)", self.detail(row),
                                          ", ".join(self._viewers.get(row.customer_id, ())))
                              if p)
        if role == Qt.ItemDataRole.UserRole:
            return row.customer_id
        return None

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        """Column titles: the fields' labels."""
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.columns[section].label
        return None

    def canFetchMore(self, parent: _Index) -> bool:
        """True until a short page showed the end of the matches."""
        return not parent.isValid() and not self._exhausted

    def fetchMore(self, parent: _Index) -> None:
        """Load the next page."""
        if not parent.isValid() and not self._exhausted:
            self._load(PAGE_SIZE, reset=False)

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Order by a column; reloads the first page."""
        self._order_by = self.columns[column].name
        self._descending = order == Qt.SortOrder.DescendingOrder
        self._load(PAGE_SIZE, reset=True)

    # --- what the panel asks -----------------------------------------------------------

    @property
    def query(self) -> str:
        """The current search text."""
        return self._query

    def total(self) -> int:
        """How many customers match the query (not only the rows loaded)."""
        return self._total

    def set_query(self, query: str) -> None:
        """Show the customers matching ``query`` (from the first page)."""
        self._query = query
        self._load(PAGE_SIZE, reset=True)

    def set_shown_columns(self, names: set[str]) -> None:
        """Which fields have a visible column (the others go on the detail line)."""
        if names != self._shown:
            self._shown = set(names)
            if self._rows:
                self.dataChanged.emit(self.index(0, 0), self.index(len(self._rows) - 1, 0))

    def detail(self, row: Any) -> str:
        """The detail line of a row: "Boston, MA 02110 · (823) 497-3210 · ada@…"."""
        fields = detail_fields(self.columns, self._shown)
        place = ", ".join(v for f in fields if f.address and (v := row.get(f.name)))
        others = [v for f in fields if not f.address and (v := row.get(f.name))]
        return " · ".join(p for p in (place, *others) if p)

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
        self._total = self._count()
        if [r.customer_id for r in fresh] == [r.customer_id for r in self._rows]:
            for i, (old, new) in enumerate(zip(self._rows, fresh, strict=True)):
                if old != new:
                    self._rows[i] = new
                    self.dataChanged.emit(self.index(i, 0),
                                          self.index(i, len(self.columns) - 1))
            self.layoutChanged.emit()  # the count may have changed
            return
        self.beginResetModel()
        self._rows = fresh
        self._exhausted = len(fresh) < wanted
        self.endResetModel()

    def set_viewers(self, customer_id: str, names: list[str]) -> None:
        """Who else is on ``customer_id`` now (avatars in its row)."""
        if names:
            self._viewers[customer_id] = sorted(set(names), key=str.casefold)
        elif self._viewers.pop(customer_id, None) is None:
            return
        row = self.row_of(customer_id)
        if row >= 0:
            cell = self.index(row, 0)
            self.dataChanged.emit(cell, cell)

    # --- loading -----------------------------------------------------------------------

    def _fetch(self, offset: int, limit: int) -> list[Any]:
        if self._core.closed:
            return []
        return list(self._core.search(self._query, limit, offset, order_by=self._order_by,
                                      descending=self._descending))

    def _count(self) -> int:
        if self._core.closed:
            return 0
        return self._core.count(self._query)

    def _seed_viewers(self, rows: list[Any]) -> None:
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
            self._total = self._count()
            self.endResetModel()
            return
        self._exhausted = len(rows) < count
        if rows:
            self.beginInsertRows(QModelIndex(), offset, offset + len(rows) - 1)
            self._rows.extend(rows)
            self.endInsertRows()
