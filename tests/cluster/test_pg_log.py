"""The Postgres update log: migrations, and a commit-ordered global sequence."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from sync.server.storage.postgres import log as pglog
from sync.server.storage.postgres.schema import SCHEMA_VERSION, migrate, schema_version

from .waiting import eventually


def _row(doc_id: str, n: int = 0) -> pglog.LogRow:
    return (doc_id, "alice", "session-1", 1.0 + n, '["fields.name"]', b"\x01\x02")


@pytest.fixture
async def connect(pg_dsn: str) -> AsyncIterator[Any]:
    """Open connections to a migrated test database; all closed after the test."""
    opened: list[Any] = []

    async def make() -> Any:
        conn = await asyncpg.connect(pg_dsn)
        opened.append(conn)
        return conn

    await migrate(await make())
    yield make
    for conn in opened:
        await conn.close()


async def test_nodes_starting_together_migrate_once(pg_dsn: str) -> None:
    """Three nodes migrating one new database at once: one runs each migration, all agree."""
    conns = [await asyncpg.connect(pg_dsn) for _ in range(3)]
    try:
        ran = await asyncio.gather(*(migrate(c) for c in conns))
        assert sorted(ran) == [0, 0, SCHEMA_VERSION]
        assert {await schema_version(c) for c in conns} == {SCHEMA_VERSION}
        assert await migrate(conns[0]) == 0
    finally:
        for conn in conns:
            await conn.close()


async def _waiting_on_lock(conn: Any, pid: int) -> bool:
    kind = await conn.fetchval(
        "SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", pid
    )
    return bool(kind == "Lock")


async def test_a_reader_since_n_never_skips_a_row_that_commits_later(connect: Any) -> None:
    """While a transaction holding seq 1 stays open, nobody can commit seq 2 and be read."""
    first, second, reader = await connect(), await connect(), await connect()
    open_tx = first.transaction()
    await open_tx.start()
    assert await pglog.append_updates(first, [_row("customer:a")]) == 1

    async def commit_second() -> int:
        async with second.transaction():
            return await pglog.append_updates(second, [_row("customer:b")])

    later = asyncio.create_task(commit_second())
    pid = second.get_server_pid()
    status: dict[str, bool] = {"waiting": False}

    async def check() -> None:
        status["waiting"] = await _waiting_on_lock(reader, pid)

    while not status["waiting"]:
        await check()
        assert not later.done(), "the second writer committed around the open one"
    # The second writer is blocked behind the open transaction: a reader sees nothing yet.
    assert await pglog.updates_since(reader, 0, 100) == []
    await open_tx.commit()
    assert await asyncio.wait_for(later, 10) == 2
    assert [r[0] for r in await pglog.updates_since(reader, 0, 100)] == [1, 2]


async def test_a_rolled_back_writer_gives_its_numbers_back(connect: Any) -> None:
    """Numbers of a rolled-back transaction are reused: the log has no holes."""
    conn = await connect()
    tx = conn.transaction()
    await tx.start()
    assert await pglog.append_updates(conn, [_row("customer:a"), _row("customer:b")]) == 1
    await tx.rollback()
    async with conn.transaction():
        assert await pglog.append_updates(conn, [_row("customer:c")]) == 1
    assert await pglog.updates_since(conn, 0, 10) == [(1, "customer:c", "session-1")]


async def test_concurrent_writers_and_a_cursor_reader_see_a_gap_free_log(connect: Any) -> None:
    """4 writers commit 160 batches while a reader follows "since cursor": it sees all, once."""
    writers = [await connect() for _ in range(4)]
    reader = await connect()
    rng = random.Random(12)
    batches = 40

    async def write(conn: Any, k: int) -> None:
        for n in range(batches):
            async with conn.transaction():
                size = rng.randint(1, 5)
                await pglog.append_updates(
                    conn, [_row(f"customer:{k}-{n}", i) for i in range(size)]
                )
                # Vary the interleavings (workload, not synchronisation).
                await asyncio.sleep(rng.random() * 0.002)

    seen: list[int] = []
    writing = asyncio.gather(*(write(c, k) for k, c in enumerate(writers)))

    async def follow() -> None:
        while True:
            rows = await pglog.updates_since(reader, seen[-1] if seen else 0, 50)
            seen.extend(r[0] for r in rows)
            if writing.done() and not rows:
                return
            await asyncio.sleep(0)

    await asyncio.gather(writing, follow())
    total = await pglog.last_seq(reader)
    assert seen == list(range(1, total + 1))


async def test_the_signal_goes_out_with_the_commit(pg_dsn: str, connect: Any) -> None:
    """A listener hears of appended rows only once they are committed, one signal per doc."""
    listener, writer = await connect(), await connect()
    heard: list[str] = []
    await listener.add_listener("liveedit_bus", lambda *args: heard.append(args[3]))
    tx = writer.transaction()
    await tx.start()
    await pglog.append_updates(writer, [_row("customer:a"), _row("customer:a"),
                                        _row("customer:b")], node="node1")
    probe = await connect()
    async with probe.transaction():  # a later commit: its (absent) signal would pass ours
        await probe.execute("SELECT 1")
    await probe.execute("NOTIFY liveedit_bus, 'marker'")
    await eventually(lambda: "marker" in heard, what="the marker notification")
    assert heard == ["marker"]
    await tx.commit()
    await eventually(lambda: len(heard) == 3, what="the two update signals")
    assert sorted(h.split(",")[4] for h in heard[1:]) == ['"customer:a"', '"customer:b"']
