"""The reference server over real sockets: sync, acks, fan-out, roles, sessions, limits."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from typing import Any

import httpx
import pytest
from pycrdt import Doc

from sync.protocol import document
from sync.protocol.errors import CloseCode, ErrorCode
from sync.protocol.messages import (
    Ack,
    DirectoryChanges,
    DirectoryPage,
    DirectorySubscribe,
    Error,
    Heartbeat,
    HeartbeatAck,
    Notification,
    NotificationKind,
    Notifications,
    Presence,
    PresenceChanged,
    ReadNotifications,
    RemoteUpdate,
    RenewToken,
    Subscribe,
    Subscribed,
    SyncStep1,
    SyncStep2,
    TokenRenewed,
    Update,
    customer_doc_id,
    encode,
)

from .conftest import ServerHandle, both_engines
from .wire import WireClient, eventually


def new_doc_id() -> str:
    """A fresh customer document id."""
    return customer_doc_id(str(uuid.uuid4()))


class Replica:
    """A client-side copy of one document that records its own updates."""

    def __init__(self) -> None:
        self.doc: Doc[Any] = document.new_document()
        self.updates: list[bytes] = []
        self.doc.observe(lambda event: self.updates.append(event.update))

    def set(self, **values: Any) -> bytes:
        """Set fields; returns the update to send."""
        document.set_fields(self.doc, values)
        return self.updates[-1]

    def apply(self, update: bytes) -> None:
        """Apply an update from the server."""
        self.doc.apply_update(update)

    def fields(self) -> dict[str, Any]:
        """Current field values."""
        return document.read_fields(self.doc)


async def join(client: WireClient, doc_id: str, replica: Replica | None = None) -> Replica:
    """Subscribe and do the two-way state-vector exchange (docs/protocol.md §5)."""
    replica = replica or Replica()
    await client.send(Subscribe((doc_id,)))
    await client.expect(Subscribed)
    await client.expect(SyncStep1, lambda m: m.doc == doc_id)
    await client.send(SyncStep1(doc_id, replica.doc.get_state()))
    step2 = await client.expect(SyncStep2, lambda m: m.doc == doc_id)
    replica.apply(step2.update)
    return replica


async def rep(server: ServerHandle, name: str, session_id: str | None = None) -> WireClient:
    """A connected, authenticated rep (the account is created if missing)."""
    from sync.server.auth import AuthService

    with AuthService(server.db_path) as auth:
        known = auth.get_user(name) is not None
    if not known:
        server.add_user(name)
    return await WireClient.connect(server.ws_url, server.token(name), session_id)


@both_engines
async def test_two_clients_converge_on_concurrent_edits(server: ServerHandle) -> None:
    """Concurrent sets of different and the same field converge to identical documents."""
    doc_id = new_doc_id()
    a, b = await rep(server, "alex"), await rep(server, "sam")
    ra, rb = await join(a, doc_id), await join(b, doc_id)
    await a.send(Update(doc_id, 1, ra.set(name="Ada", city="Paris")))
    await b.send(Update(doc_id, 1, rb.set(name="Bea", zip="75001")))
    await a.expect(Ack, lambda m: m.ref == 1)
    await b.expect(Ack, lambda m: m.ref == 1)
    rb.apply((await b.expect(RemoteUpdate)).update)
    ra.apply((await a.expect(RemoteUpdate)).update)
    assert ra.fields() == rb.fields()
    assert ra.fields()["city"] == "Paris" and ra.fields()["zip"] == "75001"
    assert ra.fields()["name"] in {"Ada", "Bea"}
    c = await rep(server, "kim")
    rc = await join(c, doc_id)
    assert rc.fields() == ra.fields()


@both_engines
async def test_writer_gets_no_echo_of_its_own_update(server: ServerHandle) -> None:
    """The session that wrote an update gets an Ack, never a RemoteUpdate of it."""
    doc_id = new_doc_id()
    a, b = await rep(server, "alex"), await rep(server, "sam")
    ra = await join(a, doc_id)
    await join(b, doc_id)
    await a.send(Update(doc_id, 7, ra.set(name="Echo")))
    ack = await a.expect(Ack, lambda m: m.ref == 7)
    remote = await b.expect(RemoteUpdate)
    assert remote.seq == ack.seq and remote.author == "alex"
    await a.send(Update(doc_id, 8, ra.set(city="Oslo")))
    await a.expect(Ack, lambda m: m.ref == 8)
    await b.expect(RemoteUpdate, lambda m: m.seq > ack.seq)
    assert a.received(RemoteUpdate) == []


async def test_update_that_adds_nothing_is_acked_but_not_logged_twice(
    server: ServerHandle,
) -> None:
    """Resending an already-applied update is acked with the same seq and logged once."""
    doc_id = new_doc_id()
    a = await rep(server, "alex")
    ra = await join(a, doc_id)
    update = ra.set(name="Once")
    await a.send(Update(doc_id, 1, update))
    first = await a.expect(Ack, lambda m: m.ref == 1)
    await a.send(Update(doc_id, 2, update))
    second = await a.expect(Ack, lambda m: m.ref == 2)
    assert second.seq == first.seq
    with sqlite3.connect(server.db_path) as conn:
        count = conn.execute("SELECT COUNT(*) FROM updates WHERE doc_id = ?", (doc_id,))
        assert count.fetchone()[0] == 1


@both_engines
async def test_update_with_missing_dependencies_is_refused(server: ServerHandle) -> None:
    """An update that builds on unknown changes gets missing_dependencies and no Ack."""
    doc_id = new_doc_id()
    a = await rep(server, "alex")
    ra = await join(a, doc_id)
    ra.set(name="first")  # never sent
    second = ra.set(name="second")
    await a.send(Update(doc_id, 5, second))
    error = await a.expect(Error, lambda m: m.ref == 5)
    assert error.code == ErrorCode.MISSING_DEPENDENCIES
    assert a.received(Ack) == []


async def test_invalid_update_bytes_get_an_error(server: ServerHandle) -> None:
    """Bytes that are not a pycrdt update are refused with invalid_update."""
    doc_id = new_doc_id()
    a = await rep(server, "alex")
    await join(a, doc_id)
    await a.send(Update(doc_id, 3, b"\xff\xff\xff"))
    error = await a.expect(Error, lambda m: m.ref == 3)
    assert error.code == ErrorCode.INVALID_UPDATE


@both_engines
async def test_customer_user_is_limited_to_its_own_account(server: ServerHandle) -> None:
    """A customer user may subscribe to its own document only; others get forbidden."""
    own, other = str(uuid.uuid4()), str(uuid.uuid4())
    server.add_user("carol", role="customer", customer_id=own)
    c = await WireClient.connect(server.ws_url, server.token("carol"))
    await c.send(Subscribe((customer_doc_id(other),)))
    error = await c.expect(Error)
    assert error.code == ErrorCode.FORBIDDEN and error.doc == customer_doc_id(other)
    await join(c, customer_doc_id(own))
    await c.send(Update(customer_doc_id(other), 1, Replica().set(name="x")))
    refused = await c.expect(Error, lambda m: m.ref == 1)
    assert refused.code == ErrorCode.NOT_SUBSCRIBED


async def test_unauthenticated_connection_is_closed_after_five_seconds(
    server: ServerHandle,
) -> None:
    """A connection that never authenticates is closed with 4001 within ~5 s."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    client = await WireClient.connect(server.ws_url)
    code, _ = await client.wait_closed(timeout=10)
    elapsed = loop.time() - started
    assert code == CloseCode.AUTH_TIMEOUT
    assert 4.5 <= elapsed <= 7.5


