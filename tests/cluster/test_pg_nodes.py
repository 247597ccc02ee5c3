"""Two nodes' writers and buses on one Postgres: commits signal the other node, catch-up."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from sync.server.bus import BusEvent, UpdatesCommitted
from sync.server.storage.postgres.bus import PostgresBus
from sync.server.storage.postgres.log import LogFeed
from sync.server.storage.postgres.writer import PostgresWriter
from sync.server.storage.records import Commit, LogEntry

from .pg import PostgresCluster
from .waiting import eventually


class Node:
    """One server node's storage side: a pool, a writer and a bus with the same node id."""

    def __init__(self, dsn: str, node_id: str) -> None:
        self.dsn, self.node_id = dsn, node_id
        self.heard: list[BusEvent] = []
        self.resyncs = 0

    def on_event(self, event: BusEvent) -> None:
        self.heard.append(event)

    def on_resync(self) -> None:
        self.resyncs += 1

    def latest(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for e in self.heard:
            if isinstance(e, UpdatesCommitted):
                out[e.doc_id] = max(e.seq, out.get(e.doc_id, 0))
        return out

    async def start(self) -> None:
        self.pool = await asyncpg.create_pool(self.dsn, min_size=2, max_size=2)
        self.writer = PostgresWriter(self.pool, node_id=self.node_id)
        self.writer.start()
        self.bus = PostgresBus(self.dsn, LogFeed(self.pool), node_id=self.node_id,
                               probe_interval=0.5, max_backoff=0.5)
        await self.bus.start(self)

    async def commit(self, doc_id: str) -> int:
        entry = LogEntry(0, doc_id, "alice", "s-1", 1.0, ("notes",), b"\x00")
        seq = (await self.writer.submit(Commit(entry=entry))).seq
        assert seq is not None
        return seq

    async def stop(self) -> None:
        await self.bus.close()
        await self.writer.close()
        self.pool.terminate()


@pytest.fixture
async def nodes(migrated_dsn: str) -> AsyncIterator[tuple[Node, Node]]:
    """Nodes "a" and "b" on one migrated database."""
    a, b = Node(migrated_dsn, "a"), Node(migrated_dsn, "b")
    await a.start()
    await b.start()
    yield a, b
    await a.stop()
    await b.stop()


async def test_a_commit_on_one_node_signals_the_other_even_after_a_drop(
    nodes: tuple[Node, Node], pg_cluster: PostgresCluster, pg_dsn: str
) -> None:
    """B hears each of A's commits with its number, never its own; a dropped B catches up."""
    a, b = nodes
    assert await a.commit("customer:1") == 1
    assert await b.commit("customer:2") == 2
    await eventually(lambda: b.latest() == {"customer:1": 1} and a.latest() == {"customer:2": 2},
                     what="each node to hear the other's commit")
    assert [e.node for e in b.heard] == ["a"]

    dbname = pg_dsn.rsplit("/", 1)[1]
    pg_cluster.psql(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS false')
    assert pg_cluster.terminate_backends(dbname, "liveedit-bus-b") == 1
    await eventually(lambda: not b.bus.listening, what="B's listener to drop")
    seqs = [await a.commit(doc) for doc in ("customer:1", "customer:3", "customer:1")]
    assert seqs == [3, 4, 5]
    pg_cluster.psql(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS true')
    await eventually(lambda: b.latest() == {"customer:1": 5, "customer:3": 4},
                     what="B to catch up on what A committed meanwhile")
    assert b.resyncs == 2 and b.bus.listening
