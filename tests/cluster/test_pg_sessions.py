"""Sessions on Postgres: resume on any node, never another user's, expiry."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from sync.server.storage.postgres import sessions

GRACE = 300.0


@pytest.fixture
async def pool(migrated_dsn: str) -> AsyncIterator[Any]:
    """A pool on a migrated database."""
    made = await asyncpg.create_pool(migrated_dsn, min_size=2, max_size=4)
    yield made
    made.terminate()


async def test_a_session_resumes_on_another_node_with_its_subscriptions(pool: Any) -> None:
    """Node 2 resumes node 1's session (subscriptions kept, node 1 named); others can't."""
    async with pool.acquire() as conn:
        fresh = await sessions.claim(conn, "s-1", "alice", "node1", now=0.0, grace=GRACE)
        assert (fresh.resumed, fresh.subscriptions) == (False, frozenset())
        await sessions.save_subscriptions(conn, "s-1", ["customer:b", "customer:a"], True,
                                          now=1.0)
        # node1 died without detaching: the client comes back through node2.
        moved = await sessions.claim(conn, "s-1", "alice", "node2", now=2.0, grace=GRACE)
        assert moved.resumed and moved.directory and moved.previous_node == "node1"
        assert moved.subscriptions == {"customer:a", "customer:b"}
        assert not await sessions.detach(conn, "s-1", "node1", now=3.0)  # it moved on
        assert await sessions.detach(conn, "s-1", "node2", now=3.0)
        back = await sessions.claim(conn, "s-1", "alice", "node1", now=3.0 + GRACE,
                                    grace=GRACE)
        assert back.resumed and back.previous_node is None
        thief = await sessions.claim(conn, "s-1", "mallory", "node2", now=4.0 + GRACE,
                                     grace=GRACE)
        assert (thief.resumed, thief.subscriptions) == (False, frozenset())


async def test_expired_sessions_start_fresh_and_are_forgotten(pool: Any) -> None:
    """Past the grace period a session is fresh again; expire() deletes detached ones."""
    async with pool.acquire() as conn:
        await sessions.claim(conn, "s-1", "alice", "node1", now=0.0, grace=GRACE)
        await sessions.save_subscriptions(conn, "s-1", ["customer:a"], False, now=0.0)
        await sessions.detach(conn, "s-1", "node1", now=1.0)
        late = await sessions.claim(conn, "s-1", "alice", "node2", now=2.0 + GRACE,
                                    grace=GRACE)
        assert (late.resumed, late.subscriptions) == (False, frozenset())
        await sessions.claim(conn, "s-2", "bob", "node1", now=0.0, grace=GRACE)
        await sessions.detach(conn, "s-2", "node1", now=1.0)
        assert await sessions.expire(conn, now=2.0 + GRACE, grace=GRACE) == 1
        assert await conn.fetchval("SELECT count(*) FROM sessions") == 1


async def test_two_nodes_claiming_at_once_take_turns(pool: Any) -> None:
    """Concurrent claims of one session: both resume it, and one names the other."""
    async with pool.acquire() as conn:
        await sessions.claim(conn, "s-1", "alice", "node0", now=0.0, grace=GRACE)

    async def claim(node: str) -> sessions.SessionRecord:
        async with pool.acquire() as conn:
            return await sessions.claim(conn, "s-1", "alice", node, now=1.0, grace=GRACE)

    one, two = await asyncio.gather(claim("node1"), claim("node2"))
    assert one.resumed and two.resumed
    assert sorted([one.previous_node, two.previous_node]) in (
        ["node0", "node1"], ["node0", "node2"])