async def test_bad_token_is_refused(server: ServerHandle) -> None:
    """A forged token gets auth_failed and close code 4003."""
    client = await WireClient.connect(server.ws_url)
    from sync.protocol.connection import ClientProtocol

    protocol = ClientProtocol()
    protocol.start("not-a-token", "session-xyz", "tests")
    for frame in protocol.data_to_send():
        await client.send_raw(frame)
    error = await client.expect(Error)
    assert error.code == ErrorCode.AUTH_FAILED
    code, _ = await client.wait_closed()
    assert code == CloseCode.AUTH_FAILED


@both_engines
async def test_session_resumes_subscriptions_after_reconnect(server: ServerHandle) -> None:
    """Reconnecting with the same session id restores subscriptions without Subscribe."""
    doc_id = new_doc_id()
    a = await rep(server, "alex", session_id="resume-session-1")
    await join(a, doc_id)
    await a.close()
    b = await rep(server, "sam")
    rb = await join(b, doc_id)
    again = await rep(server, "alex", session_id="resume-session-1")
    assert again.welcome is not None and again.welcome.resumed
    assert doc_id in again.welcome.subscriptions
    await b.send(Update(doc_id, 1, rb.set(name="while you were away")))
    remote = await again.expect(RemoteUpdate)
    assert remote.doc == doc_id


async def test_other_user_cannot_take_over_a_session_id(server: ServerHandle) -> None:
    """A session id presented by a different user starts a fresh session."""
    doc_id = new_doc_id()
    a = await rep(server, "alex", session_id="shared-session-1")
    await join(a, doc_id)
    await a.close()
    b = await rep(server, "sam", session_id="shared-session-1")
    assert b.welcome is not None and not b.welcome.resumed
    assert b.welcome.subscriptions == ()


