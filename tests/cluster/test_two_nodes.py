"""Two real server nodes on one Postgres (and HAProxy in front where a client moves):
live fan-out across nodes, session resume after a node is killed, presence, revocation,
and the directory under concurrent edits (issue 12, §2)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import httpx
import pytest

from sync.protocol.errors import CloseCode
from sync.protocol.messages import (
    Ack,
    Heartbeat,
    HeartbeatAck,
    Notification,
    Notifications,
    Presence,
    PresenceChanged,
    ReadNotifications,
    RemoteUpdate,
    SyncStep1,
    SyncStep2,
    Update,
    customer_doc_id,
)
from sync.server.auth import AuthService
from tests.integration.conftest import ServerHandle, StartedServers
from tests.integration.test_server_sync import join
from tests.integration.wire import WireClient

from .haproxy import HAProxy
from .waiting import eventually, scaled


@pytest.fixture
def start_nodes(pg_dsn: str) -> Iterator[Callable[..., list[ServerHandle]]]:
    """Start ``count`` nodes on the test's database (extra CLI args for all); killed after."""
    servers = StartedServers()

    def start(count: int = 2, *extra: str) -> list[ServerHandle]:
        made = [servers.start(pg_dsn, ["--node-id", f"node{i + 1}", *extra])
                for i in range(count)]
        made[0].add_user("alex")
        made[0].add_user("sam")
        return made

    yield start
    servers.kill_all()


def new_doc() -> str:
    """A fresh customer document id."""
    return customer_doc_id(str(uuid.uuid4()))


@contextlib.asynccontextmanager
async def heartbeats(*clients: WireClient) -> AsyncIterator[None]:
    """Keep the clients' connections alive (short idle timeouts) while the block runs."""

    async def beat() -> None:
        nonce = 0
        while True:
            nonce += 1
            for client in clients:
                if not client.closed.done():
                    await client.send(Heartbeat(nonce))
            await asyncio.sleep(0.5)  # the client's own heartbeat period, not a wait

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_an_update_on_one_node_reaches_the_other_live_without_an_echo(
    start_nodes: Callable[..., list[ServerHandle]],
) -> None:
    """node1's acked update reaches node2's subscriber with the same number; the writer
    never gets its own change back, and the other way round too."""
    one, two = start_nodes()
    doc_id = new_doc()
    a = await WireClient.connect(one.ws_url, one.token("alex"))
    b = await WireClient.connect(two.ws_url, two.token("sam"))
    ra, rb = await join(a, doc_id), await join(b, doc_id)
    await a.send(Update(doc_id, 1, ra.set(name="From node 1")))
    ack = await a.expect(Ack, lambda m: m.ref == 1)
    remote = await b.expect(RemoteUpdate, lambda m: m.doc == doc_id)
    assert remote.seq == ack.seq and remote.author == "alex"
    rb.apply(remote.update)
    assert rb.fields()["name"] == "From node 1"
    await b.send(Update(doc_id, 1, rb.set(city="Lyon")))
    back = await a.expect(RemoteUpdate, lambda m: m.doc == doc_id)
    ra.apply(back.update)
    assert ra.fields()["city"] == "Lyon"
    for client in (a, b):  # a round trip: anything still on its way has arrived by then
        await client.send(Heartbeat(7))
        await client.expect(HeartbeatAck)
    assert [m.author for m in a.received(RemoteUpdate)] == []
    assert [m.author for m in b.received(RemoteUpdate)] == []


async def test_a_notification_made_on_one_node_reaches_the_other_live(
    start_nodes: Callable[..., list[ServerHandle]],
) -> None:
    """alex's edit on node1 makes a notification; sam, subscribed on node2, gets it live,
    numbered as stored, once; alex (the writer) gets none of his own."""
    one, two = start_nodes()
    doc_id = new_doc()
    a = await WireClient.connect(one.ws_url, one.token("alex"))
    b = await WireClient.connect(two.ws_url, two.token("sam"))
    ra = await join(a, doc_id)
    await join(b, doc_id)
    await a.send(Update(doc_id, 1, ra.set(name="Noticed on node 2")))
    await a.expect(Ack, lambda m: m.ref == 1)
    live = await b.expect(Notification, lambda m: m.doc == doc_id and m.actor == "alex")
    await b.send(ReadNotifications(0))
    stored = await b.expect(Notifications)
    assert [(n.seq, n.kind) for n in stored.items if n.actor == "alex"] == [
        (live.seq, live.kind)]
    for client in (a, b):  # a round trip: anything still on its way has arrived by then
        await client.send(Heartbeat(7))
        await client.expect(HeartbeatAck)
    assert [n for n in b.received(Notification) if n.actor == "alex"] == []  # not twice
    assert [n for n in a.received(Notification) if n.actor == "alex"] == []


