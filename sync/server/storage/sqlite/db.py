"""The server's SQLite database: opening it, and its schema with explicit migrations.

The schema version lives in ``PRAGMA user_version``; ``MIGRATIONS[i]`` takes a database
from version ``i`` to ``i + 1`` and runs in one transaction; then the directory's field
columns and search index are derived from the field table (:mod:`sync.sqlite_migrations`,
the runner the replica uses too). Every connection uses WAL
(readers never block the writer) and ``synchronous=FULL``: a commit that returned is on
disk, so an acknowledged update survives a crash or power loss.

Tables (docs/architecture.md, "Server storage"):

- ``meta``: key/value settings of this server (the JWT signing key).
- ``users``, ``refresh_tokens``: accounts and rotating refresh tokens (stored hashed).
- ``updates``: the append-only update log; ``seq`` is the global sequence number.
- ``snapshots``: a merged state of a document up to ``seq``, so loading it is fast.
- ``notifications``: change records with an expiry (TTL), replayed after reconnects.
- ``directory`` (+ ``directory_fts``): the projection of every customer, with a change
  cursor for incremental replication and a full-text index for search. Its field columns
  are :func:`sync.protocol.schema.directory_fields`, the index covers
  :func:`~sync.protocol.schema.searchable_fields` (both added by ``derive_directory``;
  databases created before it also hold ``street1``, ``street2`` and ``tier``, unused).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sync.sqlite_migrations import DirectoryLayout, MigrationError, derive_directory, transaction
from sync.sqlite_migrations import migrate as run_migrations

from ...errors import DatabaseError

__all__ = [
    "DIRECTORY", "MIGRATIONS", "SCHEMA_VERSION", "Connection", "Database", "IntegrityError",
    "connect", "migrate",
]

log = logging.getLogger(__name__)


MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        username TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('rep', 'customer')),
        customer_id TEXT,
        disabled INTEGER NOT NULL DEFAULT 0,
        token_version INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        CHECK ((role = 'customer') = (customer_id IS NOT NULL))
    );
    CREATE TABLE refresh_tokens (
        token_hash TEXT PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        family TEXT NOT NULL,
        issued_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        used_at REAL,
        revoked INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX refresh_tokens_family ON refresh_tokens(family);
    CREATE TABLE updates (
        seq INTEGER PRIMARY KEY,
        doc_id TEXT NOT NULL,
        author TEXT NOT NULL,
        session_id TEXT,
        time REAL NOT NULL,
        changes TEXT NOT NULL,
        data BLOB NOT NULL
    );
    CREATE INDEX updates_doc ON updates(doc_id, seq);
    CREATE TABLE snapshots (
        doc_id TEXT PRIMARY KEY,
        seq INTEGER NOT NULL,
        data BLOB NOT NULL
    );
    CREATE TABLE notifications (
        seq INTEGER PRIMARY KEY,
        doc_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        actor TEXT NOT NULL,
        time REAL NOT NULL,
        fields TEXT NOT NULL,
        title TEXT,
        expires_at REAL NOT NULL
    );
    CREATE INDEX notifications_doc ON notifications(doc_id, seq);
    CREATE INDEX notifications_expiry ON notifications(expires_at);
    CREATE TABLE directory (
        customer_id TEXT NOT NULL UNIQUE,
        updated_at REAL NOT NULL,
        deleted INTEGER NOT NULL DEFAULT 0,
        cursor INTEGER NOT NULL UNIQUE
    );
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

#: The connection the account and token services write through (their callers name the
#: type from here, never from the driver).
Connection = sqlite3.Connection
#: Raised by a write that breaks a UNIQUE constraint (a taken username).
IntegrityError = sqlite3.IntegrityError

#: The server's directory: FTS rows keyed by the table's rowid (derived columns).
DIRECTORY = DirectoryLayout()


def connect(path: Path | str, *, readonly: bool = False) -> sqlite3.Connection:
    """Open the database with the server's settings; migrate it when opened for writing.

    Raises DatabaseError when the file is not a usable Live Edit database.
    """
    path = Path(path)
    try:
        if readonly:
            conn = sqlite3.connect(
                f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False,
                isolation_level=None,
            )
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute("PRAGMA foreign_keys = ON")
        if not readonly:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            migrate(conn)
    except sqlite3.DatabaseError as exc:
        raise DatabaseError(f"cannot use database {path}: {exc}") from exc
    return conn


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the schema to SCHEMA_VERSION, then derive the directory from the field table."""
    try:
        run_migrations(conn, MIGRATIONS, what="database")
        derive_directory(conn, DIRECTORY)
    except MigrationError as exc:
        raise DatabaseError(str(exc)) from exc


class Database:
    """A writer and a reader connection to the server database, for the thread-safe
    services (accounts, tokens): writes take a lock and one transaction, reads use their
    own read-only connection (WAL: they never wait for a writer)."""

    def __init__(self, path: Path | str) -> None:
        self._conn = connect(path)
        self._lock = threading.RLock()
        self._read_conn = connect(path, readonly=True)
        self._read_lock = threading.Lock()

    def close(self) -> None:
        """Close both connections."""
        with self._lock, self._read_lock:
            self._conn.close()
            self._read_conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Hold the lock and one write transaction; SQLite errors become DatabaseError."""
        with self._lock:
            try:
                with transaction(self._conn):
                    yield self._conn
            except sqlite3.Error as exc:
                raise DatabaseError(f"could not save to the database: {exc}") from exc

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """The read-only connection, for reads outside a transaction."""
        with self._read_lock:
            try:
                yield self._read_conn
            except sqlite3.Error as exc:
                raise DatabaseError(f"could not read the database: {exc}") from exc