@both_engines
async def test_missed_notifications_are_replayed(server: ServerHandle) -> None:
    """Notifications made while a client was away are returned by ReadNotifications."""
    doc_id = new_doc_id()
    a = await rep(server, "alex", session_id="notif-session-1")
    await join(a, doc_id)
    await a.send(ReadNotifications(0))
    seen = await a.expect(Notifications)
    await a.close()
    b = await rep(server, "sam")
    rb = await join(b, doc_id)
    await b.send(Update(doc_id, 1, rb.set(name="John Smith", city="Washington DC")))
    await b.expect(Ack)
    a2 = await rep(server, "alex", session_id="notif-session-1")
    await a2.send(ReadNotifications(seen.latest))
    page = await a2.expect(Notifications)
    kinds = {(n.kind, n.actor) for n in page.items}
    assert (NotificationKind.CREATED, "sam") in kinds
    created = next(n for n in page.items if n.kind == NotificationKind.CREATED)
    assert created.title == "John Smith" and "city" in created.fields


@both_engines
async def test_live_notification_and_presence(server: ServerHandle) -> None:
    """Subscribers get live notifications and presence; presence goes on disconnect."""
    doc_id = new_doc_id()
    a, b = await rep(server, "alex"), await rep(server, "sam")
    ra = await join(a, doc_id)
    await join(b, doc_id)
    await a.send(Presence(doc_id, {"field": "city", "cursor": 3}))
    seen = await b.expect(PresenceChanged, lambda m: m.state is not None)
    assert seen.user == "alex" and seen.state == {"field": "city", "cursor": 3}
    await a.send(Update(doc_id, 1, ra.set(city="Rome")))
    note = await b.expect(Notification, lambda m: m.kind == NotificationKind.CREATED)
    assert note.actor == "alex"
    await a.close()
    gone = await b.expect(PresenceChanged, lambda m: m.state is None)
    assert gone.user == "alex"


@both_engines
async def test_http_patch_reaches_websocket_subscriber(server: ServerHandle) -> None:
    """A PATCH through the HTTP API arrives live; the X-Session-Id writer gets no echo."""
    doc_id = new_doc_id()
    cid = doc_id.partition(":")[2]
    a = await rep(server, "alex", session_id="http-writer-1")
    await join(a, doc_id)
    b = await rep(server, "sam")
    rb = await join(b, doc_id)
    token = server.token("alex")
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        created = await http.post(
            "/customers", json={"id": cid, "name": "John Smith", "address": {"city": "DC"}},
            headers={"Authorization": f"Bearer {token}", "X-Session-Id": "http-writer-1"},
        )
        assert created.status_code == 201, created.text
        patched = await http.patch(
            f"/customers/{cid}", json={"address": {"city": "Boston"}, "phone": None},
            headers={"Authorization": f"Bearer {token}", "X-Session-Id": "http-writer-1"},
        )
        assert patched.status_code == 200, patched.text
        assert patched.json()["address"]["city"] == "Boston"
    await eventually(lambda: len(b.received(RemoteUpdate)) >= 2)
    for message in b.received(RemoteUpdate):
        rb.apply(message.update)
    assert rb.fields()["city"] == "Boston" and rb.fields()["name"] == "John Smith"
    assert a.received(RemoteUpdate) == []


@both_engines
async def test_acked_update_survives_kill_9(server: ServerHandle) -> None:
    """After an Ack, SIGKILL the server and restart it: the update is there."""
    doc_id = new_doc_id()
    a = await rep(server, "alex")
    ra = await join(a, doc_id)
    refs = list(range(1, 51))
    for ref in refs:
        await a.send(Update(doc_id, ref, ra.set(name=f"v{ref}")))
    await a.expect(Ack, lambda m: m.ref == refs[-1])
    server.kill()
    server.restart()
    b = await rep(server, "sam")
    rb = await join(b, doc_id)
    assert rb.fields()["name"] == "v50"


async def test_malformed_and_oversized_frames_close_only_that_connection(
    server_factory: Any,
) -> None:
    """Garbage gets 4000, text frames 4000, oversized 1009; other clients keep working."""
    server = server_factory("--max-message-size", "65536")
    doc_id = new_doc_id()
    good = await rep(server, "alex")
    rgood = await join(good, doc_id)
    for payload, expected in [
        (b"\xc1garbage", CloseCode.BAD_MESSAGE),
        ("a text frame", CloseCode.BAD_MESSAGE),
        (encode(Update(doc_id, 1, b"x" * 70_000)), CloseCode.MESSAGE_TOO_BIG),
    ]:
        bad = await rep(server, "mallory")
        await bad.send_raw(payload)
        code, _ = await bad.wait_closed()
        assert code == expected, payload[:20]
    await good.send(Update(doc_id, 9, rgood.set(name="still here")))
    assert (await good.expect(Ack, lambda m: m.ref == 9)).seq > 0


