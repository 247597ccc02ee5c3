"""A node's directory rewrites on Postgres (cluster.py): the link of node A driven step by
step against the real engine, with node B's commits written by a second real engine on the
same database, so an interleaving seen once in CI is replayed every run."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from sync.protocol.messages import customer_doc_id, customer_id_of
from sync.server.auth import AuthService
from sync.server.cluster import ClusterLink
from sync.server.config import ServerConfig
from sync.server.hub import SyncHub
from sync.server.rooms import Room
from sync.server.storage import open_engine
from sync.server.storage.base import Engine
from sync.server.storage.records import Commit, LogEntry
from sync.server.store import DirectoryRow
from tests.integration.test_server_sync import Replica

from .waiting import eventually


@dataclass
class NodeA:
    """Node A's hub and cluster link (its bus never started: the test integrates)."""

    hub: SyncHub
    link: ClusterLink


@pytest.fixture
async def engines(migrated_dsn: str) -> AsyncIterator[tuple[NodeA, Engine]]:
    """Node A (hub, link, engine) and node B's engine, on one migrated database."""
    engine_a = open_engine(migrated_dsn, node_id="node-a")
    engine_b = open_engine(migrated_dsn, node_id="node-b")
    await engine_a.start()
    await engine_b.start()
    auth = AuthService(migrated_dsn)
    hub = SyncHub(ServerConfig(db_path=migrated_dsn), engine_a, auth)
    link = ClusterLink(hub, engine_a.open_bus())
    hub.cluster = link
    try:
        yield NodeA(hub, link), engine_b
    finally:
        await link.close()
        await engine_a.close()
        await engine_b.close()
        auth.close()


async def commit_on_b(engine: Engine, replica: Replica, doc_id: str, **values: str) -> int:
    """Node B accepts a change: logged with the row computed from B's own document."""
    update = replica.set(**values)
    row = DirectoryRow.of(customer_id_of(doc_id), replica.fields(), updated_at=time.time(),
                          deleted=False, cursor=0)
    entry = LogEntry(0, doc_id, "sam", "session-b", time.time(), tuple(values), update)
    seq = (await engine.submit(Commit(entry=entry, directory=row))).seq
    assert seq is not None
    return seq


async def commit_on_a(node: NodeA, room: Room, replica: Replica, **values: str) -> int:
    """Node A accepts a change as its hub does: applied to the room, the row computed from
    the room, the link told it is submitted and then settled."""
    update = replica.set(**values)
    assert room.apply_update(update) is not None
    row = node.hub.directory_row(room)
    entry = LogEntry(0, room.doc_id, "alex", "session-a", time.time(), tuple(values), update)
    node.link.submitted(room.doc_id)
    seq = (await node.hub.engine.submit(Commit(entry=entry, directory=row))).seq
    node.link.settled(room.doc_id, seq)
    assert seq is not None
    return seq


async def test_a_rewrite_numbered_after_a_change_it_lacks_is_written_again(
    engines: tuple[NodeA, Engine],
) -> None:
    """B commits city 1; A commits name 1 (its row lacks city 1); B commits city 2. A reads
    only city 1 and rewrites its row: under a cursor after city 2, without city 2. When A
    then integrates city 2 the rewrite is the row that lacks it, so A writes it again: the
    directory ends with both fields' last values. (Before the fix, A judged only its update
    numbers, and the stale rewrite stayed.)"""
    node, engine_b = engines
    doc_id = customer_doc_id(str(uuid.uuid4()))
    room = await node.hub.rooms.get(doc_id)
    on_b = Replica()
    b1 = await commit_on_b(engine_b, on_b, doc_id, city="City 1")
    a1 = await commit_on_a(node, room, Replica(), name="Name 1")
    b2 = await commit_on_b(engine_b, on_b, doc_id, city="City 2")
    assert b1 < a1 < b2

    logged = {e.seq: e for e in await node.hub.engine.updates_after(doc_id, 0)}
    await node.link._integrate(room, [logged[b1]])  # read before city 2 was committed
    row = await node.hub.engine.directory_row(customer_id_of(doc_id))
    assert row is not None and row.cursor > b2
    assert (row.fields["name"], row.fields["city"]) == ("Name 1", "City 1")

    await node.link._integrate(room, [logged[b2]])
    row = await node.hub.engine.directory_row(customer_id_of(doc_id))
    assert row is not None
    assert (row.fields["name"], row.fields["city"]) == ("Name 1", "City 2")


async def test_a_room_whose_row_lacks_an_earlier_change_is_not_let_go_before_rewriting(
    engines: tuple[NodeA, Engine],
) -> None:
    """B commits city 1; A commits name 1 (its row lacks city 1) and, before A has read
    city 1, nobody uses the room any more. Evicting it now would leave A's row, the
    newest, without city 1 for good: the room stays until a catch-up has read past A's row
    (and A wrote the row again), and only then goes."""
    node, engine_b = engines
    rooms = node.hub.rooms
    doc_id = customer_doc_id(str(uuid.uuid4()))
    room = await rooms.get(doc_id)
    b1 = await commit_on_b(engine_b, Replica(), doc_id, city="City 1")
    a1 = await commit_on_a(node, room, Replica(), name="Name 1")
    assert b1 < a1
    rooms.durable_seq = max(rooms.durable_seq, a1)  # as the sweeper's write barrier would
    long_after = time.monotonic() + 3600

    assert rooms.evict_idle(long_after, idle_after=0) == 0
    await eventually(lambda: rooms.evict_idle(long_after, idle_after=0) == 1,
                     what="the room to be let go after its catch-up")
    row = await node.hub.engine.directory_row(customer_id_of(doc_id))
    assert row is not None and row.cursor > a1
    assert (row.fields["name"], row.fields["city"]) == ("Name 1", "City 1")


async def test_a_room_this_node_never_wrote_is_let_go_at_once(
    engines: tuple[NodeA, Engine],
) -> None:
    """Only rooms whose row this node wrote wait for a catch-up: one it only read goes on
    the first sweep that finds it idle, as on a single node."""
    node, engine_b = engines
    rooms = node.hub.rooms
    doc_id = customer_doc_id(str(uuid.uuid4()))
    await commit_on_b(engine_b, Replica(), doc_id, city="City 1")
    await rooms.get(doc_id)
    assert rooms.evict_idle(time.monotonic() + 3600, idle_after=0) == 1
