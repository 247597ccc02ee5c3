"""Documents and notifications on Postgres: snapshots, loading, history, TTL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from sync.protocol.messages import Notification, NotificationKind
from sync.server.storage.postgres import records
from sync.server.storage.postgres.log import append_updates


@pytest.fixture
async def conn(migrated_dsn: str) -> AsyncIterator[Any]:
    """A connection to a migrated test database."""
    connection = await asyncpg.connect(migrated_dsn)
    yield connection
    await connection.close()


async def _append(conn: Any, doc_id: str, data: bytes, author: str = "alice") -> int:
    async with conn.transaction():
        return await append_updates(conn, [(doc_id, author, None, 10.0, '["notes"]', data)])


async def test_a_document_loads_from_its_snapshot_and_later_updates(conn: Any) -> None:
    """Loading reads the snapshot then the updates after it; history is newest first."""
    for data in (b"u1", b"u2", b"u3"):
        await _append(conn, "customer:a", data)
    await _append(conn, "customer:b", b"other")
    async with conn.transaction():
        await records.put_snapshot(conn, "customer:a", 3, b"snap-3")
        await records.put_snapshot(conn, "customer:a", 2, b"older")  # never replaces
    await _append(conn, "customer:a", b"u5", author="bob")
    assert await records.load_document(conn, "customer:a") == ([b"snap-3", b"u5"], 5)
    assert await records.load_document(conn, "customer:none") == ([], 0)
    assert await records.updates_until(conn, "customer:a", 2) == [b"u1", b"u2"]
    versions = await records.history(conn, "customer:a", limit=2)
    assert [(v[0], v[2], v[5]) for v in versions] == [(5, "bob", ("notes",)),
                                                      (3, "alice", ("notes",))]
    assert [v[0] for v in await records.history(conn, "customer:a", before=3)] == [2, 1]


async def test_notifications_are_numbered_at_commit_and_expire(conn: Any) -> None:
    """Stored notifications get consecutive numbers, replay per document, and expire."""
    def note(doc: str, kind: NotificationKind) -> Notification:
        return Notification(0, doc, kind, "alice", 5.0, ("name",), "Ada")

    async with conn.transaction():
        first = await records.append_notifications(
            conn, [note("customer:a", NotificationKind.CREATED),
                   note("customer:b", NotificationKind.UPDATED)], expires_at=100.0,
        )
    async with conn.transaction():
        later = await records.append_notifications(
            conn, [note("customer:a", NotificationKind.UPDATED)], expires_at=200.0,
        )
    assert [n.seq for n in first + later] == [1, 2, 3]
    assert await records.notifications_since(conn, 0, None, 10, now=50.0) == first + later
    only_a = await records.notifications_since(conn, 1, ["customer:a"], 10, now=50.0)
    assert only_a == later
    assert await records.notifications_since(conn, 0, [], 10, now=50.0) == []
    assert await records.notifications_since(conn, 0, None, 10, now=150.0) == later
    assert await records.purge_notifications(conn, now=150.0) == 2
    assert await records.notifications_since(conn, 0, None, 10, now=0.0) == later
