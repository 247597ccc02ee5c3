"""The replica file itself: opening and migrating it, transactions, settings.

Every store of :mod:`app.replica` (documents and outbox, directory, notifications,
conflicts) builds on :class:`ReplicaFile`: one SQLite connection behind a lock, so a
replica is safe to share between threads (one transaction at a time), and one
:meth:`ReplicaFile.transaction` that all of them join, so a local edit and its outbox entry
commit together.

The file uses WAL and ``synchronous=FULL``: a transaction that returned is on disk and
survives a crash or power loss. Errors: :class:`ReplicaError` when the file cannot be used
(not a replica, newer schema, locked by another program, disk full); its message says what
to do. Logging: INFO when a replica is opened or migrated.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import sqlite_utils

from ..errors import CoreError
from . import schema

__all__ = ["ReplicaError", "ReplicaFile"]

log = logging.getLogger(__name__)


class ReplicaError(CoreError):
    """The local replica cannot be opened, read or written; the message says why."""


class ReplicaFile:
    """One open replica file: connection, lock, transactions and settings."""

    def __init__(self, db: sqlite_utils.Database, path: Path) -> None:
        self.path = path
        self._db: sqlite_utils.Database | None = db
        self._lock = threading.RLock()
        self._depth = 0

    @classmethod
    def open(cls, path: Path) -> Self:
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

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        """True after close(): reads and writes raise ReplicaError."""
        return self._db is None

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
