"""Schema of the local replica: tables, explicit migrations, and the directory's columns
derived from the field table.

The schema version lives in ``PRAGMA user_version``; ``MIGRATIONS[i]`` takes a replica from
version ``i`` to ``i + 1`` and runs in one transaction. ``PRAGMA application_id`` marks the
file as a Live Edit replica, so opening some other SQLite file is refused instead of being
"migrated" into one. The runner is the one the server uses too
(:mod:`sync.sqlite_migrations`). After the numbered migrations, the directory follows the
field table (:mod:`sync.protocol.schema`): a directory field the table gained adds its
column (existing rows keep theirs, the new one is empty until the server sends it), and a
change of the searchable fields rebuilds the full-text index
(:func:`sync.sqlite_migrations.derive_directory`, :func:`derive_digits`).

Tables:

- ``settings``: key/value strings of this profile (server_url, username, cursors, …).
- ``documents``: the full pycrdt state of each document held locally, whether it is held
  (opened or pinned: kept offline and synced) and the last server ``seq`` merged into it.
- ``outbox``: local updates not yet acknowledged by the server, oldest first; ``ref`` is
  the protocol's client ``ref``. AUTOINCREMENT: a ref is never reused, even after removal.
  ``parts`` (version 2) names what each entry changes: field names and ``notes``,
  ``tasks``, ``comments``, ``meta`` (JSON list; NULL for entries queued by version 1).
- ``directory`` (+ ``directory_fts``): the customer directory replicated from the server
  (and local offline edits), one column per directory field, with an FTS5 index over the
  searchable ones. ``directory_digits`` (FTS5 with the ``trigram`` tokenizer, rowid =
  ``sort_key``) holds the digits of each ``digits_search`` field, one row per customer, so
  a phone number is found by any run of 3+ of its digits whatever its punctuation;
  :mod:`app.replica.directory` keeps it current.
- ``directory_load`` (version 3): the pages of a first directory sync (the replica had no
  directory yet), staged until the last page arrives, then moved into ``directory`` and
  its indexes in one transaction (:meth:`app.replica.directory.DirectoryStore.stage`,
  ``finish_load``); the ``directory_load_cursor`` setting says where an interrupted one
  resumes.
  ``prefix='1 2 3'`` gives short prefixes (search-as-you-type) their own doclists;
  ``directory_name`` serves the empty query ("everyone, by name") without sorting. Its
  ``sort_key`` layout is described in :mod:`app.replica.directory`.
- ``notifications``: the activity feed, with ``offline`` (arrived through a replay after a
  reconnect) and ``read`` flags (version 2 marked everything stored before as read).
- ``conflicts``: concurrent changes to one field; at most one open conflict per field.
- ``field_versions``: the version and value of fields this client wrote that are still
  current, used to detect conflicts.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from typing import cast

from sync import sqlite_migrations as runner
from sync.protocol import schema as fields_table

__all__ = [
    "APPLICATION_ID",
    "LAYOUT",
    "MIGRATIONS",
    "MIN_DIGITS",
    "SCHEMA_VERSION",
    "SchemaError",
    "check",
    "derive_digits",
    "digit_string",
    "digits_fields",
    "migrate",
]

log = logging.getLogger(__name__)

#: ``PRAGMA application_id`` of a Live Edit replica ("LEre").
APPLICATION_ID = 0x4C457265

#: The numbered migrations (history: never edit one that shipped; append a new one).
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
    # 2: each outbox entry names the parts it changes (JSON list of field names and of
    # "notes", "tasks", "comments", "meta"; NULL for entries queued by version 1, read from
    # their summary), and notifications stored before the unread count existed are read
    # (else the first launch after the upgrade counts every stored one as unread).
    """
    ALTER TABLE outbox ADD COLUMN parts TEXT;
    UPDATE notifications SET read = 1 WHERE read = 0;
    """,
    # 3: the staging table of a first directory sync (bulk load, built once at the end):
    # one row per page as received, its column arrays as a msgpack map (the columns
    # follow the field table, so they are not columns here; SQLite keeps the bytes as
    # they are whatever the declared type).
    """
    CREATE TABLE directory_load (page INTEGER PRIMARY KEY, rows TEXT NOT NULL);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)
#: The directory and its index, for the shared runner's derived migration.
LAYOUT = runner.DirectoryLayout(
    table="directory", fts="directory_fts", content_rowid="sort_key",
    fts_options="tokenize='unicode61 remove_diacritics 2', prefix='1 2 3'",
    update_when_changed=True,
)
#: Shortest digit suffix indexed (shorter ones would match nearly every number).
MIN_DIGITS = 3


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
    """Bring the replica to SCHEMA_VERSION, then its directory to the field table.

    ``conn`` must be in autocommit mode (``isolation_level=None``) with no transaction
    open. Raises SchemaError as :func:`check` does.
    """
    try:
        runner.migrate(conn, MIGRATIONS, what="replica",
                       check=lambda c: check(cast(sqlite3.Connection, c)))
        runner.derive_directory(conn, LAYOUT)
    except runner.MigrationError as exc:
        raise SchemaError(str(exc)) from exc
    derive_digits(conn)


# --- the digits index, derived from the field table -------------------------------------


def digits_fields() -> tuple[str, ...]:
    """Searchable fields found by their digits whatever the punctuation (phone numbers)."""
    return tuple(f.name for f in fields_table.searchable_fields() if f.digits_search)


def digit_string(value: str | None) -> str | None:
    """The digits of ``value`` (punctuation dropped), or None when it has none: what
    ``directory_digits`` holds for a field; its trigram index finds any run of 3+ digits."""
    if not value:
        return None
    if value.isascii():  # the common case, in C: the same as isdigit() on ASCII
        digits = _NOT_DIGITS.sub("", value)
    else:
        digits = "".join(c for c in value if c.isdigit())
    return digits or None


_NOT_DIGITS = re.compile(r"[^0-9]+")


#: How ``directory_digits`` is made (a change here rebuilds it on open).
DIGITS_OPTIONS = "tokenize='trigram'"


def derive_digits(conn: sqlite3.Connection) -> bool:
    """Make ``directory_digits`` index the field table's :func:`digits_fields` (rebuilt
    from the directory's rows when they differ); True when it changed something."""
    wanted = list(digits_fields())
    have = [r[1] for r in conn.execute("PRAGMA table_info(directory_digits)")]
    made = conn.execute("SELECT sql FROM sqlite_schema WHERE name = 'directory_digits'"
                        ).fetchone()
    if have == wanted and (not wanted or (made and DIGITS_OPTIONS in made[0])):
        return False
    log.info("rebuilding the replica's digits index over %s", ", ".join(wanted) or "nothing")
    with runner.transaction(conn):
        conn.execute("DROP TABLE IF EXISTS directory_digits")
        if wanted:
            # Names come from the field table (checked identifiers), never from input.
            cols = ", ".join(wanted)
            marks = ", ".join("?" for _ in wanted)
            conn.execute(
                f"CREATE VIRTUAL TABLE directory_digits USING fts5({cols}, {DIGITS_OPTIONS})")
            rows = conn.execute(
                f"SELECT sort_key, {cols} FROM directory ORDER BY sort_key").fetchall()  # noqa: S608
            conn.executemany(
                f"INSERT INTO directory_digits(rowid, {cols}) VALUES (?, {marks})",  # noqa: S608
                [(r[0], *(digit_string(v) for v in r[1:])) for r in rows],
            )
    return True
