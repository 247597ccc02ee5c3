"""A node whose link to Postgres goes silent (no reset: a partition) notices in seconds.

Through a TCP relay that stops relaying (tests/faults/proxy.py): the readiness probe says
"down" within its time limit instead of waiting on the link (it used to wait for as long as
TCP would, so the node was never marked down), a read fails within the stall limit, and
once the link is back both work again. The writer's side is in test_pg_writer.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from sync.server.errors import DatabaseError
from sync.server.storage.postgres import engine as engine_module
from sync.server.storage.postgres.engine import PROBE_TIMEOUT, PostgresEngine
from tests.faults.proxy import FaultProxy

from .pg import PostgresCluster


@pytest.fixture
async def relay(pg_cluster: PostgresCluster) -> AsyncIterator[FaultProxy]:
    """A relay to the test cluster, healed and stopped after the test."""
    proxy = FaultProxy(pg_cluster.port)
    await proxy.start()
    yield proxy
    proxy.heal()
    await proxy.stop()


async def test_the_probe_and_reads_give_up_on_a_silent_link(
    migrated_dsn: str, pg_cluster: PostgresCluster, relay: FaultProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A read cut by its caller's own timeout (as the bus's catch-up is) ends on time; the
    probe says down within its limit; a read fails within the stall limit; all back after."""
    engine = PostgresEngine(migrated_dsn.replace(f":{pg_cluster.port}/", f":{relay.port}/"),
                            pool_size=2)
    await engine.start()
    loop = asyncio.get_running_loop()
    try:
        assert await engine.check() is None
        assert await engine.load_document("customer:x") == ([], 0)  # a pooled connection
        relay.blackhole(True)
        started = loop.time()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1.0):
                await engine.load_document("customer:x")
        assert loop.time() - started < 5  # giving the connection back did not wait on it
        started = loop.time()
        reason = await asyncio.wait_for(engine.check(), 15)
        assert reason is not None and "cannot be reached" in reason
        assert loop.time() - started < PROBE_TIMEOUT + 3
        assert engine.failed == reason
        monkeypatch.setattr(engine_module, "STALL_TIMEOUT", 1.0)
        started = loop.time()
        with pytest.raises(DatabaseError, match="could not read"):
            await asyncio.wait_for(engine.load_document("customer:x"), 15)
        assert loop.time() - started < 10
        relay.heal()
        assert await asyncio.wait_for(engine.check(), 15) is None
        assert await asyncio.wait_for(engine.load_document("customer:x"), 15) == ([], 0)
    finally:
        relay.heal()
        await asyncio.wait_for(engine.close(), 15)
