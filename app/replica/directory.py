"""The replica's customer directory: rows from the server and local edits, searchable
offline with a full-text index.

The directory's columns and the index are derived from the field table
(:mod:`sync.protocol.schema`) when the replica is opened: one column per ``directory``
field, the full-text index over the ``searchable`` ones, and ``directory_digits`` with
the digits of each ``digits_search`` field (phone numbers) under a trigram index, so any
run of 3+ digits finds the number: "497-3210", "4973210" and "(823) 497-3210" all find
"823.497.3210" (:mod:`app.replica.schema` migrates an existing file). A word of the query
made of digits and phone punctuation matches either the text index or those digits.

A first sync (the replica has no directory yet) is a bulk load: its pages are staged in
``directory_load`` (:meth:`DirectoryStore.stage`, cheap, resumable) and moved into the
directory by :meth:`DirectoryStore.finish_load` in one transaction: rows inserted in
``sort_key`` order with the index triggers dropped, then each index built once. Search
never sees a half-built index (it reads the directory, which fills in one commit).

The directory's ``sort_key`` is the FTS rowid, chosen so that rowid order is name order
(see :func:`sort_key_group`): FTS5 returns matches in rowid order, so the first page of a
search is read straight off the index instead of joining and sorting every match (100,000
customers: a common prefix like "a" matches ~20,000 rows; join+sort costs 9 to 16 ms, this
costs 1 to 4 ms). Its bits, high to low: 1 bit deleted, 40 bits the first five bytes of the
name folded like ``COLLATE NOCASE`` (+1, so NULL names sort first), 22 bits a slot that
tells apart names sharing those bytes (a *group*). Groups are ordered like the names in
them; inside a group the exact order comes from ``ORDER BY name COLLATE NOCASE``.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgpack

from sync.protocol import schema as fields_table
from sync.protocol.messages import DirectoryEntry, DirectoryRows

from ._file import ReplicaError, ReplicaFile
from .schema import MIN_DIGITS, SchemaError, digit_string, digits_fields

__all__ = [
    "DELETED_BIT",
    "SLOT_BITS",
    "DirectoryRow",
    "DirectoryStore",
    "digit_terms",
    "first_matches",
    "free_sort_key",
    "fts_query",
    "sort_key_group",
    "write_directory",
]

log = logging.getLogger(__name__)

#: Bits of ``sort_key`` that tell apart names in one group; the rest is the group.
SLOT_BITS = 22
#: Set in the ``sort_key`` of deleted customers: they sort after every live one.
DELETED_BIT = 1 << 62
_PREFIX_BYTES = 5
_FOLD = bytes(range(256)).translate(
    bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz")
)
_LIVE = (0, DELETED_BIT)
_ALL_ROWS = (0, 2**63 - 1)
#: FTS5's in-memory index size before it writes a segment: its default, and the bulk load's.
_FTS5_HASH_SIZE = 1 << 20
_BULK_HASH_SIZE = 64 << 20
#: What a typed phone number is made of (its punctuation is ignored).
_NUMBER_CHARACTERS = frozenset("0123456789+()./-x ")


@dataclass(frozen=True, slots=True)
class DirectoryRow:
    """One customer in the local directory (what lists and search show).

    ``values`` holds every directory field of the field table; ``row.city`` reads one.
    """

    customer_id: str
    values: Mapping[str, str | None]
    updated_at: float
    deleted: bool
    cursor: int

    def __getattr__(self, name: str) -> str | None:
        if name.startswith("_") or name == "values":
            raise AttributeError(name)
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(f"the directory has no field {name!r}") from None

    def get(self, name: str) -> str | None:
        """The value of directory field ``name`` (None if empty or not a column)."""
        return self.values.get(name)


class DirectoryStore:
    """The directory of one replica (a part of :class:`app.replica.Replica`).

    The columns come from the field table when the replica is opened.
    """

    def __init__(self, replica: ReplicaFile) -> None:
        self._replica = replica
        self.fields = tuple(f.name for f in fields_table.directory_fields())
        self._digits = digits_fields()
        self._select = (f"SELECT customer_id, {', '.join(self.fields)}, updated_at, deleted, "  # noqa: S608
                        "cursor FROM directory")
        self._sortable = (*self.fields, "updated_at")

    def _row(self, row: tuple[Any, ...]) -> DirectoryRow:
        n = len(self.fields)
        return DirectoryRow(row[0], dict(zip(self.fields, row[1:n + 1], strict=True)),
                            row[n + 1], bool(row[n + 2]), row[n + 3])

    def _values(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return {f: values[f] for f in self.fields if f in values}

    def _matching(self, query: str) -> tuple[str, str, tuple[str, ...]] | None:
        """``(source, key, args)``: ``SELECT {key} {source}`` selects the sort keys matching
        ``query`` (``source`` is FROM … WHERE …, which the caller may extend with AND);
        None for "everyone".

        Words without digits go to the text index in one MATCH (the fast path, keys in
        rowid order); each number word also matches the digits index.
        """
        words = _words(query)
        if not words:
            return None
        numbers = [w for w in words if self._digits and _is_number(w)]
        text = fts_query(" ".join(w for w in words if w not in numbers))
        if not numbers:
            return "FROM directory_fts WHERE directory_fts MATCH ?", "rowid", (text or '""',)
        # Each condition its own subquery: FTS5 cannot MATCH under an OR of the same table.
        select, args = "FROM directory WHERE 1 = 1", []
        if text is not None:
            select += (" AND sort_key IN (SELECT rowid FROM directory_fts "
                       "WHERE directory_fts MATCH ?)")
            args.append(text)
        for word in numbers:
            select += (" AND (sort_key IN (SELECT rowid FROM directory_fts WHERE "
                       "directory_fts MATCH ?) OR sort_key IN (SELECT rowid FROM "
                       "directory_digits WHERE directory_digits MATCH ?))")
            # A trigram phrase of the digits: any run of them in the stored number.
            args += [fts_query(word) or '""', '"' + _digits(word) + '"']
        return select, "sort_key", tuple(args)

    def apply(self, entries: Iterable[DirectoryEntry]) -> int:
        """Store directory entries from the server; returns how many changed a row.

        An entry replaces the stored row only when its cursor is higher: pages of the
        initial feed and live changes may arrive interleaved, and an older one must not
        undo a newer one.
        """
        changed = 0
        r = self._replica
        with r.transaction():
            for entry in entries:
                changed += write_directory(
                    r._conn(), entry.customer_id, self._values(entry.fields),
                    deleted=entry.deleted, updated_at=entry.updated_at, cursor=entry.cursor,
                    digits=self._digits,
                )
        log.debug("directory: %d entries changed", changed)
        return changed

    def upsert_local(self, customer_id: str, values: Mapping[str, Any], deleted: bool) -> None:
        """Reflect a local (maybe offline) edit so search sees it at once (only directory
        fields of ``values``; the stored cursor is kept, so the server's next entry for
        this customer replaces the row)."""
        r = self._replica
        with r.transaction():
            write_directory(r._conn(), customer_id, self._values(values), deleted=deleted,
                            updated_at=time.time(), cursor=None, digits=self._digits)

    # --- the bulk load of a first sync ------------------------------------------------

    def is_empty(self) -> bool:
        """True when the directory holds no row (a first sync may bulk-load it)."""
        return self._replica._one("SELECT 1 FROM directory LIMIT 1") is None

    def stage(self, rows: DirectoryRows) -> None:
        """Stage a page of a first sync in ``directory_load`` as it came (one row);
        :meth:`finish_load` moves every staged page in."""
        page = msgpack.packb({"ids": rows.ids, "columns": rows.columns,
                              "updated_at": rows.updated_at, "deleted": rows.deleted,
                              "cursors": rows.cursors})
        with self._replica.transaction():
            self._replica._conn().execute("INSERT INTO directory_load (rows) VALUES (?)",
                                          (page,))
        log.debug("directory: %d entries staged", len(rows.ids))

    def finish_load(self) -> int:
        """Move the staged pages into the directory in one transaction; returns how many
        rows changed.

        Sort keys computed at once, rows inserted in ``sort_key`` order with the index
        triggers dropped, then the text index rebuilt and the digits indexed once (the
        triggers come back in the same transaction). A customer whose row appeared
        meanwhile (a local edit) is stored the row-by-row way first, and the new keys
        go after the keys already used in each name group.

        The rows are kept as columns (a list per column, as the pages came) and each row's
        tuple is made only as SQLite takes it: a tuple per row kept for the whole move would
        be ~300,000 objects for the cycle collector, and the app collects the young
        generation on the UI thread (ui/gc_guard.py): one pass over them froze the window
        for 60 ms or more.
        """
        r = self._replica
        started, cpu = time.perf_counter(), time.thread_time()
        with r.transaction():
            conn = r._conn()
            staged = _StagedColumns(len(self.fields))
            for (blob,) in conn.execute("SELECT rows FROM directory_load ORDER BY page"):
                staged.add(msgpack.unpackb(blob), self.fields)
            # Rows already there (local edits made during the load) go row by row.
            taken = dict(conn.execute("SELECT customer_id, sort_key FROM directory"))
            changed = self.apply(self._entry(staged.row(i)) for cid, i in staged.latest.items()
                                 if cid in taken) if taken else 0
            fresh = [i for cid, i in staged.latest.items() if cid not in taken]
            changed += self._bulk_insert(conn, staged, fresh, taken.values())
            conn.execute("DELETE FROM directory_load")
        log.info("directory: first sync stored %d rows in %.2f s (%.2f s of this thread's "
                 "CPU)", changed, time.perf_counter() - started, time.thread_time() - cpu)
        return changed

    def _entry(self, row: tuple[Any, ...]) -> DirectoryEntry:
        """A staged row ``(customer_id, *fields, updated_at, deleted, cursor)``."""
        n = len(self.fields)
        return DirectoryEntry(row[0], dict(zip(self.fields, row[1:n + 1], strict=True)),
                              row[n + 1], row[n + 2], row[n + 3])

    def _bulk_insert(self, conn: sqlite3.Connection, staged: _StagedColumns,
                     fresh: list[int], taken: Iterable[int]) -> int:
        """Insert the staged rows ``fresh`` (their indexes in ``staged``) of customers not
        in the directory (whose sort keys are ``taken``) and build its indexes once."""
        first: dict[int, int] = {}  # group → its first free slot
        for key in taken:
            group = key >> SLOT_BITS << SLOT_BITS
            first[group] = max(first.get(group, 0), key - group + 1)
        names = staged.columns[self.fields.index("name")] if "name" in self.fields else None
        deleted = staged.deleted
        groups = [sort_key_group(None if names is None else names[i], deleted[i])
                  for i in fresh]
        # In group order, each group's rows in the order they came (a stable sort of ints).
        order = sorted(range(len(fresh)), key=groups.__getitem__)
        limit = 1 << SLOT_BITS
        keys = [0] * len(fresh)
        used: dict[int, int] = {}
        for j in order:
            group = groups[j]
            slot = first.get(group, 0) + used.get(group, 0)
            if slot == limit:
                name = None if names is None else names[fresh[j]]
                raise SchemaError(f"more than {limit} customers have names starting like "
                                  f"{name!r}")
            used[group] = used.get(group, 0) + 1
            keys[j] = group | slot
        # A page cache that holds the new tables while their indexes are built.
        cache = conn.execute("PRAGMA cache_size").fetchone()[0]
        conn.execute("PRAGMA cache_size = -65536")
        try:
            self._insert_sorted(conn, staged, [keys[j] for j in order],
                                [fresh[j] for j in order], clear=not first)
        finally:
            conn.execute(f"PRAGMA cache_size = {int(cache)}")
        return len(order)

    def _insert_sorted(self, conn: sqlite3.Connection, staged: _StagedColumns,
                       keys: list[int], at: list[int], *, clear: bool) -> None:
        """Insert the rows ``at`` (indexes in ``staged``) under sort keys ``keys`` (in
        ascending order) with the index triggers dropped, then build the text index and
        their digits once (``clear``: the directory was empty, so the digits index is
        emptied first)."""
        triggers = conn.execute(
            "SELECT name, sql FROM sqlite_schema WHERE type = 'trigger' "
            "AND tbl_name = 'directory'").fetchall()
        for name, _sql in triggers:  # the derived layout's own triggers (sqlite_schema)
            conn.execute(f'DROP TRIGGER "{name}"')
        # Each column in insertion order; zip() makes each row's tuple as SQLite takes it.
        columns = [[column[i] for i in at] for column in staged.columns]
        table = (keys, [staged.ids[i] for i in at], *columns,
                 [staged.updated_at[i] for i in at], [int(staged.deleted[i]) for i in at],
                 [staged.cursors[i] for i in at])
        cols = ", ".join(self.fields)
        marks = ", ".join("?" for _ in range(len(self.fields) + 5))
        # Column names come from the field table (checked identifiers), never from input.
        conn.executemany(
            f"INSERT INTO directory (sort_key, customer_id, {cols}, updated_at, deleted, "  # noqa: S608
            f"cursor) VALUES ({marks})", zip(*table, strict=True))
        del table
        # One large in-memory index before each segment write: fewer segments to merge
        # (~25 % less CPU), then FTS5's default (1 MiB) again for later writes.
        conn.execute("INSERT INTO directory_fts(directory_fts, rank) VALUES ('hashsize', ?)",
                     (_BULK_HASH_SIZE,))
        conn.execute("INSERT INTO directory_fts(directory_fts) VALUES ('rebuild')")
        conn.execute("INSERT INTO directory_fts(directory_fts, rank) VALUES ('hashsize', ?)",
                     (_FTS5_HASH_SIZE,))
        if self._digits:
            digits = [map(digit_string, columns[self.fields.index(d)]) for d in self._digits]
            if clear:
                conn.execute("DELETE FROM directory_digits")
            conn.execute("INSERT INTO directory_digits(directory_digits, rank) "
                         "VALUES ('hashsize', ?)", (_BULK_HASH_SIZE,))
            conn.executemany(
                f"INSERT INTO directory_digits(rowid, {', '.join(self._digits)}) "  # noqa: S608
                f"VALUES (?, {', '.join('?' for _ in self._digits)})",
                zip(keys, *digits, strict=True))
            conn.execute("INSERT INTO directory_digits(directory_digits, rank) "
                         "VALUES ('hashsize', ?)", (_FTS5_HASH_SIZE,))
        for _name, sql in triggers:
            conn.execute(sql)

    def search(  # noqa: PLR0917 (positional query/limit/offset are the public shape)
        self, query: str, limit: int = 50, offset: int = 0, include_deleted: bool = False,
        order_by: str = "name", descending: bool = False,
    ) -> list[DirectoryRow]:
        """Customers matching every word of ``query`` as a prefix of a searchable field
        (or, for a number, of the digits of a ``digits_search`` field), ordered by name
        (case-insensitive); an empty query lists all by name.

        Not ranked (bm25 costs ~10x on a common term). FTS5 yields matches in sort_key
        order, which is name-group order, so only the first ``offset + limit`` matches plus
        the rest of the last group are read and sorted.

        ``order_by`` another directory column or ``updated_at``, or ``descending``: every
        match is sorted (case-insensitive, empty values last, then by name), which costs a
        scan of the matches.
        """
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must not be negative")
        if order_by not in self._sortable:
            raise ValueError(
                f"cannot order by {order_by!r}; use one of {', '.join(self._sortable)}")
        if order_by != "name" or descending:
            return self._search_sorted(query, limit, offset, include_deleted,
                                       order_by, descending)
        matching = self._matching(query)
        by_name = " ORDER BY name COLLATE NOCASE, customer_id"
        with self._replica._reading() as conn:
            if matching is None:
                where = "" if include_deleted else " WHERE deleted = 0"
                rows = conn.execute(f"{self._select}{where}{by_name} LIMIT ? OFFSET ?",
                                    (limit, offset)).fetchall()
                return [self._row(r) for r in rows]
            need = offset + limit
            keys = first_matches(conn, matching, need, _LIVE)
            if include_deleted:
                keys += first_matches(conn, matching, need, (DELETED_BIT, 2**63 - 1))
            rows = conn.execute(
                f"{self._select} WHERE sort_key IN (SELECT value FROM json_each(?))"  # noqa: S608
                f"{by_name} LIMIT ? OFFSET ?", (json.dumps(keys), limit, offset),
            ).fetchall()
        return [self._row(r) for r in rows]

    def _search_sorted(  # noqa: PLR0917
        self, query: str, limit: int, offset: int, include_deleted: bool, order_by: str,
        descending: bool,
    ) -> list[DirectoryRow]:
        """:meth:`search` ordered by any sortable column (see there)."""
        matching = self._matching(query)
        lo, hi = _ALL_ROWS if include_deleted else _LIVE
        direction = "DESC" if descending else "ASC"
        collate = "" if order_by == "updated_at" else " COLLATE NOCASE"
        order = (f" ORDER BY ({order_by} IS NULL OR {order_by} = ''), "
                 f"{order_by}{collate} {direction}, name COLLATE NOCASE {direction}, "
                 "customer_id")
        if matching is None:
            sql = (f"{self._select} WHERE sort_key >= ? AND sort_key < ?"
                   f"{order} LIMIT ? OFFSET ?")
            args: tuple[Any, ...] = (lo, hi, limit, offset)
        else:
            select, key, match_args = matching
            sql = (f"{self._select} WHERE sort_key IN (SELECT {key} {select} AND {key} >= ? "
                   f"AND {key} < ?){order} LIMIT ? OFFSET ?")
            args = (*match_args, lo, hi, limit, offset)
        with self._replica._reading() as conn:
            rows = conn.execute(sql, args).fetchall()
        return [self._row(r) for r in rows]

    def count(self, query: str, include_deleted: bool = False) -> int:
        """How many customers :meth:`search` would find without a limit."""
        matching = self._matching(query)
        lo, hi = _ALL_ROWS if include_deleted else _LIVE
        if matching is None:
            sql = "SELECT count(*) FROM directory WHERE sort_key >= ? AND sort_key < ?"
            args: tuple[str, ...] = ()
        else:
            select, key, args = matching
            sql = f"SELECT count(*) {select} AND {key} >= ? AND {key} < ?"
        total: int = self._replica._one(sql, (*args, lo, hi))
        return total

    def deleted(self, query: str = "", limit: int = 200) -> list[DirectoryRow]:
        """Deleted (tombstoned) customers matching ``query`` as :meth:`search` matches,
        most recently deleted first (the "Deleted customers" list, for restoring)."""
        matching = self._matching(query)
        order = " ORDER BY updated_at DESC, name COLLATE NOCASE, customer_id LIMIT ?"
        bounds = (DELETED_BIT, _ALL_ROWS[1])
        if matching is None:
            sql = f"{self._select} WHERE sort_key >= ? AND sort_key < ?{order}"
            args: tuple[Any, ...] = (*bounds, limit)
        else:
            select, key, match_args = matching
            sql = (f"{self._select} WHERE sort_key IN "
                   f"(SELECT {key} {select} AND {key} >= ? AND {key} < ?){order}")
            args = (*match_args, *bounds, limit)
        with self._replica._reading() as conn:
            rows = conn.execute(sql, args).fetchall()
        return [self._row(r) for r in rows]

    def get(self, customer_id: str) -> DirectoryRow | None:
        """The directory row of one customer (deleted or not), or None."""
        with self._replica._reading() as conn:
            row = conn.execute(f"{self._select} WHERE customer_id = ?",
                               (customer_id,)).fetchone()
        return None if row is None else self._row(row)


# --- the directory's sort_key -------------------------------------------------------


class _StagedColumns:
    """The staged pages of a first sync, concatenated column by column (a few long lists
    instead of a tuple per row), and each customer's newest row."""

    __slots__ = ("columns", "cursors", "deleted", "ids", "latest", "updated_at")

    def __init__(self, fields: int) -> None:
        self.ids: list[str] = []
        self.columns: list[list[Any]] = [[] for _ in range(fields)]
        self.updated_at: list[float] = []
        self.deleted: list[bool] = []
        self.cursors: list[int] = []
        #: Customer → the index of its newest row (first-seen order).
        self.latest: dict[str, int] = {}

    def add(self, page: dict[str, Any], fields: Sequence[str]) -> None:
        """Append a staged page (``DirectoryStore.stage``'s format)."""
        ids, cursors = page["ids"], page["cursors"]
        start, n = len(self.ids), len(ids)
        nulls = [None] * n
        values = [page["columns"].get(name, nulls) for name in fields]
        if any(len(v) != n for v in (*values, page["updated_at"], page["deleted"], cursors)):
            raise ReplicaError("the local replica is damaged: a staged page of the first "
                               "directory sync has columns of different lengths")
        for column, value in zip(self.columns, values, strict=True):
            column.extend(value)
        self.ids.extend(ids)
        self.updated_at.extend(page["updated_at"])
        self.deleted.extend(page["deleted"])
        self.cursors.extend(cursors)
        latest, all_cursors = self.latest, self.cursors
        for i, cid in enumerate(ids, start):
            old = latest.get(cid)
            if old is None or all_cursors[i] > all_cursors[old]:
                latest[cid] = i

    def row(self, i: int) -> tuple[Any, ...]:
        """Row ``i`` as ``(customer_id, *fields, updated_at, deleted, cursor)``."""
        return (self.ids[i], *(column[i] for column in self.columns), self.updated_at[i],
                self.deleted[i], self.cursors[i])


