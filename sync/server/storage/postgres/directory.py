"""The customer directory on Postgres, derived from the field table, with prefix search.

Like the SQLite directory (sync/sqlite_migrations.py, ``derive_directory``), the table's
field columns are not written down here: :func:`derive_directory` adds a nullable text
column for each :func:`~sync.protocol.schema.directory_fields` row that is missing (never
dropping one: no data is lost), and keeps the ``search`` column, a generated ``tsvector``
over :func:`~sync.protocol.schema.searchable_fields` with a GIN index, in step with the
table. Text is split at every character that is not a letter or digit before indexing,
and every word a person types must match some word as a prefix: the behaviour of the
SQLite engine's FTS5 ``unicode61`` index.

``cursor`` is the sequence number of the change that wrote the row; rows are written in
the same transaction as their update (commit-ordered, log.py), so a follower of "rows
with a cursor after N" never skips one.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Sequence
from typing import Any

from sync.protocol import schema

from ..records import DirectoryRow

__all__ = [
    "derive_directory", "directory_row", "directory_since", "query_words", "search",
    "upsert_rows",
]

log = logging.getLogger(__name__)

_STATE = ("updated_at", "deleted", "cursor")
#: Advisory lock key of the derived migration (several nodes may start at once).
_DERIVE_LOCK = 0x4C49_5645_4544_0002
_WORD = re.compile(r"[^\W_]+")


def _field_columns() -> list[str]:
    # Names come from the field table: lower-case identifiers, checked by schema.Field.
    return [f.name for f in schema.directory_fields()]


def _select_columns() -> str:
    return ", ".join(["customer_id", *_field_columns(), *_STATE])


def _search_expression(searchable: Sequence[str]) -> str:
    text = " || ' ' || ".join(f"coalesce({name}, '')" for name in searchable) or "''"
    return f"to_tsvector('simple', regexp_replace(lower({text}), '[^[:alnum:]]+', ' ', 'g'))"


async def derive_directory(conn: Any) -> bool:
    """Create or extend the directory to match the field table; True if it changed."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _DERIVE_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS directory ("
            "customer_id TEXT PRIMARY KEY, updated_at DOUBLE PRECISION NOT NULL, "
            "deleted BOOLEAN NOT NULL DEFAULT false, cursor BIGINT NOT NULL UNIQUE)"
        )
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS derived (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
        )
        present = {r[0] for r in await conn.fetch(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = 'directory'"
        )}
        changed = False
        for name in _field_columns():
            if name not in present:
                log.info("adding directory column %r (from the field table)", name)
                await conn.execute(f"ALTER TABLE directory ADD COLUMN {name} TEXT")
                changed = True
        searchable = [f.name for f in schema.searchable_fields()]
        indexed = ",".join(searchable)
        current = await conn.fetchval(
            "SELECT value FROM derived WHERE key = 'directory_search'"
        )
        if "search" not in present or current != indexed:
            log.info("rebuilding the directory's search index over %s", ", ".join(searchable))
            await conn.execute("ALTER TABLE directory DROP COLUMN IF EXISTS search")
            await conn.execute(
                "ALTER TABLE directory ADD COLUMN search tsvector GENERATED ALWAYS AS "
                f"({_search_expression(searchable)}) STORED"
            )
            await conn.execute("CREATE INDEX IF NOT EXISTS directory_search ON directory "
                               "USING gin (search)")
            await conn.execute(
                "INSERT INTO derived VALUES ('directory_search', $1) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value", indexed,
            )
            changed = True
        await conn.execute("CREATE INDEX IF NOT EXISTS directory_name ON directory "
                           "(lower(name))")
    return changed


def _row(record: Any) -> DirectoryRow:
    values = list(record)
    names = _field_columns()
    fields = dict(zip(names, values[1:1 + len(names)], strict=True))
    updated_at, deleted, cursor = values[1 + len(names):]
    return DirectoryRow(values[0], fields, float(updated_at), bool(deleted), int(cursor))


async def upsert_rows(conn: Any, rows: Sequence[DirectoryRow]) -> None:
    """Write directory rows (the last per customer in the batch wins, under the batch's
    highest cursor for it; an older cursor never replaces a newer one). Call inside the
    transaction that logs their change."""
    latest: dict[str, DirectoryRow] = {}
    for row in rows:  # the last in batch order, under the highest cursor of the batch
        prev = latest.get(row.customer_id)
        keep = row if prev is None or prev.cursor <= row.cursor else dataclasses.replace(
            row, cursor=prev.cursor)
        latest[row.customer_id] = keep
    if not latest:
        return
    names = _field_columns()
    columns = ["customer_id", *names, *_STATE]
    types = ["text"] * (1 + len(names)) + ["float8", "bool", "int8"]
    arrays = ", ".join(f"${i}::{t}[]" for i, t in enumerate(types, start=1))
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns[1:])
    rows_ = list(latest.values())
    values = [
        [r.customer_id for r in rows_],
        *([r.fields.get(n) for r in rows_] for n in names),
        [r.updated_at for r in rows_], [r.deleted for r in rows_], [r.cursor for r in rows_],
    ]
    # One statement for the whole batch (column arrays), not one per row.
    await conn.execute(
        f"INSERT INTO directory ({', '.join(columns)}) SELECT * FROM unnest({arrays}) "  # noqa: S608
        f"ON CONFLICT (customer_id) DO UPDATE SET {updates} "
        "WHERE excluded.cursor > directory.cursor",
        *values,
    )


async def directory_row(conn: Any, customer_id: str) -> DirectoryRow | None:
    """The directory row of one customer, or None."""
    record = await conn.fetchrow(
        f"SELECT {_select_columns()} FROM directory WHERE customer_id = $1",  # noqa: S608
        customer_id,
    )
    return _row(record) if record is not None else None


async def directory_since(conn: Any, cursor: int, limit: int,
                          customer_id: str | None = None) -> list[DirectoryRow]:
    """Rows changed after ``cursor``, oldest change first (one customer's, if given)."""
    sql = f"SELECT {_select_columns()} FROM directory WHERE cursor > $1"  # noqa: S608
    if customer_id is None:
        records = await conn.fetch(sql + " ORDER BY cursor LIMIT $2", cursor, limit)
    else:
        records = await conn.fetch(sql + " AND customer_id = $3 ORDER BY cursor LIMIT $2",
                                   cursor, limit, customer_id)
    return [_row(r) for r in records]


def query_words(text: str) -> list[str]:
    """The words of what a person typed, as the index splits them (at most 16)."""
    return _WORD.findall(text.lower())[:16]


async def search(conn: Any, query: str, limit: int, *,
                 include_deleted: bool = False) -> list[DirectoryRow]:
    """Customers matching every typed word as a prefix, in name order (an empty query
    lists customers by name). The words travel as a parameter, never as SQL."""
    words = query_words(query)
    deleted = "" if include_deleted else " AND NOT deleted"
    order = " ORDER BY lower(name), customer_id LIMIT $1"
    if not words:
        records = await conn.fetch(
            f"SELECT {_select_columns()} FROM directory WHERE true{deleted}{order}",  # noqa: S608
            limit,
        )
    else:
        records = await conn.fetch(
            f"SELECT {_select_columns()} FROM directory WHERE search @@ "  # noqa: S608
            "(SELECT string_agg(quote_literal(w) || ':*', ' & ')::tsquery "
            f"FROM unnest($2::text[]) AS w){deleted}{order}",
            limit, words,
        )
    return [_row(r) for r in records]