async def test_a_client_of_a_killed_node_resumes_on_the_other_through_haproxy(
    start_nodes: Callable[..., list[ServerHandle]],
    haproxy_factory: Callable[[Sequence[tuple[str, int]]], HAProxy],
) -> None:
    """SIGKILL node1: its client comes back through HAProxy on node2 with its session
    resumed (no Subscribe), catches up what it missed, then gets updates live."""
    one, two = start_nodes()
    proxy = haproxy_factory([("127.0.0.1", one.port), ("127.0.0.1", two.port)])
    proxy.wait_for({"node1": "UP", "node2": "UP"}, timeout=scaled(20))
    proxy.admin("set server nodes/node2 state maint")  # the client lands on node1
    proxy.wait_for({"node2": "MAINT"})
    doc_id = new_doc()
    token = one.token("alex")
    a = await WireClient.connect(proxy.ws_url, token, session_id="moving-session-1")
    ra = await join(a, doc_id)
    await a.send(Update(doc_id, 1, ra.set(name="Before the crash")))
    await a.expect(Ack, lambda m: m.ref == 1)
    proxy.admin("set server nodes/node2 state ready")
    proxy.wait_for({"node2": "UP"})
    b = await WireClient.connect(two.ws_url, two.token("sam"))
    rb = await join(b, doc_id)
    assert rb.fields()["name"] == "Before the crash"

    one.kill()
    proxy.wait_for({"node1": "DOWN"}, timeout=scaled(20))
    await b.send(Update(doc_id, 1, rb.set(city="Missed while away")))
    await b.expect(Ack, lambda m: m.ref == 1)
    again = await WireClient.connect(proxy.ws_url, token, session_id="moving-session-1")
    assert again.welcome is not None and again.welcome.resumed
    assert doc_id in again.welcome.subscriptions
    await again.send(SyncStep1(doc_id, ra.doc.get_state()))  # catch up (protocol §3)
    step2 = await again.expect(SyncStep2, lambda m: m.doc == doc_id)
    ra.apply(step2.update)
    assert ra.fields()["city"] == "Missed while away"
    await b.send(Update(doc_id, 2, rb.set(city="Live again")))
    live = await again.expect(RemoteUpdate, lambda m: m.doc == doc_id)
    ra.apply(live.update)
    assert ra.fields()["city"] == "Live again"


async def test_presence_crosses_nodes_and_a_dead_nodes_presence_expires(
    start_nodes: Callable[..., list[ServerHandle]],
) -> None:
    """Presence set on node1 shows on node2; node1 killed, it goes within the presence
    timeout (--idle-timeout)."""
    one, two = start_nodes(2, "--idle-timeout", "3")
    doc_id = new_doc()
    a = await WireClient.connect(one.ws_url, one.token("alex"))
    b = await WireClient.connect(two.ws_url, two.token("sam"))
    async with heartbeats(a, b):
        await join(a, doc_id)
        await join(b, doc_id)
        await a.send(Presence(doc_id, {"field": "city"}))
        seen = await b.expect(PresenceChanged, lambda m: m.state is not None)
        assert seen.user == "alex" and seen.state == {"field": "city"}
        one.kill()
        gone = await b.expect(PresenceChanged, lambda m: m.state is None, timeout=8)
        assert gone.user == "alex" and gone.session_id == seen.session_id


async def test_disabling_a_user_closes_its_connections_on_every_node(
    start_nodes: Callable[..., list[ServerHandle]],
) -> None:
    """One account, a connection on each node: disabled, both close with access revoked
    within 2 s (the revocation check runs every second on every node)."""
    one, two = start_nodes()
    c1 = await WireClient.connect(one.ws_url, one.token("alex"))
    c2 = await WireClient.connect(two.ws_url, two.token("alex"))
    with AuthService(one.db_path) as auth:
        auth.set_disabled("alex", True)
    closed = await asyncio.gather(c1.wait_closed(timeout=3), c2.wait_closed(timeout=3))
    assert [code for code, _ in closed] == [CloseCode.ACCESS_REVOKED] * 2


async def test_the_directory_converges_under_concurrent_edits_on_two_nodes(
    start_nodes: Callable[..., list[ServerHandle]],
) -> None:
    """Both nodes edit different fields of one customer at once, round after round: the
    directory row ends with every field of the merged document, on both nodes."""
    one, two = start_nodes()
    doc_id = new_doc()
    a = await WireClient.connect(one.ws_url, one.token("alex"))
    b = await WireClient.connect(two.ws_url, two.token("sam"))
    ra, rb = await join(a, doc_id), await join(b, doc_id)
    for round_ in range(1, 6):
        await asyncio.gather(
            a.send(Update(doc_id, round_, ra.set(name=f"Name {round_}"))),
            b.send(Update(doc_id, round_, rb.set(city=f"City {round_}"))),
        )
        await a.expect(Ack, lambda m, r=round_: m.ref == r)
        await b.expect(Ack, lambda m, r=round_: m.ref == r)
    expected = {"name": "Name 5", "city": "City 5"}
    headers = {"Authorization": f"Bearer {one.token('alex')}"}

    def row_on(node: ServerHandle) -> dict[str, Any]:
        page = httpx.get(f"{node.http_url}/directory", timeout=scaled(10),
                         headers=headers).json()
        return next(e for e in page["entries"] if e["id"] == doc_id.partition(":")[2])

    def converged() -> bool:
        return all({k: row_on(n)[k] for k in expected} == expected for n in (one, two))

    await eventually(converged, timeout=10, what="the directory row of the merged document")