def sort_key_group(name: str | None, deleted: bool) -> int:
    """The first ``sort_key`` of the group a customer named ``name`` belongs to.

    Order-preserving: if ``a < b`` under ``COLLATE NOCASE`` (ASCII-only case folding, then
    bytes, shorter first), the group of ``a`` is not after the group of ``b``.
    """
    if name is None:
        prefix = 0
    else:
        folded = name.encode("utf-8", "surrogatepass").translate(_FOLD)
        # UTF-8 has no 0xFF byte, so prefix + 1 < 2**40 and never reaches DELETED_BIT.
        prefix = int.from_bytes(folded[:_PREFIX_BYTES].ljust(_PREFIX_BYTES, b"\0")) + 1
    return (DELETED_BIT if deleted else 0) | (prefix << SLOT_BITS)


def write_directory(
    conn: sqlite3.Connection, customer_id: str, values: dict[str, Any], *, deleted: bool,
    updated_at: float, cursor: int | None, digits: tuple[str, ...] = (),
) -> bool:
    """Insert or update one row, moving its sort_key when its name group changes, and
    keep its entry in the digits index (``digits``: the indexed fields) current.

    ``values`` maps directory columns to values. With a ``cursor``, an existing row with
    a cursor as high or higher is kept (False).
    """
    old = conn.execute(
        "SELECT name, sort_key, cursor FROM directory WHERE customer_id = ?", (customer_id,)
    ).fetchone()
    if old is not None and cursor is not None and cursor <= old[2]:
        return False
    name = values.get("name", old[0] if old else None)
    group = sort_key_group(name, deleted)
    key = old[1] if old and old[1] >> SLOT_BITS == group >> SLOT_BITS else None
    if key is None:
        key = free_sort_key(conn, group, name)
    row = {**values, "updated_at": updated_at, "deleted": int(deleted), "sort_key": key}
    if cursor is not None:
        row["cursor"] = cursor
    params = {f"v{i}": v for i, v in enumerate(row.values())}
    params["customer_id"] = customer_id
    # Column names come from the field table (checked identifiers), never from input.
    if old is None:
        conn.execute(
            f"INSERT INTO directory (customer_id, {', '.join(row)}) "  # noqa: S608
            f"VALUES (:customer_id, {', '.join(f':v{i}' for i in range(len(row)))})", params,
        )
    else:
        conn.execute(
            f"UPDATE directory SET {', '.join(f'{c} = :v{i}' for i, c in enumerate(row))} "  # noqa: S608
            "WHERE customer_id = :customer_id", params,
        )
    if digits and (old is None or old[1] != key or any(d in values for d in digits)):
        _index_digits(conn, customer_id, None if old is None else old[1], digits)
    return True


