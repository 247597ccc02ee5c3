"""The login throttle shared by nodes through Postgres."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from sync.server.errors import TooManyAttempts
from sync.server.storage.postgres.throttle import FORGET_AFTER, PostgresLoginThrottle
from sync.server.throttle import LOCK_AFTER_FAILURES


@pytest.fixture
async def pools(migrated_dsn: str) -> AsyncIterator[list[Any]]:
    """Two pools on one migrated database: two nodes."""
    made = [await asyncpg.create_pool(migrated_dsn, min_size=1, max_size=4) for _ in range(2)]
    yield made
    for pool in made:
        pool.terminate()


async def test_failures_on_different_nodes_lock_the_name_everywhere(pools: list[Any]) -> None:
    """Concurrent failures spread over two nodes all count; the lock holds on both."""
    one, two = (PostgresLoginThrottle(p) for p in pools)
    now = 1000.0
    await asyncio.gather(*(
        (one if i % 2 else two).failure("alice", now) for i in range(LOCK_AFTER_FAILURES)
    ))
    for node in (one, two):
        with pytest.raises(TooManyAttempts, match="try again in a moment") as refused:
            await node.check("alice", now + 0.5)
        assert refused.value.retry_after == pytest.approx(0.5)
    await two.check("alice", now + 1.0)  # 1 s after the fifth failure
    assert await one.failure("alice", now + 1.0) == LOCK_AFTER_FAILURES + 1
    with pytest.raises(TooManyAttempts, match="try again in 2 s"):
        await two.check("alice", now + 1.0)
    await one.check("bob", now)
    await two.success("alice")
    await one.check("alice", now + 1.0)
    assert await one.failure("alice", now + 2) == 1


async def test_old_unlocked_entries_are_forgotten(pools: list[Any]) -> None:
    """An entry is dropped a day after its last failure; a recent (locked) one stays."""
    throttle = PostgresLoginThrottle(pools[0])
    await throttle.failure("old", 0.0)
    for _ in range(LOCK_AFTER_FAILURES + 20):  # locked for the maximum
        await throttle.failure("locked", FORGET_AFTER + 10)
    assert await throttle.forget_old(FORGET_AFTER + 20) == 1
    with pytest.raises(TooManyAttempts):
        await throttle.check("locked", FORGET_AFTER + 20)
