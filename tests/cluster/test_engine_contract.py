"""The storage contract, held by both engines: SQLite (a file) and Postgres (real cluster)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sync.protocol.messages import Notification, NotificationKind
from sync.server.storage import open_engine
from sync.server.storage.base import Committed, Engine
from sync.server.storage.records import Commit, DirectoryRow, LogEntry


@pytest.fixture(params=["sqlite", "postgres"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Engine]:
    """A started engine of each kind on a new database."""
    location: Path | str = tmp_path / "server.db"
    if request.param == "postgres":
        location = request.getfixturevalue("pg_dsn")
    made = open_engine(location, max_batch=4)
    await made.start()
    yield made
    await made.close()


async def commit(engine: Engine, doc: str, n: int, *, name: str | None = None,
                 note: bool = False, snapshot: bytes | None = None) -> Committed:
    """Submit one change as the hub does: numbered first where the engine says so."""
    cid = doc.split(":")[1]
    seq = 0 if engine.capabilities.numbers_at_commit else engine.next_seq()
    notes: list[Notification] = []
    if note:
        number = 0 if engine.capabilities.numbers_at_commit else engine.next_notification_seq()
        notes.append(Notification(number, doc, NotificationKind.UPDATED, "alice", float(n),
                                  ("name",), name))
    row = None
    if name is not None:
        row = DirectoryRow.of(cid, {"name": name, "city": "Boston"}, updated_at=float(n),
                              deleted=False, cursor=seq)
    change = Commit(
        entry=LogEntry(seq, doc, "alice", "session-1", float(n), ("fields.name",),
                       f"u{n}".encode()),
        directory=row, notifications=notes, expires_at=1000.0 + n,
        snapshot=(doc, seq, snapshot) if snapshot is not None else None,
    )
    return await engine.submit(change)


async def test_changes_are_numbered_in_order_and_load_back(engine: Engine) -> None:
    """Numbers 1, 2, 3…; a document loads from its snapshot; history newest first."""
    results = [await commit(engine, "customer:a", 1), await commit(engine, "customer:b", 2),
               await commit(engine, "customer:a", 3, snapshot=b"snap"),
               await commit(engine, "customer:a", 4)]
    assert [r.seq for r in results] == [1, 2, 3, 4]
    assert (await engine.barrier()).seq is None
    assert await engine.last_seq() == 4
    assert await engine.load_document("customer:a") == ([b"snap", b"u4"], 4)
    assert await engine.updates_until("customer:a", 3) == [b"u1", b"u3"]
    history = await engine.history("customer:a", limit=2)
    assert [(e.seq, e.author, e.changes) for e in history] == [
        (4, "alice", ("fields.name",)), (3, "alice", ("fields.name",))]
    assert [e.seq for e in await engine.history("customer:a", before=3)] == [1]


async def test_submit_then_calls_back_in_order_once_committed(engine: Engine) -> None:
    """submit_then (the hub's path, no future per change) reports each change's number in
    submit order once it is committed: what a later read sees."""
    outcomes: list[tuple[int | None, BaseException | None]] = []
    for n in range(1, 4):
        seq = 0 if engine.capabilities.numbers_at_commit else engine.next_seq()
        engine.submit_then(
            Commit(entry=LogEntry(seq, "customer:t", "alice", None, float(n), ("notes",),
                                  f"t{n}".encode())),
            lambda done, error: outcomes.append((None if done is None else done.seq, error)))
    await engine.barrier()  # submitted after them: they are committed and reported first
    assert outcomes == [(1, None), (2, None), (3, None)]
    assert await engine.load_document("customer:t") == ([b"t1", b"t2", b"t3"], 3)


async def test_directory_feed_and_search_agree(engine: Engine) -> None:
    """The directory follows the last change of each customer; search by word prefixes."""
    await commit(engine, "customer:c1", 1, name="Sam Carter")
    await commit(engine, "customer:c2", 2, name="Ada Lovelace")
    await commit(engine, "customer:c1", 3, name="Samuel Carter")
    feed = await engine.directory_since(0, 10)
    assert [(r.customer_id, r.cursor, r.fields["name"]) for r in feed] == [
        ("c2", 2, "Ada Lovelace"), ("c1", 3, "Samuel Carter")]
    assert [r.customer_id for r in await engine.directory_since(2, 10)] == ["c1"]
    assert await engine.directory_since(0, 10, customer_id="c9") == []
    found = await engine.search("sam bos", 10)
    assert [r.fields["name"] for r in found] == ["Samuel Carter"]
    assert [r.fields["name"] for r in await engine.search("", 10)] == [
        "Ada Lovelace", "Samuel Carter"]
    row = await engine.directory_row("c2")
    assert row is not None and dataclasses.replace(row, updated_at=0) == DirectoryRow.of(
        "c2", {"name": "Ada Lovelace", "city": "Boston"}, updated_at=0, deleted=False,
        cursor=2)


async def test_notifications_replay_and_expire(engine: Engine) -> None:
    """Notifications are numbered in commit order, replay per document, and expire."""
    first = await commit(engine, "customer:a", 1, name="A", note=True)
    await commit(engine, "customer:b", 2, name="B", note=True)
    third = await commit(engine, "customer:a", 3, name="A2", note=True)
    numbers = [n.seq for r in (first, third) for n in r.notifications]
    assert numbers == [1, 3]
    replay = await engine.notifications_since(1, ["customer:a"], 10, now=0.0)
    assert [(n.seq, n.title) for n in replay] == [(3, "A2")]
    assert await engine.notifications_since(0, [], 10, now=0.0) == []
    assert await engine.purge_notifications(now=1002.5) == 2
    assert [n.seq for n in await engine.notifications_since(0, None, 10, now=0.0)] == [3]
