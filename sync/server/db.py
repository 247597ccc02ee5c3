"""The server's SQLite database: opening it, and its schema with explicit migrations.

The schema version lives in ``PRAGMA user_version``; ``MIGRATIONS[i]`` takes a database
from version ``i`` to ``i + 1`` and runs in one transaction. Every connection uses WAL
(readers never block the writer) and ``synchronous=FULL``: a commit that returned is on
disk, so an acknowledged update survives a crash or power loss.

Tables (docs/architecture.md, "Server storage"):

- ``meta``: key/value settings of this server (the JWT signing key).
- ``users``, ``refresh_tokens``: accounts and rotating refresh tokens (stored hashed).
- ``updates``: the append-only update log; ``seq`` is the global sequence number.
- ``snapshots``: a merged state of a document up to ``seq``, so loading it is fast.
- ``notifications``: change records with an expiry (TTL), replayed after reconnects.
- ``directory`` (+ ``directory_fts``): the projection of every customer, with a change
  cursor for incremental replication and a full-text index for search.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from .errors import DatabaseError

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "connect", "migrate"]

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
        name TEXT, email TEXT, phone TEXT, street1 TEXT, street2 TEXT,
        city TEXT, state TEXT, zip TEXT, tier TEXT,
        updated_at REAL NOT NULL,
        deleted INTEGER NOT NULL DEFAULT 0,
        cursor INTEGER NOT NULL UNIQUE
    );
    CREATE VIRTUAL TABLE directory_fts USING fts5(
        name, email, phone, city, zip,
        content='directory', content_rowid='rowid', tokenize='unicode61'
    );
    CREATE TRIGGER directory_ai AFTER INSERT ON directory BEGIN
        INSERT INTO directory_fts(rowid, name, email, phone, city, zip)
        VALUES (new.rowid, new.name, new.email, new.phone, new.city, new.zip);
    END;
    CREATE TRIGGER directory_ad AFTER DELETE ON directory BEGIN
        INSERT INTO directory_fts(directory_fts, rowid, name, email, phone, city, zip)
        VALUES ('delete', old.rowid, old.name, old.email, old.phone, old.city, old.zip);
    END;
    CREATE TRIGGER directory_au AFTER UPDATE ON directory BEGIN
        INSERT INTO directory_fts(directory_fts, rowid, name, email, phone, city, zip)
        VALUES ('delete', old.rowid, old.name, old.email, old.phone, old.city, old.zip);
        INSERT INTO directory_fts(rowid, name, email, phone, city, zip)
        VALUES (new.rowid, new.name, new.email, new.phone, new.city, new.zip);
    END;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


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
    """Bring the schema to SCHEMA_VERSION, one migration per transaction."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise DatabaseError(
            f"database schema version {version} is newer than this server's "
            f"({SCHEMA_VERSION}); upgrade Live Edit"
        )
    for target in range(version + 1, SCHEMA_VERSION + 1):
        log.info("migrating database schema to version %d", target)
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(MIGRATIONS[target - 1]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {target}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (triggers contain ';' inside BEGIN…END)."""
    out, buf = [], ""
    for line in script.strip().splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out
