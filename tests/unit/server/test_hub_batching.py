"""The hub's batch per loop turn (hub.py, "Batching"), on the real SQLite engine: one log
row, commit and fan-out frame for one session's updates to one document in one turn, each
acked with that row's number, in order; barriers and other writers submit it first."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sync.protocol import document
from sync.protocol.messages import RemoteUpdate, customer_doc_id, decode
from sync.server.auth import AuthService
from sync.server.config import ServerConfig
from sync.server.hub import MAX_BATCH, SyncHub
from sync.server.rooms import Room
from sync.server.storage import open_engine

DOC = customer_doc_id("00000000-0000-4000-8000-0000000000b1")


@dataclass
class Recorder:
    """A subscriber that keeps the frames it is sent."""

    session_id: str
    username: str = "someone"
    frames: list[bytes] = field(default_factory=list)

    def post(self, frame: bytes) -> None:
        """Keep the frame."""
        self.frames.append(frame)


@dataclass
class Setup:
    """A hub on a real SQLite file, one loaded room, a writer and a watcher subscribed."""

    hub: SyncHub
    room: Room
    db: Path
    writer: Recorder
    watcher: Recorder
    doc: Any
    acks: list[tuple[int, int | None]] = field(default_factory=list)

    def edit(self, ref: int, name: str, session: str = "writer") -> None:
        """The writer sets the name; its update is integrated and accepted (as ws.py does)."""
        before = self.doc.get_state()
        document.set_fields(self.doc, {"name": name})
        change = self.room.apply_update(self.doc.get_update(before), writer=None)
        assert change is not None
        self.hub.accept_change_then(
            self.room, change, "writer", session,
            lambda seq, _error: self.acks.append((ref, seq)))

    def rows(self) -> list[tuple[int, bytes]]:
        """The document's logged (seq, update) rows."""
        with sqlite3.connect(self.db) as conn:
            return conn.execute("SELECT seq, data FROM updates WHERE doc_id = ? ORDER BY seq",
                                (DOC,)).fetchall()

    async def acked(self, count: int) -> None:
        """Wait until ``count`` acks came."""
        async with asyncio.timeout(10):
            while len(self.acks) < count:
                await self.hub.barrier()


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    """The hub, with the document created by a first (unbatched) change."""
    db = tmp_path / "hub.db"
    auth = AuthService(db)  # the schema, as the server's start makes it
    engine = open_engine(db)
    hub = SyncHub(ServerConfig(db_path=db), engine, auth)
    await engine.start()
    room = await hub.rooms.get(DOC)
    writer, watcher = Recorder("writer"), Recorder("watcher")
    room.subscribers.update({"writer": writer, "watcher": watcher})
    made = Setup(hub, room, db, writer, watcher, document.new_document())
    made.edit(0, "created")
    await made.acked(1)
    watcher.frames.clear()
    made.acks.clear()
    try:
        yield made
    finally:
        await engine.close()


async def test_one_turn_is_one_row_one_frame_acked_in_order(setup: Setup) -> None:
    """Five updates in one turn: one log row holding them all, one fan-out frame to the
    watcher, none to the writer, each ref acked in order with the row's number."""
    rows = len(setup.rows())
    for ref in range(1, 6):
        setup.edit(ref, f"n{ref}")
    assert setup.acks == []  # nothing before the commit
    await setup.acked(5)
    logged = setup.rows()[rows:]
    assert len(logged) == 1
    assert setup.acks == [(ref, logged[0][0]) for ref in range(1, 6)]
    frames = [decode(f) for f in setup.watcher.frames if isinstance(decode(f), RemoteUpdate)]
    assert len(frames) == 1 and setup.writer.frames == []
    replica = document.new_document()
    for _, data in setup.rows():
        replica.apply_update(data)
    assert document.read_field(replica, "name") == "n5"
    assert setup.hub.stats["updates"] == 6


async def test_a_barrier_during_a_pending_batch_commits_it_first(setup: Setup) -> None:
    """A write barrier in the same turn as the batch resolves only after the batch is
    committed and acked; ``durable`` answers at least the batch's number."""
    setup.edit(1, "a")
    setup.edit(2, "b")
    await setup.hub.barrier()
    assert [ref for ref, _ in setup.acks] == [1, 2]
    setup.edit(3, "c")
    durable = await setup.hub.durable(setup.room)
    assert setup.acks[-1] == (3, durable) and setup.rows()[-1][0] == durable


async def test_another_session_writing_submits_the_pending_batch_first(setup: Setup) -> None:
    """A change of another session to the document in the same turn is logged after the
    pending batch: the log keeps the order of integration, each session gets its number."""
    setup.edit(1, "from writer")
    setup.edit(2, "from other", session="other")
    await setup.acked(2)
    first, second = setup.acks
    assert first[0] == 1 and second[0] == 2 and first[1] is not None and second[1] is not None
    assert first[1] < second[1]


async def test_a_batch_never_exceeds_max_batch(setup: Setup) -> None:
    """More than MAX_BATCH updates in one turn become several rows, acked in order."""
    rows = len(setup.rows())
    for ref in range(1, MAX_BATCH + 3):
        setup.edit(ref, f"n{ref}")
    await setup.acked(MAX_BATCH + 2)
    assert len(setup.rows()) - rows == 2
    assert [ref for ref, _ in setup.acks] == list(range(1, MAX_BATCH + 3))