def _index_digits(conn: sqlite3.Connection, customer_id: str, old_key: int | None,
                  digits: tuple[str, ...]) -> None:
    """Replace a row's entry in ``directory_digits`` (after its directory row changed)."""
    if old_key is not None:
        conn.execute("DELETE FROM directory_digits WHERE rowid = ?", (old_key,))
    cols = ", ".join(digits)
    row = conn.execute(f"SELECT sort_key, {cols} FROM directory WHERE customer_id = ?",  # noqa: S608
                       (customer_id,)).fetchone()
    conn.execute(
        f"INSERT INTO directory_digits(rowid, {cols}) "  # noqa: S608
        f"VALUES (?, {', '.join('?' for _ in digits)})",
        (row[0], *(digit_string(v) for v in row[1:])),
    )


def free_sort_key(conn: sqlite3.Connection, group: int, name_hint: str | None = None) -> int:
    """An unused sort_key in ``group`` (after the last one used, else any gap)."""
    top = group + (1 << SLOT_BITS) - 1
    last = conn.execute(
        "SELECT max(sort_key) FROM directory WHERE sort_key BETWEEN ? AND ?", (group, top)
    ).fetchone()[0]
    if last is None:
        return group
    if last < top:
        return int(last) + 1
    if conn.execute("SELECT 1 FROM directory WHERE sort_key = ?", (group,)).fetchone() is None:
        return group
    gap = conn.execute(
        "SELECT sort_key + 1 FROM directory d WHERE sort_key BETWEEN ? AND ? AND NOT "
        "EXISTS (SELECT 1 FROM directory e WHERE e.sort_key = d.sort_key + 1) LIMIT 1",
        (group, top - 1),
    ).fetchone()
    if gap is None:
        raise SchemaError(
            f"more than {1 << SLOT_BITS} customers have names starting like {name_hint!r}"
        )
    return int(gap[0])


