"""The Postgres directory: derived from the field table, commit-ordered feed, search."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from sync.protocol import schema
from sync.server.storage.postgres import directory
from sync.server.store import DirectoryRow


@pytest.fixture
async def conn(pg_dsn: str) -> AsyncIterator[Any]:
    """A connection to a test database with the derived directory."""
    connection = await asyncpg.connect(pg_dsn)
    await directory.derive_directory(connection)
    yield connection
    await connection.close()


def _row(cid: str, cursor: int, **values: str | None) -> DirectoryRow:
    return DirectoryRow.of(cid, values, updated_at=float(cursor), deleted=False, cursor=cursor)


async def _put(conn: Any, *rows: DirectoryRow) -> None:
    async with conn.transaction():
        await directory.upsert_rows(conn, rows)


async def test_search_matches_every_word_as_a_prefix_in_name_order(conn: Any) -> None:
    """Words match prefixes of any searchable field, split like FTS5; no SQL gets through."""
    await _put(
        conn,
        _row("c1", 1, name="Sam Carter", email="sam@example.com", city="Boston"),
        _row("c2", 2, name="ada lovelace", email="ada@analytical.org", city="London"),
        _row("c3", 3, name="Samira Old", city="Bostonia", state="MA"),
    )
    names = lambda rows: [r.fields["name"] for r in rows]  # noqa: E731
    assert names(await directory.search(conn, "sam bos", 10)) == ["Sam Carter", "Samira Old"]
    assert names(await directory.search(conn, "example.com", 10)) == ["Sam Carter"]
    assert names(await directory.search(conn, "", 10)) == [
        "ada lovelace", "Sam Carter", "Samira Old"]
    assert names(await directory.search(conn, "MA", 10)) == []  # state is not searchable
    assert await directory.search(conn, "x' OR 1=1 --", 10) == []
    assert await directory.search(conn, "!!!", 1) == [await directory.directory_row(conn, "c2")]


async def test_the_feed_and_an_older_row_never_replacing_a_newer(conn: Any) -> None:
    """Feed "since cursor" is in cursor order; an older write of a customer loses."""
    await _put(conn, _row("c1", 1, name="One"), _row("c2", 2, name="Two"))
    await _put(conn, _row("c1", 5, name="One, renamed"))
    await _put(conn, _row("c1", 4, name="stale"))
    feed = await directory.directory_since(conn, 0, 10)
    assert [(r.customer_id, r.cursor, r.fields["name"]) for r in feed] == [
        ("c2", 2, "Two"), ("c1", 5, "One, renamed")]
    assert await directory.directory_since(conn, 2, 10, customer_id="c2") == []
    assert [r.cursor for r in await directory.directory_since(conn, 0, 10, "c1")] == [5]


async def test_a_field_added_to_the_table_becomes_a_column_and_searchable(conn: Any) -> None:
    """A new searchable field row: derive adds its column and reindexes, keeping the data."""
    await _put(conn, _row("c1", 1, name="Kept"))
    extra = schema.Field("account_no", "Account", schema.text_rule(20), "Account",
                         directory=True, searchable=True)
    with schema.extended(extra):
        assert await directory.derive_directory(conn) is True
        assert await directory.derive_directory(conn) is False
        await _put(conn, _row("c2", 2, name="New", account_no="AC-778"))
        found = await directory.search(conn, "ac 77", 10)
        assert [(r.customer_id, r.fields["account_no"]) for r in found] == [("c2", "AC-778")]
        kept = await directory.directory_row(conn, "c1")
        assert kept is not None and kept.fields == {
            **{f.name: None for f in schema.directory_fields()}, "name": "Kept"}