async def test_message_before_authentication_is_refused(server: ServerHandle) -> None:
    """A Subscribe before Authenticate gets auth_required and close 4007."""
    client = await WireClient.connect(server.ws_url)
    await client.send(Subscribe((new_doc_id(),)))
    error = await client.expect(Error)
    assert error.code == ErrorCode.AUTH_REQUIRED
    code, _ = await client.wait_closed()
    assert code == CloseCode.PROTOCOL_VIOLATION


async def test_token_renewal_in_band(server_factory: Any) -> None:
    """RenewToken extends the connection; without it the server closes with 4005."""
    server = server_factory("--access-token-ttl", "2")
    server.add_user("alex")
    a = await WireClient.connect(server.ws_url, server.token("alex"))
    await a.send(RenewToken(server.token("alex")))
    renewed = await a.expect(TokenRenewed)
    assert a.welcome is not None and renewed.token_expires_at >= a.welcome.token_expires_at
    code, _ = await a.wait_closed(timeout=10)
    assert code == CloseCode.TOKEN_EXPIRED


@both_engines
async def test_directory_feed_since_cursor_then_live(server: ServerHandle) -> None:
    """DirectorySubscribe sends changes after the cursor, then live ones."""
    doc_id = new_doc_id()
    a = await rep(server, "alex")
    ra = await join(a, doc_id)
    await a.send(Update(doc_id, 1, ra.set(name="Dir One", city="Lyon")))
    ack = await a.expect(Ack)
    watcher = await rep(server, "sam")
    await watcher.send(DirectorySubscribe(0))
    page = await watcher.expect(DirectoryPage)
    assert [e.value("name") for e in page.entries()] == ["Dir One"] and page.cursor == ack.seq
    await a.send(Update(doc_id, 2, ra.set(city="Nice")))
    live = await watcher.expect(DirectoryChanges)
    assert live.entries[0].value("city") == "Nice" and live.cursor > ack.seq


async def test_a_version_2_client_gets_the_directory_pass_as_directory_changes(
    server: ServerHandle,
) -> None:
    """An app not yet upgraded (protocol 2) keeps working against this server: it
    negotiates 2 and gets the directory pass in the frames it knows (§9)."""
    doc_id = new_doc_id()
    a = await rep(server, "alex")
    ra = await join(a, doc_id)
    await a.send(Update(doc_id, 1, ra.set(name="Old Client", city="Lyon")))
    ack = await a.expect(Ack)
    await rep(server, "sam")
    old = await WireClient.connect(server.ws_url, server.token("sam"), versions=(2,))
    assert old.welcome is not None and old.welcome.version == 2
    await old.send(DirectorySubscribe(0))
    page = await old.expect(DirectoryChanges)
    assert [e.value("name") for e in page.entries] == ["Old Client"]
    await old.send(Heartbeat(1))  # answered after anything the server sent before it
    await old.expect(HeartbeatAck)
    assert page.cursor == ack.seq and not old.received(DirectoryPage)


@pytest.mark.parametrize("burst", [1000])
async def test_burst_of_updates_is_acked(server: ServerHandle, burst: int) -> None:
    """A burst of updates from one client is acked in order, each durably logged (those of
    one loop turn merged in one row, all acked with its number)."""
    doc_id = new_doc_id()
    a = await rep(server, "alex")
    ra = await join(a, doc_id)
    for ref in range(1, burst + 1):
        await a.send(Update(doc_id, ref, ra.set(name=f"n{ref}")))
    last = await a.expect(Ack, lambda m: m.ref == burst, timeout=30)
    acks = [*a.received(Ack), last]
    assert [m.ref for m in acks] == list(range(1, burst + 1))
    assert [m.seq for m in acks] == sorted(m.seq for m in acks)
    with sqlite3.connect(server.db_path) as conn:
        rows = conn.execute("SELECT seq, data FROM updates WHERE doc_id = ? ORDER BY seq",
                            (doc_id,)).fetchall()
    assert {m.seq for m in acks} <= {seq for seq, _ in rows}
    logged = Replica()
    for _, data in rows:
        logged.apply(data)
    assert logged.doc.get_state() == ra.doc.get_state()
    assert logged.fields()["name"] == f"n{burst}"
