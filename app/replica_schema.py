"""Schema of the local replica: tables, explicit migrations, the directory's sort-key
layout, and the records :class:`app.replica.Replica` reads from the tables.

The schema version lives in ``PRAGMA user_version``; ``MIGRATIONS[i]`` takes a replica from
version ``i`` to ``i + 1`` and runs in one transaction, as the server's ``sync/server/db.py``
does. ``PRAGMA application_id`` marks the file as a Live Edit replica, so opening some other
SQLite file is refused instead of being "migrated" into one.

Tables:

- ``settings``: key/value strings of this profile (server_url, username, cursors, …).
- ``documents``: the full pycrdt state of each document held locally, whether it is held
  (opened or pinned: kept offline and synced) and the last server ``seq`` merged into it.
- ``outbox``: local updates not yet acknowledged by the server, oldest first; ``ref`` is
  the protocol's client ``ref``. AUTOINCREMENT: a ref is never reused, even after removal.
- ``directory`` (+ ``directory_fts``): the customer directory replicated from the server
  (and local offline edits), with an FTS5 index over name, email, phone, city and zip.
  ``prefix='1 2 3'`` gives short prefixes (search-as-you-type) their own doclists;
  ``directory_name`` serves the empty query ("everyone, by name") without sorting.

The directory's ``sort_key`` is the FTS rowid, chosen so that rowid order is name order
(see :func:`sort_key_group`): FTS5 returns matches in rowid order, so the first page of a
search is read straight off the index instead of joining and sorting every match (100,000
customers: a common prefix like "a" matches ~20,000 rows; join+sort costs 9 to 16 ms, this
costs 1 to 4 ms). Its bits, high to low: 1 bit deleted, 40 bits the first five bytes of the
name folded like ``COLLATE NOCASE`` (+1, so NULL names sort first), 22 bits a slot that
tells apart names sharing those bytes (a *group*). Groups are ordered like the names in
them; inside a group the exact order comes from ``ORDER BY name COLLATE NOCASE``.
- ``notifications``: the activity feed, with ``offline`` (arrived through a replay after a
  reconnect) and ``read`` flags.
- ``conflicts``: concurrent changes to one field; at most one open conflict per field.
- ``field_versions``: the version and value of fields this client wrote that are still
  current, used to detect conflicts.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from typing import Any

from sync.protocol.messages import NotificationKind

__all__ = [
    "APPLICATION_ID",
    "DELETED_BIT",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "SLOT_BITS",
    "Conflict",
    "DirectoryRow",
    "OutboxEntry",
    "SchemaError",
    "StoredNotification",
    "check",
    "first_matches",
    "free_sort_key",
    "fts_query",
    "migrate",
    "sort_key_group",
    "statements",
    "write_directory",
]

log = logging.getLogger(__name__)

#: ``PRAGMA application_id`` of a Live Edit replica ("LEre").
APPLICATION_ID = 0x4C457265

MIGRATIONS: tuple[str, ...] = (
    """
    PRAGMA application_id = 1279619685;  -- APPLICATION_ID
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE documents (
        doc_id TEXT PRIMARY KEY,
        state BLOB NOT NULL,
        held INTEGER NOT NULL DEFAULT 0 CHECK (held IN (0, 1)),
        server_seq INTEGER NOT NULL DEFAULT 0,
        updated_at REAL NOT NULL
    );
    CREATE INDEX documents_held ON documents(doc_id) WHERE held = 1;
    CREATE TABLE outbox (
        ref INTEGER PRIMARY KEY AUTOINCREMENT,
        doc_id TEXT NOT NULL,
        "update" BLOB NOT NULL,
        created_at REAL NOT NULL,
        summary TEXT NOT NULL DEFAULT '',
        attempts INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX outbox_doc ON outbox(doc_id, ref);
    CREATE TABLE directory (
        customer_id TEXT PRIMARY KEY,
        name TEXT, email TEXT, phone TEXT, city TEXT, state TEXT, zip TEXT,
        updated_at REAL NOT NULL,
        deleted INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1)),
        cursor INTEGER NOT NULL DEFAULT 0,
        sort_key INTEGER NOT NULL UNIQUE
    );
    CREATE INDEX directory_name ON directory(name COLLATE NOCASE, customer_id);
    CREATE VIRTUAL TABLE directory_fts USING fts5(
        name, email, phone, city, zip,
        content='directory', content_rowid='sort_key',
        tokenize='unicode61 remove_diacritics 2', prefix='1 2 3'
    );
    CREATE TRIGGER directory_ai AFTER INSERT ON directory BEGIN
        INSERT INTO directory_fts(rowid, name, email, phone, city, zip)
        VALUES (new.sort_key, new.name, new.email, new.phone, new.city, new.zip);
    END;
    CREATE TRIGGER directory_ad AFTER DELETE ON directory BEGIN
        INSERT INTO directory_fts(directory_fts, rowid, name, email, phone, city, zip)
        VALUES ('delete', old.sort_key, old.name, old.email, old.phone, old.city, old.zip);
    END;
    CREATE TRIGGER directory_au AFTER UPDATE ON directory
    WHEN old.sort_key IS NOT new.sort_key OR old.name IS NOT new.name
        OR old.email IS NOT new.email OR old.phone IS NOT new.phone
        OR old.city IS NOT new.city OR old.zip IS NOT new.zip
    BEGIN
        INSERT INTO directory_fts(directory_fts, rowid, name, email, phone, city, zip)
        VALUES ('delete', old.sort_key, old.name, old.email, old.phone, old.city, old.zip);
        INSERT INTO directory_fts(rowid, name, email, phone, city, zip)
        VALUES (new.sort_key, new.name, new.email, new.phone, new.city, new.zip);
    END;
    CREATE TABLE notifications (
        seq INTEGER PRIMARY KEY,
        doc_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        actor TEXT NOT NULL,
        time REAL NOT NULL,
        fields TEXT NOT NULL,
        title TEXT,
        offline INTEGER NOT NULL DEFAULT 0,
        read INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX notifications_unread ON notifications(seq) WHERE read = 0;
    CREATE TABLE conflicts (
        id INTEGER PRIMARY KEY,
        doc_id TEXT NOT NULL,
        field TEXT NOT NULL,
        mine TEXT NOT NULL,
        theirs TEXT NOT NULL,
        author TEXT NOT NULL,
        time REAL NOT NULL,
        created_at REAL NOT NULL,
        resolved INTEGER NOT NULL DEFAULT 0
    );
    CREATE UNIQUE INDEX conflicts_open ON conflicts(doc_id, field) WHERE resolved = 0;
    CREATE TABLE field_versions (
        doc_id TEXT NOT NULL,
        field TEXT NOT NULL,
        version TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (doc_id, field)
    );
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

#: Bits of ``sort_key`` that tell apart names in one group; the rest is the group.
SLOT_BITS = 22
#: Set in the ``sort_key`` of deleted customers: they sort after every live one.
DELETED_BIT = 1 << 62
_PREFIX_BYTES = 5
_DIRECTORY_FIELDS = ("name", "email", "phone", "city", "state", "zip")
_FOLD = bytes(range(256)).translate(
    bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz")
)


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


class SchemaError(Exception):
    """The file is not a replica this code can use (``Replica.open`` re-raises it)."""


def check(conn: sqlite3.Connection) -> int:
    """Return the schema version of the file behind ``conn`` if this code can use it.

    Reads only (call it before changing anything, even the journal mode): raises
    SchemaError for another program's SQLite database or a newer replica schema. A new,
    empty file is version 0.
    """
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    if app_id != APPLICATION_ID:
        tables = conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0]
        if app_id != 0 or version != 0 or tables:
            raise SchemaError("it is not a Live Edit replica (another program's database)")
    if version > SCHEMA_VERSION:
        raise SchemaError(
            f"its schema version {version} is newer than this version of Live Edit "
            f"supports ({SCHEMA_VERSION}); upgrade Live Edit"
        )
    return version


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the replica to SCHEMA_VERSION, one migration per transaction.

    ``conn`` must be in autocommit mode (``isolation_level=None``) with no transaction
    open. Raises SchemaError as :func:`check` does.
    """
    version = check(conn)
    for target in range(version + 1, SCHEMA_VERSION + 1):
        log.info("migrating the replica schema to version %d", target)
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in statements(MIGRATIONS[target - 1]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {target}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


def statements(script: str) -> list[str]:
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


# --- the directory's sort_key -------------------------------------------------------


def write_directory(
    conn: sqlite3.Connection, customer_id: str, values: dict[str, Any], *, deleted: bool,
    updated_at: float, cursor: int | None,
) -> bool:
    """Insert or update one row, moving its sort_key when its name group changes.

    With a ``cursor``, an existing row with a cursor as high or higher is kept (False).
    Keys of ``values`` other than the directory fields are ignored.
    """
    values = {k: v for k, v in values.items() if k in _DIRECTORY_FIELDS}
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
    if old is None:
        conn.execute(
            f"INSERT INTO directory (customer_id, {', '.join(row)}) "  # noqa: S608
            f"VALUES (:customer_id, {', '.join(':' + c for c in row)})",
            {"customer_id": customer_id, **row},
        )
    else:
        conn.execute(
            f"UPDATE directory SET {', '.join(f'{c} = :{c}' for c in row)} "  # noqa: S608
            "WHERE customer_id = :customer_id",
            {"customer_id": customer_id, **row},
        )
    return True


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
    conn: sqlite3.Connection, match: str, need: int, bounds: tuple[int, int]
) -> list[int]:
    """Sort keys of the first ``need`` matches in [lo, hi), completed to a whole group."""
    sql = ("SELECT rowid FROM directory_fts WHERE directory_fts MATCH ? "
           "AND rowid >= ? AND rowid < ? ORDER BY rowid LIMIT ?")
    lo, hi = bounds
    keys = [r[0] for r in conn.execute(sql, (match, lo, hi, need))]
    if need and len(keys) == need:
        # Matches in later groups sort after every name of this group: complete it.
        group = keys[-1] >> SLOT_BITS
        end = min(hi, (group + 1) << SLOT_BITS)
        keys += [r[0] for r in conn.execute(sql, (match, keys[-1] + 1, end, -1))]
    return keys


# --- records read from the tables -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """A local update waiting for the server's Ack; ``ref`` is the protocol's client ref."""

    ref: int
    doc_id: str
    update: bytes
    created_at: float
    summary: str
    attempts: int


@dataclass(frozen=True, slots=True)
class DirectoryRow:
    """One customer in the local directory (what lists and search show)."""

    customer_id: str
    name: str | None
    email: str | None
    phone: str | None
    city: str | None
    state: str | None
    zip: str | None
    updated_at: float
    deleted: bool
    cursor: int


@dataclass(frozen=True, slots=True)
class StoredNotification:
    """A notification as kept locally; ``offline``: it came in a replay after reconnect."""

    seq: int
    doc_id: str
    kind: NotificationKind
    actor: str
    time: float
    fields: tuple[str, ...]
    title: str | None
    offline: bool
    read: bool


@dataclass(frozen=True, slots=True)
class Conflict:
    """Two concurrent values of one field: ``mine`` (this client's) and ``theirs``."""

    id: int
    doc_id: str
    field: str
    mine: Any
    theirs: Any
    author: str
    time: float
    created_at: float
    resolved: bool


def fts_query(text: str) -> str | None:
    """Turn what a person typed into a safe FTS5 query: every word as a quoted prefix.

    Words are runs of letters, digits and ``@.-_+'``; quotes are doubled inside each term,
    so no input can inject FTS5 syntax (``OR``, ``NEAR(``, ``*``, column filters). Words
    without a letter or digit are dropped (an empty phrase would match nothing). Returns
    None when nothing searchable is left.
    """
    cleaned = "".join(c if c.isalnum() or c in "@.-_+'" else " " for c in text)
    terms = [t for t in cleaned.split() if any(c.isalnum() for c in t)]
    if not terms:
        return None
    return " ".join('"' + t.replace('"', '""') + '"*' for t in terms[:16])