def first_matches(
    conn: sqlite3.Connection, matching: tuple[str, str, tuple[str, ...]], need: int,
    bounds: tuple[int, int],
) -> list[int]:
    """Sort keys of the first ``need`` matches in [lo, hi), completed to a whole group
    (``matching`` as :meth:`DirectoryStore._matching` makes it)."""
    select, key, args = matching
    sql = f"SELECT {key} {select} AND {key} >= ? AND {key} < ? ORDER BY {key} LIMIT ?"
    lo, hi = bounds
    keys = [r[0] for r in conn.execute(sql, (*args, lo, hi, need))]
    if need and len(keys) == need:
        # Matches in later groups sort after every name of this group: complete it.
        group = keys[-1] >> SLOT_BITS
        end = min(hi, (group + 1) << SLOT_BITS)
        keys += [r[0] for r in conn.execute(sql, (*args, keys[-1] + 1, end, -1))]
    return keys


def _words(text: str) -> list[str]:
    """What a person typed, as search words (runs of letters, digits and ``@.-_+'`` that
    hold a letter or digit), at most 16."""
    cleaned = "".join(c if c.isalnum() or c in "@.-_+'" else " " for c in text)
    return [t for t in cleaned.split() if any(c.isalnum() for c in t)][:16]


def digit_terms(query: str) -> list[str]:
    """The digits of each word of ``query`` that the search also looks up by digits (a
    phone number however punctuated), so a view can highlight what matched."""
    if not digits_fields():
        return []
    return [_digits(w) for w in _words(query) if _is_number(w)]


def _digits(word: str) -> str:
    return "".join(c for c in word if c.isdigit())


def _is_number(word: str) -> bool:
    """A word that may be (part of) a phone number: digits and phone punctuation, with at
    least as many digits as the digits index keeps."""
    return set(word) <= _NUMBER_CHARACTERS and len(_digits(word)) >= MIN_DIGITS


def fts_query(text: str) -> str | None:
    """Turn what a person typed into a safe FTS5 query: every word as a quoted prefix.

    Words are runs of letters, digits and ``@.-_+'``; quotes are doubled inside each term,
    so no input can inject FTS5 syntax (``OR``, ``NEAR(``, ``*``, column filters). Words
    without a letter or digit are dropped (an empty phrase would match nothing). Returns
    None when nothing searchable is left.
    """
    terms = _words(text)
    if not terms:
        return None
    return " ".join('"' + t.replace('"', '""') + '"*' for t in terms)
