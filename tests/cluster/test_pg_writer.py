"""The Postgres group-commit writer: numbers handed out at commit, failures acked as such."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from sync.protocol.messages import Notification, NotificationKind
from sync.server.errors import DatabaseError
from sync.server.storage.postgres import directory, records
from sync.server.storage.postgres.log import updates_since
from sync.server.storage.postgres.writer import PostgresWriter
from sync.server.store import Commit, DirectoryRow, LogEntry
from tests.faults.proxy import FaultProxy

from .pg import PostgresCluster


@pytest.fixture
async def pool(migrated_dsn: str) -> AsyncIterator[Any]:
    """A connection pool on a migrated test database."""
    connections = await asyncpg.create_pool(migrated_dsn, min_size=1, max_size=4)
    yield connections
    connections.terminate()


def _commit(doc: str, n: int, *, note: bool = False, snapshot: bool = False) -> Commit:
    notifications = [Notification(0, doc, NotificationKind.UPDATED, "alice", 1.0, ("name",),
                                  f"v{n}")] if note else []
    return Commit(
        entry=LogEntry(0, doc, "alice", "session-1", 1.0, ("fields.name",), f"u{n}".encode()),
        directory=DirectoryRow.of(doc.split(":")[1], {"name": f"v{n}"}, updated_at=1.0,
                                  deleted=False, cursor=0),
        notifications=notifications, expires_at=10**10,
        snapshot=(doc, 0, f"snap{n}".encode()) if snapshot else None,
    )


async def test_changes_get_their_numbers_at_commit_in_submission_order(pool: Any) -> None:
    """Futures resolve with consecutive seqs; rows, cursors, snapshots use those numbers."""
    writer = PostgresWriter(pool, node_id="n1", max_batch=7)
    writer.start()
    try:
        futures = [writer.submit(_commit(f"customer:{k % 3}", k, note=k % 2 == 0,
                                         snapshot=k == 4)) for k in range(20)]
        barrier = writer.barrier()
        results = await asyncio.gather(*futures)
        assert (await barrier).seq is None
    finally:
        await writer.close()
    assert [r.seq for r in results] == list(range(1, 21))
    assert [n.seq for r in results for n in r.notifications] == list(range(1, 11))
    assert writer.commits >= 3  # batches of at most 7
    async with pool.acquire() as conn:
        logged = await updates_since(conn, 0, 100)
        assert [(s, d) for s, d, _ in logged] == [(k + 1, f"customer:{k % 3}") for k in range(20)]
        row = await directory.directory_row(conn, "1")
        assert row is not None and (row.cursor, row.fields["name"]) == (20, "v19")
        parts, last = await records.load_document(conn, "customer:1")
        assert (parts[0], last) == (b"snap4", 20)  # the snapshot took change 4's number: 5
        assert await conn.fetchval("SELECT seq FROM snapshots") == 5


async def test_a_failed_transaction_acks_nothing_and_the_next_one_works(
    pool: Any, pg_cluster: PostgresCluster, pg_dsn: str
) -> None:
    """With Postgres unreachable a change fails (no number); once back, numbering goes on."""
    writer = PostgresWriter(pool)
    writer.start()
    dbname = pg_dsn.rsplit("/", 1)[1]
    try:
        assert (await writer.submit(_commit("customer:a", 1))).seq == 1
        pg_cluster.psql(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS false')
        pg_cluster.terminate_backends(dbname)
        with pytest.raises(DatabaseError, match="could not store"):
            await writer.submit(_commit("customer:a", 2))
        pg_cluster.psql(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS true')
        assert (await writer.submit(_commit("customer:a", 3))).seq == 2
    finally:
        await writer.close()
    async with pool.acquire() as conn:
        assert [s for s, _, _ in await updates_since(conn, 0, 10)] == [1, 2]


async def test_a_transaction_postgres_never_answers_fails_in_time(
    migrated_dsn: str, pg_cluster: PostgresCluster,
) -> None:
    """A link that goes silent without an error (no FIN, no RST: a partition) used to
    hold the writer until TCP gave up, minutes later. Now the batch fails after
    stall_timeout, its connection is closed, and once the link is back changes are stored."""
    proxy = FaultProxy(pg_cluster.port)
    await proxy.start()
    dsn = migrated_dsn.replace(f":{pg_cluster.port}/", f":{proxy.port}/")
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2, timeout=5)
    writer = PostgresWriter(pool, stall_timeout=1.0)
    writer.start()
    try:
        assert (await asyncio.wait_for(writer.submit(_commit("customer:a", 1)), 15)).seq == 1
        proxy.blackhole(True)
        started = asyncio.get_running_loop().time()
        with pytest.raises(DatabaseError, match="did not answer within 1 seconds"):
            await asyncio.wait_for(writer.submit(_commit("customer:a", 2)), 15)
        assert asyncio.get_running_loop().time() - started < 10
        assert writer.failed is not None and writer.stopped is None
        proxy.heal()
        stored = await asyncio.wait_for(writer.submit(_commit("customer:a", 3)), 15)
        assert stored.seq is not None and writer.failed is None
    finally:
        proxy.heal()
        await asyncio.wait_for(writer.close(), 15)
        pool.terminate()
        await proxy.stop()


async def test_the_writer_survives_its_connection_cut_at_any_moment(
    pool: Any, pg_cluster: PostgresCluster, pg_dsn: str
) -> None:
    """Backends killed while changes stream in: each change settles (stored or failed), the
    writer task never ends, and the next change is stored (issue 12: a cut connection left in
    a bad protocol state used to end the writer, so nothing was acked again)."""
    writer = PostgresWriter(pool)
    writer.start()
    dbname = pg_dsn.rsplit("/", 1)[1]
    futures: list[asyncio.Future[Any]] = []

    async def stream() -> None:
        for k in range(150):
            futures.append(writer.submit(_commit("customer:a", k)) if k % 3 else writer.barrier())
            await asyncio.sleep(0.002 * (k % 4))  # spread over the cut, not a wait for a state

    try:
        for cut in range(6):
            streaming = asyncio.create_task(stream())
            await asyncio.sleep(0.05 * cut)
            await asyncio.to_thread(pg_cluster.terminate_backends, dbname)
            await streaming
            done, pending = await asyncio.wait(futures, timeout=15)
            assert not pending, f"{len(pending)} changes never settled: {writer.stopped}"
            for future in done:
                future.exception()  # a failure is expected here (mark it retrieved)
            assert writer.stopped is None
            futures.clear()
        assert (await asyncio.wait_for(writer.barrier(), 15)).seq is None
        stored = await asyncio.wait_for(writer.submit(_commit("customer:a", 999)), 15)
        assert stored.seq is not None
    finally:
        await asyncio.wait_for(writer.close(), 15)
