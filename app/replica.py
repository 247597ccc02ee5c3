"""The local replica: one SQLite file per user profile holding everything the app keeps.

Documents (full pycrdt state), the outbox of local updates not yet acknowledged, the
customer directory with full-text search, notifications, conflicts and settings live in
one file, so a local edit and its outbox entry commit together: ::

    with replica.transaction():
        replica.save_document(doc_id, state)
        ref = replica.add_outbox(doc_id, update, "City, Zip")

The file uses WAL and ``synchronous=FULL``: a transaction that returned is on disk and
survives a crash or power loss. The schema and its migrations are in
:mod:`app.replica_schema`. SQL goes through :class:`sqlite_utils.Database` over one
connection; a lock makes a :class:`Replica` safe to share between threads (one
transaction at a time).

Errors: :class:`ReplicaError` when the file cannot be used (not a replica, newer schema,
locked by another program, disk full); its message says what to do. Logging: INFO when a
replica is opened or migrated, DEBUG for directory and outbox batches.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import sqlite_utils

from sync.protocol.messages import DirectoryEntry, Notification, NotificationKind

from . import replica_schema as schema
from .errors import CoreError
from .replica_schema import (
    Conflict,
    DirectoryRow,
    OutboxEntry,
    StoredNotification,
    fts_query,
)

__all__ = [
    "Conflict",
    "DirectoryRow",
    "OutboxEntry",
    "Replica",
    "ReplicaError",
    "StoredNotification",
    "fts_query",
]

log = logging.getLogger(__name__)

_DIRECTORY_FIELDS = ("name", "email", "phone", "city", "state", "zip")
_DIRECTORY_COLUMNS = ("customer_id", *_DIRECTORY_FIELDS, "updated_at", "deleted", "cursor")
_SELECT_DIRECTORY = f"SELECT {', '.join(_DIRECTORY_COLUMNS)} FROM directory"  # noqa: S608
_ORDER_BY_NAME = " ORDER BY name COLLATE NOCASE, customer_id"
#: Columns :meth:`Replica.search` can order by (interpolated into SQL only from here).
_SORTABLE = ("name", *_DIRECTORY_FIELDS[1:], "updated_at")
_LIVE = (0, schema.DELETED_BIT)
_ALL_ROWS = (0, 2**63 - 1)


class ReplicaError(CoreError):
    """The local replica cannot be opened, read or written; the message says why."""


class Replica:
    """The local SQLite replica of one user profile. Create it with :meth:`open`."""

    def __init__(self, db: sqlite_utils.Database, path: Path) -> None:
        self.path = path
        self._db: sqlite_utils.Database | None = db
        self._lock = threading.RLock()
        self._depth = 0

    @classmethod
    def open(cls, path: Path) -> Replica:
        """Open (creating folders and file) and migrate the replica at ``path``.

        Raises ReplicaError for a file that is not a Live Edit replica, has a newer schema,
        or cannot be opened. The file is readable by its owner only.
        """
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not path.exists():
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise ReplicaError(f"cannot open the local replica {path}: {exc}") from exc
        try:
            conn.execute("PRAGMA busy_timeout = 5000")
            schema.check(conn)  # before anything writes: the file may be another program's
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise schema.SchemaError(f"its journal cannot be set to WAL (got {mode})")
            conn.execute("PRAGMA synchronous = FULL")
            schema.migrate(conn)
            db = sqlite_utils.Database(conn, execute_plugins=False)
        except (sqlite3.Error, schema.SchemaError) as exc:
            conn.close()
            raise ReplicaError(f"cannot use the local replica {path}: {exc}") from exc
        log.info("opened replica %s (schema version %d)", path, schema.SCHEMA_VERSION)
        return cls(db, path)

    def close(self) -> None:
        """Close the file; further calls raise ReplicaError. Closing twice is harmless."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __enter__(self) -> Replica:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- transactions --------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One SQLite transaction: BEGIN IMMEDIATE … COMMIT, ROLLBACK on exception.

        Calls nested inside an open transaction join it, as a savepoint: when the inner
        block raises, its own writes are undone and the exception goes on; the outer
        transaction commits everything else only if it ends normally. Every public write
        method runs in the current transaction, or in one of its own.
        """
        with self._lock:
            conn = self._conn()
            name = f"replica_{self._depth}" if self._depth else None
            try:
                conn.execute(f"SAVEPOINT {name}" if name else "BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise ReplicaError(
                    f"the local replica {self.path} cannot be written ({exc}); is Live Edit "
                    "already running with this profile?"
                ) from exc
            self._depth += 1
            try:
                yield
            except BaseException as exc:
                self._depth -= 1
                if conn.in_transaction:
                    conn.execute(f"ROLLBACK TO {name}" if name else "ROLLBACK")
                    if name:
                        conn.execute(f"RELEASE {name}")
                if isinstance(exc, sqlite3.Error | schema.SchemaError):
                    raise ReplicaError(f"could not write the local replica: {exc}") from exc
                raise
            self._depth -= 1
            try:
                conn.execute(f"RELEASE {name}" if name else "COMMIT")
            except sqlite3.Error as exc:
                if not name and conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise ReplicaError(f"could not write the local replica: {exc}") from exc

    @contextmanager
    def cache_transaction(self) -> Iterator[None]:
        """A transaction for what the server can always tell again (directory rows, acks,
        the seq of a document that did not change): its commit skips the fsync (WAL +
        ``synchronous=NORMAL``), so it survives a crash of the app but not necessarily of
        the OS, which can only undo the latest such commits (any later ``transaction()``
        makes them durable too). Local edits never use it. Inside another transaction it
        joins that one, whose commit decides."""
        with self._lock:
            if self._depth:
                with self.transaction():
                    yield
                return
            conn = self._conn()
            conn.execute("PRAGMA synchronous = NORMAL")
            try:
                with self.transaction():
                    yield
            finally:
                conn.execute("PRAGMA synchronous = FULL")

    @property
    def closed(self) -> bool:
        """True after close(): reads and writes raise ReplicaError."""
        return self._db is None

    def _database(self) -> sqlite_utils.Database:
        if self._db is None:
            raise ReplicaError("the local replica is closed")
        return self._db

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection = self._database().conn
        return conn

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._conn()
            except sqlite3.Error as exc:
                raise ReplicaError(f"could not read the local replica: {exc}") from exc

    def _one(self, sql: str, args: Iterable[Any] = ()) -> Any:
        """The first column of the first row, or None."""
        with self._reading() as conn:
            row = conn.execute(sql, tuple(args)).fetchone()
        return None if row is None else row[0]

    # --- settings ------------------------------------------------------------------------

    def get_setting(self, key: str) -> str | None:
        """The stored value of ``key``, or None."""
        value: str | None = self._one("SELECT value FROM settings WHERE key = ?", (key,))
        return value

    def set_setting(self, key: str, value: str | None) -> None:
        """Store ``value`` under ``key``; None deletes the setting."""
        with self.transaction():
            if value is None:
                self._database().execute("DELETE FROM settings WHERE key = ?", (key,))
            else:
                self._database().table("settings").upsert({"key": key, "value": value}, pk="key")

    # --- documents -----------------------------------------------------------------------

    def save_document(
        self, doc_id: str, state: bytes, *, held: bool | None = None,
        server_seq: int | None = None,
    ) -> None:
        """Store the full state of a document; ``held``/``server_seq`` None keep the
        current value (new documents: not held, seq 0)."""
        with self.transaction():
            self._conn().execute(
                "INSERT INTO documents (doc_id, state, held, server_seq, updated_at) "
                "VALUES (:doc, :state, coalesce(:held, 0), coalesce(:seq, 0), :now) "
                "ON CONFLICT (doc_id) DO UPDATE SET state = excluded.state, "
                "held = coalesce(:held, held), server_seq = coalesce(:seq, server_seq), "
                "updated_at = excluded.updated_at",
                {"doc": doc_id, "state": state, "held": None if held is None else int(held),
                 "seq": server_seq, "now": time.time()},
            )

    def load_document(self, doc_id: str) -> bytes | None:
        """The stored state of a document, or None if it is not here."""
        state: bytes | None = self._one(
            "SELECT state FROM documents WHERE doc_id = ?", (doc_id,)
        )
        return state

    def held_documents(self) -> list[str]:
        """Ids of documents held offline (opened or pinned), sorted."""
        with self._reading() as conn:
            rows = conn.execute("SELECT doc_id FROM documents WHERE held = 1 ORDER BY doc_id")
            return [r[0] for r in rows]

    def set_held(self, doc_id: str, held: bool) -> bool:
        """Mark a stored document held or not; False if it is not stored."""
        with self.transaction():
            cur = self._conn().execute(
                "UPDATE documents SET held = ? WHERE doc_id = ?", (int(held), doc_id)
            )
            return cur.rowcount > 0

    def document_ids(self) -> list[str]:
        """Ids of every stored document, sorted."""
        with self._reading() as conn:
            return [r[0] for r in conn.execute("SELECT doc_id FROM documents ORDER BY doc_id")]

    def server_seq(self, doc_id: str) -> int:
        """The last server seq merged into the document (0 if none or not stored)."""
        seq: int | None = self._one(
            "SELECT server_seq FROM documents WHERE doc_id = ?", (doc_id,)
        )
        return seq or 0

    # --- outbox --------------------------------------------------------------------------

    def add_outbox(self, doc_id: str, update: bytes, summary: str) -> int:
        """Queue a local update; returns its ref (increasing, never reused)."""
        with self.transaction():
            ref: int = self._conn().execute(
                'INSERT INTO outbox (doc_id, "update", created_at, summary) '
                "VALUES (?, ?, ?, ?) RETURNING ref", (doc_id, update, time.time(), summary),
            ).fetchone()[0]
            log.debug("outbox: queued ref %d for %s (%s)", ref, doc_id, summary)
            return ref

    def outbox(self, limit: int | None = None) -> list[OutboxEntry]:
        """Queued updates, oldest first (at most ``limit``)."""
        return self._outbox("", (), limit)

    def outbox_for(self, doc_id: str) -> list[OutboxEntry]:
        """Queued updates of one document, oldest first."""
        return self._outbox(" WHERE doc_id = ?", (doc_id,), None)

    def _outbox(self, where: str, args: tuple[Any, ...], limit: int | None) -> list[OutboxEntry]:
        sql = 'SELECT ref, doc_id, "update", created_at, summary, attempts FROM outbox'
        with self._reading() as conn:
            rows = conn.execute(
                f"{sql}{where} ORDER BY ref LIMIT ?", (*args, -1 if limit is None else limit)
            ).fetchall()
        return [OutboxEntry(*r) for r in rows]

    def remove_outbox(self, ref: int) -> bool:
        """Drop an acknowledged update; False if there was no such ref."""
        with self.transaction():
            return self._conn().execute("DELETE FROM outbox WHERE ref = ?", (ref,)).rowcount > 0

    def outbox_count(self) -> int:
        """How many updates are queued."""
        count: int = self._one("SELECT count(*) FROM outbox")
        return count

    def mark_attempt(self, refs: Iterable[int]) -> None:
        """Count one more sending attempt for each of ``refs``."""
        with self.transaction():
            self._conn().executemany(
                "UPDATE outbox SET attempts = attempts + 1 WHERE ref = ?", ((r,) for r in refs)
            )

    # --- directory -----------------------------------------------------------------------

    def apply_directory(self, entries: Iterable[DirectoryEntry]) -> int:
        """Store directory entries from the server; returns how many changed a row.

        An entry replaces the stored row only when its cursor is higher: pages of the
        initial feed and live changes may arrive interleaved, and an older one must not
        undo a newer one.
        """
        changed = 0
        with self.transaction():
            for entry in entries:
                values = {f: getattr(entry, f) for f in _DIRECTORY_FIELDS}
                changed += schema.write_directory(
                    self._conn(), entry.customer_id, values, deleted=entry.deleted,
                    updated_at=entry.updated_at, cursor=entry.cursor,
                )
        log.debug("directory: %d entries changed", changed)
        return changed

    def upsert_local_directory(
        self, customer_id: str, fields: dict[str, Any], deleted: bool
    ) -> None:
        """Reflect a local (maybe offline) edit in the directory so search sees it at once.

        Only name, email, phone, city, state and zip of ``fields`` are used; the stored
        cursor is kept, so the server's next entry for this customer replaces the row.
        """
        values = {f: fields[f] for f in _DIRECTORY_FIELDS if f in fields}
        with self.transaction():
            schema.write_directory(
                self._conn(), customer_id, values, deleted=deleted, updated_at=time.time(),
                cursor=None,
            )

    def search(  # noqa: PLR0917 (positional query/limit/offset are the public shape)
        self, query: str, limit: int = 50, offset: int = 0, include_deleted: bool = False,
        order_by: str = "name", descending: bool = False,
    ) -> list[DirectoryRow]:
        """Customers matching every word of ``query`` as a prefix (name, email, phone,
        city, zip), ordered by name (case-insensitive); an empty query lists all by name.

        Not ranked (bm25 costs ~10x on a common term). FTS5 yields matches in sort_key
        order, which is name-group order (:mod:`app.replica_schema`), so only the first
        ``offset + limit`` matches plus the rest of the last group are read and sorted.

        ``order_by`` another directory column (``email``, ``phone``, ``city``, ``state``,
        ``zip``, ``updated_at``) or ``descending``: every match is sorted (case-insensitive,
        empty values last, then by name), which costs a scan of the matches.
        """
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must not be negative")
        if order_by not in _SORTABLE:
            raise ValueError(f"cannot order by {order_by!r}; use one of {', '.join(_SORTABLE)}")
        if order_by != "name" or descending:
            return self._search_sorted(query, limit, offset, include_deleted,
                                       order_by, descending)
        match = fts_query(query)
        with self._reading() as conn:
            if match is None:
                where = "" if include_deleted else " WHERE deleted = 0"
                rows = conn.execute(
                    f"{_SELECT_DIRECTORY}{where}{_ORDER_BY_NAME} LIMIT ? OFFSET ?",
                    (limit, offset),
                ).fetchall()
                return [_directory_row(r) for r in rows]
            need = offset + limit
            keys = schema.first_matches(conn, match, need, _LIVE)
            if include_deleted:
                keys += schema.first_matches(conn, match, need, (schema.DELETED_BIT, 2**63 - 1))
            rows = conn.execute(
                f"{_SELECT_DIRECTORY} WHERE sort_key IN (SELECT value FROM json_each(?))"  # noqa: S608
                f"{_ORDER_BY_NAME} LIMIT ? OFFSET ?",
                (json.dumps(keys), limit, offset),
            ).fetchall()
        return [_directory_row(r) for r in rows]

    def _search_sorted(  # noqa: PLR0917
        self, query: str, limit: int, offset: int, include_deleted: bool, order_by: str,
        descending: bool,
    ) -> list[DirectoryRow]:
        """:meth:`search` ordered by any sortable column (see there)."""
        match = fts_query(query)
        lo, hi = _ALL_ROWS if include_deleted else _LIVE
        direction = "DESC" if descending else "ASC"
        collate = "" if order_by == "updated_at" else " COLLATE NOCASE"
        order = (f" ORDER BY ({order_by} IS NULL OR {order_by} = ''), "
                 f"{order_by}{collate} {direction}, name COLLATE NOCASE {direction}, "
                 "customer_id")
        if match is None:
            sql = (f"{_SELECT_DIRECTORY} WHERE sort_key >= ? AND sort_key < ?"
                   f"{order} LIMIT ? OFFSET ?")
            args: tuple[Any, ...] = (lo, hi, limit, offset)
        else:
            sql = (f"{_SELECT_DIRECTORY} WHERE sort_key IN (SELECT rowid FROM directory_fts "  # noqa: S608
                   "WHERE directory_fts MATCH ? AND rowid >= ? AND rowid < ?)"
                   f"{order} LIMIT ? OFFSET ?")
            args = (match, lo, hi, limit, offset)
        with self._reading() as conn:
            rows = conn.execute(sql, args).fetchall()
        return [_directory_row(r) for r in rows]

    def count(self, query: str, include_deleted: bool = False) -> int:
        """How many customers :meth:`search` would find without a limit."""
        match = fts_query(query)
        lo, hi = _ALL_ROWS if include_deleted else _LIVE
        args: tuple[str, ...] = ()
        if match is None:
            sql = "SELECT count(*) FROM directory WHERE sort_key >= ? AND sort_key < ?"
        else:
            sql = ("SELECT count(*) FROM directory_fts WHERE directory_fts MATCH ? "
                   "AND rowid >= ? AND rowid < ?")
            args = (match,)
        total: int = self._one(sql, (*args, lo, hi))
        return total

    def get_directory(self, customer_id: str) -> DirectoryRow | None:
        """The directory row of one customer (deleted or not), or None."""
        with self._reading() as conn:
            row = conn.execute(
                f"{_SELECT_DIRECTORY} WHERE customer_id = ?", (customer_id,)
            ).fetchone()
        return None if row is None else _directory_row(row)

    # --- notifications -------------------------------------------------------------------

    def add_notifications(self, items: Iterable[Notification], *, offline: bool) -> int:
        """Store notifications, ignoring seqs already stored; returns how many were new."""
        added = 0
        with self.transaction():
            conn = self._conn()
            for n in items:
                added += conn.execute(
                    "INSERT OR IGNORE INTO notifications (seq, doc_id, kind, actor, time, "
                    "fields, title, offline, read) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)",
                    (n.seq, n.doc, str(n.kind), n.actor, n.time, json.dumps(list(n.fields)),
                     n.title, int(offline)),
                ).rowcount
        return added

    def notifications(
        self, limit: int = 100, unread_only: bool = False
    ) -> list[StoredNotification]:
        """Stored notifications, newest (highest seq) first."""
        where = " WHERE read = 0" if unread_only else ""
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT seq, doc_id, kind, actor, time, fields, title, offline, read "  # noqa: S608
                f"FROM notifications{where} ORDER BY seq DESC LIMIT ?", (limit,),
            ).fetchall()
        return [
            StoredNotification(r[0], r[1], NotificationKind(r[2]), r[3], r[4],
                               tuple(json.loads(r[5])), r[6], bool(r[7]), bool(r[8]))
            for r in rows
        ]

    def unread_count(self) -> int:
        """How many stored notifications are unread."""
        count: int = self._one("SELECT count(*) FROM notifications WHERE read = 0")
        return count

    def mark_read(self, seqs: Iterable[int]) -> None:
        """Mark notifications read."""
        with self.transaction():
            self._conn().executemany(
                "UPDATE notifications SET read = 1 WHERE seq = ?", ((s,) for s in seqs)
            )

    # --- conflicts -----------------------------------------------------------------------

    def add_conflict(  # noqa: PLR0917 (the core's call shape)
        self, doc_id: str, field: str, mine: Any, theirs: Any, author: str, time: float
    ) -> int:
        """Record a conflict on a field; returns its id. An open conflict on the same
        field is updated instead (one open conflict per field, newest values)."""
        with self.transaction():
            row = self._conn().execute(
                "INSERT INTO conflicts (doc_id, field, mine, theirs, author, time, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (doc_id, field) WHERE resolved = 0"
                " DO UPDATE SET mine = excluded.mine, theirs = excluded.theirs,"
                " author = excluded.author, time = excluded.time RETURNING id",
                (doc_id, field, _json(mine), _json(theirs), author, time, _now()),
            ).fetchone()
            conflict_id: int = row[0]
            return conflict_id

    def conflicts(
        self, doc_id: str | None = None, include_resolved: bool = False
    ) -> list[Conflict]:
        """Conflicts (open ones unless ``include_resolved``), oldest first."""
        where = ["1 = 1"]
        args: list[Any] = []
        if doc_id is not None:
            where.append("doc_id = ?")
            args.append(doc_id)
        if not include_resolved:
            where.append("resolved = 0")
        return self._conflicts(" AND ".join(where), args)

    def get_conflict(self, doc_id: str, field: str) -> Conflict | None:
        """The open conflict on a field, or None."""
        found = self._conflicts("doc_id = ? AND field = ? AND resolved = 0", [doc_id, field])
        return found[0] if found else None

    def _conflicts(self, where: str, args: list[Any]) -> list[Conflict]:
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT id, doc_id, field, mine, theirs, author, time, created_at, resolved "  # noqa: S608
                f"FROM conflicts WHERE {where} ORDER BY id", args,
            ).fetchall()
        return [
            Conflict(r[0], r[1], r[2], json.loads(r[3]), json.loads(r[4]), r[5], r[6], r[7],
                     bool(r[8]))
            for r in rows
        ]

    def resolve_conflict(self, conflict_id: int) -> bool:
        """Mark a conflict resolved; False if it does not exist or was resolved already."""
        with self.transaction():
            return self._conn().execute(
                "UPDATE conflicts SET resolved = 1 WHERE id = ? AND resolved = 0", (conflict_id,)
            ).rowcount > 0

    # --- field versions ------------------------------------------------------------------

    def set_field_version(self, doc_id: str, field: str, version: str, value: Any) -> None:
        """Remember that this client wrote ``value`` as ``version`` of a field."""
        with self.transaction():
            self._conn().execute(
                "INSERT OR REPLACE INTO field_versions (doc_id, field, version, value) "
                "VALUES (?, ?, ?, ?)", (doc_id, field, version, _json(value)),
            )

    def field_version(self, doc_id: str, field: str) -> tuple[str, Any] | None:
        """(version, value) this client last wrote to a field, or None."""
        with self._reading() as conn:
            row = conn.execute(
                "SELECT version, value FROM field_versions WHERE doc_id = ? AND field = ?",
                (doc_id, field),
            ).fetchone()
        return None if row is None else (row[0], json.loads(row[1]))

    def clear_field_version(self, doc_id: str, field: str) -> None:
        """Forget the version this client wrote to a field."""
        with self.transaction():
            self._conn().execute(
                "DELETE FROM field_versions WHERE doc_id = ? AND field = ?", (doc_id, field)
            )


def _directory_row(row: tuple[Any, ...]) -> DirectoryRow:
    values = list(row)
    values[8] = bool(values[8])
    return DirectoryRow(*values)


def _json(value: Any) -> str:
    """JSON text of a field value (NaN and infinities are refused: JSON has none)."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def _now() -> float:
    return time.time()

