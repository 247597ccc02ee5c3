"""The Postgres bus on a real Postgres: signals between nodes, catch-up after a drop."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest

from sync.server.bus import (
    AccountChanged,
    BusEvent,
    PresenceSignal,
    SessionMoved,
    UpdatesCommitted,
)
from sync.server.storage.postgres.bus import PostgresBus
from sync.server.storage.postgres.log import LogFeed, append_updates
from tests.bus_recorder import Recorder

from .pg import PostgresCluster
from .waiting import eventually


@pytest.fixture
async def log_conn(migrated_dsn: str) -> AsyncIterator[Any]:
    """A connection to the test database, migrated (the real update log)."""
    conn = await asyncpg.connect(migrated_dsn)
    yield conn
    await conn.close()


@pytest.fixture
async def make_bus(pg_dsn: str, log_conn: Any) -> AsyncIterator[Callable[..., Any]]:
    """Start PostgresBus nodes on the test database; all closed after the test."""
    buses: list[PostgresBus] = []
    pool = await asyncpg.create_pool(pg_dsn, min_size=0, max_size=2)

    async def make(**options: Any) -> tuple[PostgresBus, Recorder]:
        bus = PostgresBus(pg_dsn, LogFeed(pool), probe_interval=0.5,
                          max_backoff=0.5, **options)
        recorder = Recorder()
        await bus.start(recorder)
        buses.append(bus)
        return bus, recorder

    yield make
    for bus in buses:
        await bus.close()
    pool.terminate()


async def _commit(conn: Any, seq: int, doc_id: str) -> None:
    """A writer node's commit: the log row and its signal in one transaction."""
    async with conn.transaction():
        row = (doc_id, "alice", None, 1.0, "[]", b"\x00")
        assert await append_updates(conn, [row], node="writer") == seq


async def test_events_reach_other_nodes_but_never_their_sender(
    log_conn: Any, make_bus: Callable[..., Any]
) -> None:
    """Every kind of event published on node A reaches node B with A's id, and not A."""
    a, got_a = await make_bus()
    b, got_b = await make_bus()
    sent: list[BusEvent] = [
        UpdatesCommitted("", "customer:1", 7),
        PresenceSignal("", "customer:1", "session-1", "alice", {"field": "name"}),
        AccountChanged("", "bob"),
        SessionMoved("", "session-2"),
    ]
    for event in sent:
        await a.publish(event)
    await eventually(lambda: len(got_b.events) == 4, what="B to get A's four events")
    assert [type(e) for e in got_b.events] == [type(e) for e in sent]
    assert {e.node for e in got_b.events} == {a.node_id}
    assert got_b.events[1] == PresenceSignal(
        a.node_id, "customer:1", "session-1", "alice", {"field": "name"},
        got_b.events[1].time,
    )
    # B answers; A's own events, had they come back, would have arrived before this one.
    await b.publish(AccountChanged("", "carol"))
    await eventually(lambda: got_a.events, what="A to get B's event")
    assert got_a.events == [AccountChanged(b.node_id, "carol", got_a.events[0].time)]
    assert b.last_lag >= 0.0


async def test_a_dropped_listener_catches_up_by_sequence(
    pg_cluster: PostgresCluster, pg_dsn: str, log_conn: Any, make_bus: Callable[..., Any]
) -> None:
    """Updates committed while B's listener is down reach B after it reconnects."""
    _a, _ = await make_bus()
    b, got_b = await make_bus()
    await _commit(log_conn, 1, "customer:1")
    await eventually(lambda: got_b.updates() == {"customer:1": 1}, what="the live signal")
    dbname = pg_dsn.rsplit("/", 1)[1]
    pg_cluster.psql(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS false')
    assert pg_cluster.terminate_backends(dbname, f"liveedit-bus-{b.node_id}") == 1
    await eventually(lambda: not b.listening, what="B to notice the drop")
    # Committed while nobody listens on B: the notifications are lost for B.
    await _commit(log_conn, 2, "customer:2")
    await _commit(log_conn, 3, "customer:1")
    await _commit(log_conn, 4, "customer:3")
    assert got_b.updates() == {"customer:1": 1}
    pg_cluster.psql(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS true')
    await eventually(lambda: b.listening, what="B to listen again")
    await eventually(
        lambda: got_b.updates() == {"customer:1": 3, "customer:2": 2, "customer:3": 4},
        what="B to catch up from the log",
    )
    assert got_b.resyncs == 2
    assert b.high_water == 4


async def test_the_bus_comes_back_after_postgres_crashes(
    pg_cluster: PostgresCluster, log_conn: Any, make_bus: Callable[..., Any]
) -> None:
    """After a Postgres crash and restart both nodes listen again and signals flow."""
    a, _ = await make_bus()
    b, got_b = await make_bus()
    pg_cluster.restart(crash=True)
    await eventually(lambda: a.listening and b.listening and b.connects == 2,
                     timeout=20, what="both listeners to reconnect")
    await a.publish(AccountChanged("", "dave"))
    await eventually(lambda: got_b.events, what="B to get A's event after the restart")
    assert got_b.events[-1].node == a.node_id
