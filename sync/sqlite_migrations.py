"""Schema migrations of Live Edit's SQLite files, shared by the server and the replica.

Two kinds, both run when a file is opened for writing:

- *Versioned* migrations (:func:`migrate`): a tuple of SQL scripts; ``scripts[i]`` takes
  the file from version ``i`` to ``i + 1`` (kept in ``PRAGMA user_version``, as
  pycrdt-store does) and runs in one transaction. Scripts are history: never edit one
  that has shipped, append a new one.
- *Derived* migrations (:func:`derive_directory`): the customer directory's columns and
  its FTS5 index follow the field table (:mod:`sync.protocol.schema`). A directory column
  that the table has and the file lacks is added (``ALTER TABLE … ADD COLUMN``: existing
  rows keep their data, the new column is null), and when the index's columns are not the
  table's searchable fields, the index and its triggers are recreated and rebuilt from
  the directory's rows. So a new field is one row in the table, and no migration script.

The server (``sync.server.storage.sqlite.db``) and the replica (``app.replica.schema``)
describe their directory with a :class:`DirectoryLayout` (table names, the FTS rowid
column, tokenizer options) and call these functions; neither writes its own runner. The
module is typed against a DB-API connection in autocommit mode (``sqlite3`` with
``isolation_level=None``); it imports nothing of the server or the client (import-linter
contract in pyproject.toml).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from sync.protocol import schema

__all__ = [
    "Connection",
    "DirectoryLayout",
    "MigrationError",
    "derive_directory",
    "migrate",
    "statements",
    "transaction",
]

log = logging.getLogger(__name__)


class Cursor(Protocol):
    """What the runner reads from a DB-API cursor."""

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    """A DB-API connection in autocommit mode (the runner opens its own transactions)."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...


class MigrationError(Exception):
    """The file cannot be brought to this code's schema (e.g. it is newer than the code)."""


@contextmanager
def transaction(conn: Connection) -> Iterator[Connection]:
    """One write transaction (``BEGIN IMMEDIATE``): committed when the block ends, rolled
    back when it (or the commit) raises; the exception goes on."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if getattr(conn, "in_transaction", True):  # a failed COMMIT may have ended it
            conn.execute("ROLLBACK")
        raise


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


def migrate(
    conn: Connection, scripts: Sequence[str], *, what: str = "database",
    check: Callable[[Connection], int] | None = None,
) -> int:
    """Bring the file to version ``len(scripts)``, one script per transaction.

    ``check`` (optional) reads the current version itself and raises when the file is not
    one this code may touch; by default the version is ``PRAGMA user_version``. Raises
    MigrationError when the file is newer than the code. Returns the version reached.
    """
    latest = len(scripts)
    version = check(conn) if check is not None else int(
        conn.execute("PRAGMA user_version").fetchone()[0]
    )
    if version > latest:
        raise MigrationError(
            f"{what} schema version {version} is newer than this version of Live Edit "
            f"supports ({latest}); upgrade Live Edit"
        )
    for target in range(version + 1, latest + 1):
        log.info("migrating the %s schema to version %d", what, target)
        with transaction(conn):
            for statement in statements(scripts[target - 1]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {int(target)}")
    return latest


@dataclass(frozen=True, slots=True)
class DirectoryLayout:
    """How one file lays out the customer directory and its full-text index.

    ``content_rowid`` is the directory column the FTS rows are keyed by; ``fts_options``
    is appended to the FTS5 arguments (tokenizer, prefixes); ``update_when_changed`` makes
    the update trigger fire only when the key or a searched column changed.
    """

    table: str = "directory"
    fts: str = "directory_fts"
    content_rowid: str = "rowid"
    fts_options: str = "tokenize='unicode61'"
    update_when_changed: bool = False

    def index_sql(self, searchable: Sequence[str]) -> list[str]:
        """The statements that create the FTS5 table and the triggers keeping it current."""
        cols = ", ".join(searchable)
        new = ", ".join(f"new.{c}" for c in searchable)
        old = ", ".join(f"old.{c}" for c in searchable)
        t, fts, key = self.table, self.fts, self.content_rowid
        # Names come from the layout and the field table (lower-case identifiers, checked
        # by schema.Field), never from input.
        delete = (f"INSERT INTO {fts}({fts}, rowid, {cols}) "  # noqa: S608
                  f"VALUES ('delete', old.{key}, {old});")
        insert = f"INSERT INTO {fts}(rowid, {cols}) VALUES (new.{key}, {new});"  # noqa: S608
        when = ""
        if self.update_when_changed:
            changed = " OR ".join(f"old.{c} IS NOT new.{c}" for c in (key, *searchable))
            when = f" WHEN {changed}"
        return [
            f"CREATE VIRTUAL TABLE {fts} USING fts5({cols}, content='{t}', "
            f"content_rowid='{key}', {self.fts_options})",
            f"CREATE TRIGGER {t}_ai AFTER INSERT ON {t} BEGIN {insert} END",
            f"CREATE TRIGGER {t}_ad AFTER DELETE ON {t} BEGIN {delete} END",
            f"CREATE TRIGGER {t}_au AFTER UPDATE ON {t}{when} BEGIN {delete} {insert} END",
        ]


def _columns(conn: Connection, table: str) -> list[str]:
    return [str(row[1]) for row in conn.execute(f"PRAGMA table_info({table})").fetchall()]


def _index_current(conn: Connection, layout: DirectoryLayout, searchable: list[str]) -> bool:
    if _columns(conn, layout.fts) != searchable:
        return False
    want = {f"{layout.table}_ai", f"{layout.table}_ad", f"{layout.table}_au"}
    have = {str(r[0]) for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?",
        (layout.table,),
    ).fetchall()}
    return want <= have


def derive_directory(conn: Connection, layout: DirectoryLayout) -> bool:
    """Make the directory's columns and FTS index match the field table (derived migration).

    Call right after :func:`migrate`, on every open for writing. Adds each missing column
    of :func:`schema.directory_fields` (nullable text, rows keep their data) and recreates
    and rebuilds the FTS index when its columns are not :func:`schema.searchable_fields`.
    Columns the table no longer names are left in place (never dropped: no data is lost).
    Returns True when it changed something (one transaction), False when all was current.
    """
    present = set(_columns(conn, layout.table))
    if not present:
        raise MigrationError(f"the {layout.table} table is missing; run migrate() first")
    missing = [f.name for f in schema.directory_fields() if f.name not in present]
    searchable = [f.name for f in schema.searchable_fields()]
    if not missing and _index_current(conn, layout, searchable):
        return False
    with transaction(conn):
        for name in missing:
            log.info("adding directory column %r (from the field table)", name)
            conn.execute(f"ALTER TABLE {layout.table} ADD COLUMN {name} TEXT")
        if not _index_current(conn, layout, searchable):
            log.info("rebuilding the directory's search index over %s", ", ".join(searchable))
            for suffix in ("ai", "ad", "au"):
                conn.execute(f"DROP TRIGGER IF EXISTS {layout.table}_{suffix}")
            conn.execute(f"DROP TABLE IF EXISTS {layout.fts}")
            for statement in layout.index_sql(searchable):
                conn.execute(statement)
            conn.execute(f"INSERT INTO {layout.fts}({layout.fts}) VALUES ('rebuild')")  # noqa: S608
    return True
