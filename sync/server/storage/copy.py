"""``liveedit server copy --from PATH --to URL``: move a SQLite server's data to Postgres.

Everything moves with its identity: update sequence numbers (so clients' "since N" cursors
stay valid), snapshots, notifications, directory rows and cursors, accounts with their ids
and password hashes, refresh tokens and the JWT signing key (``meta``: tokens issued by the
SQLite server stay valid). The target must be an empty Live Edit database (it is migrated
first); the copy is one Postgres transaction, so a failed copy leaves it empty. The source
is read in one read transaction (one snapshot); the caller holds the server lock, so no
server writes to it meanwhile.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from sync.protocol import schema

from ..errors import ConfigError, DatabaseError
from .postgres.errors import DATABASE_ERRORS
from .postgres.schema import migrate

__all__ = ["CopyResult", "copy_sqlite_to_postgres"]

log = logging.getLogger(__name__)

_CHUNK = 10_000


@dataclass(frozen=True, slots=True)
class CopyResult:
    """How many rows of each table were copied."""

    counts: dict[str, int]
    last_seq: int
    seconds: float


def _bool(value: Any) -> bool:
    return bool(value)


def _tables() -> list[tuple[str, list[str], dict[str, Callable[[Any], Any]]]]:
    """(table, columns, conversions) in an order that respects foreign keys."""
    directory = ["customer_id", *(f.name for f in schema.directory_fields()),
                 "updated_at", "deleted", "cursor"]
    return [
        ("meta", ["key", "value"], {"value": bytes}),
        ("users", ["id", "username", "password_hash", "role", "customer_id", "disabled",
                   "token_version", "created_at"], {"disabled": _bool}),
        ("refresh_tokens", ["token_hash", "user_id", "family", "issued_at", "expires_at",
                            "used_at", "revoked"], {"revoked": _bool}),
        ("updates", ["seq", "doc_id", "author", "session_id", "time", "changes", "data"],
         {"data": bytes}),
        ("snapshots", ["doc_id", "seq", "data"], {"data": bytes}),
        ("notifications", ["seq", "doc_id", "kind", "actor", "time", "fields", "title",
                           "expires_at"], {}),
        ("directory", directory, {"deleted": _bool}),
    ]


def _chunks(conn: sqlite3.Connection, table: str, columns: Sequence[str],
            convert: dict[str, Callable[[Any], Any]]) -> Iterator[list[tuple[Any, ...]]]:
    # Table and column names come from this module and the field table, never from input.
    cursor = conn.execute(f"SELECT {', '.join(columns)} FROM {table}")  # noqa: S608
    fixes = [(i, convert[c]) for i, c in enumerate(columns) if c in convert]
    while rows := cursor.fetchmany(_CHUNK):
        out = []
        for row in rows:
            values = list(row)
            for i, fix in fixes:
                if values[i] is not None:
                    values[i] = fix(values[i])
            out.append(tuple(values))
        yield out


async def copy_sqlite_to_postgres(source: Path, dsn: str) -> CopyResult:
    """Copy the SQLite server database ``source`` into the empty Postgres database ``dsn``.

    ConfigError: no source file, or the target is not empty. DatabaseError: a database
    cannot be read or written (nothing is left half-copied in Postgres).
    """
    source = Path(source)
    if not source.is_file():
        raise ConfigError(f"{source}: no such database file")
    started = time.monotonic()
    try:
        lite = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise DatabaseError(f"cannot open {source}: {exc}") from exc
    try:
        conn = await asyncpg.connect(dsn, timeout=10)
    except DATABASE_ERRORS as exc:
        lite.close()
        raise DatabaseError(f"cannot connect to the Postgres database: {exc}") from exc
    counts: dict[str, int] = {}
    try:
        await migrate(conn)
        if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM users) "
                               "OR EXISTS (SELECT 1 FROM updates)"):
            raise ConfigError("the Postgres database is not empty; copy into a new one")
        lite.execute("BEGIN")  # one snapshot of the source for the whole copy
        async with conn.transaction():
            for table, columns, convert in _tables():
                counts[table] = 0
                for rows in _chunks(lite, table, columns, convert):
                    await conn.copy_records_to_table(table, records=rows, columns=columns)
                    counts[table] += len(rows)
            last_seq = int(await conn.fetchval("SELECT COALESCE(MAX(seq), 0) FROM updates"))
            await conn.execute("UPDATE log_head SET seq = $1", last_seq)
            await conn.execute("UPDATE notification_head SET seq = "
                               "(SELECT COALESCE(MAX(seq), 0) FROM notifications)")
            await conn.execute("SELECT setval(pg_get_serial_sequence('users', 'id'), "
                               "(SELECT COALESCE(MAX(id), 0) FROM users) + 1, false)")
    except sqlite3.Error as exc:
        raise DatabaseError(f"cannot read {source}: {exc}") from exc
    except DATABASE_ERRORS as exc:
        raise DatabaseError(f"copying into Postgres failed (nothing was kept): {exc}") from exc
    finally:
        lite.close()
        await conn.close()
    log.info("copied %s to Postgres: %s", source, counts)
    return CopyResult(counts, last_seq, time.monotonic() - started)
