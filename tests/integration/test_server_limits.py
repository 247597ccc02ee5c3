"""Server limits over real sockets: admission control (--max-connections,
--max-authenticating: ``server_busy`` with ``retry_after``, close 1013) and the client
honouring it; the 32-message queue before Welcome; updates with missing dependencies
refused without being kept, on /ws and /yjs (docs/protocol.md §7, §8, §10)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from typing import Any

import websockets
from pycrdt import Doc, Text
from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

from sync.client import ClientConnection, ConnectionState, Status
from sync.protocol import document, yjs
from sync.protocol.errors import CloseCode, ErrorCode
from sync.protocol.messages import (
    PROTOCOL_VERSION,
    Ack,
    Authenticate,
    Error,
    Heartbeat,
    HeartbeatAck,
    Message,
    SyncStep1,
    SyncStep2,
    Update,
    Welcome,
    decode,
    encode,
)

from .conftest import ServerHandle, scaled
from .test_server_sync import Replica, join, new_doc_id, rep
from .test_yjs_endpoint import YClient, new_customer
from .wire import WireClient, eventually


class RawWebSocket:
    """A WebSocket client on a plain socket (websockets' sans-I/O protocol), to put many
    frames on the wire in one write, as a TCP segment carries them."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 protocol: ClientProtocol) -> None:
        self.reader, self.writer, self.protocol = reader, writer, protocol
        self.events: list[Any] = []

    @classmethod
    async def connect(cls, url: str) -> RawWebSocket:
        uri = parse_uri(url)
        protocol = ClientProtocol(uri, max_size=None)
        reader, writer = await asyncio.open_connection(uri.host, uri.port)
        protocol.send_request(protocol.connect())
        writer.write(b"".join(protocol.data_to_send()))
        self = cls(reader, writer, protocol)
        while not self.events:
            await self._read()
        response = self.events.pop(0)
        assert isinstance(response, Response) and response.status_code == 101
        return self

    async def _read(self) -> bool:
        data = await asyncio.wait_for(self.reader.read(65536), scaled(10))
        if data:
            self.protocol.receive_data(data)
        else:
            self.protocol.receive_eof()
        self.writer.write(b"".join(self.protocol.data_to_send()))
        self.events.extend(self.protocol.events_received())
        return bool(data)

    async def send_in_one_write(self, frames: list[bytes]) -> None:
        for frame in frames:
            self.protocol.send_binary(frame)
        self.writer.write(b"".join(self.protocol.data_to_send()))
        await self.writer.drain()

    async def messages_until_close(self) -> tuple[list[Message], int | None]:
        """Every message received, and the close code, once the server closed."""
        messages: list[Message] = []
        while True:
            while self.events:
                event = self.events.pop(0)
                if isinstance(event, Frame) and event.opcode is Opcode.BINARY:
                    messages.append(decode(event.data))
                elif isinstance(event, Frame) and event.opcode is Opcode.CLOSE:
                    return messages, Close.parse(event.data).code
            if not await self._read():
                return messages, None

    async def messages(self, count: int) -> list[Message]:
        """The next ``count`` messages (the connection stays open)."""
        messages: list[Message] = []
        while len(messages) < count:
            while self.events and len(messages) < count:
                event = self.events.pop(0)
                assert isinstance(event, Frame) and event.opcode is Opcode.BINARY, event
                messages.append(decode(event.data))
            if len(messages) < count:
                assert await self._read()
        return messages

    def close(self) -> None:
        self.writer.close()


def pipelined(token: str, session_id: str, heartbeats: int) -> list[bytes]:
    """Authenticate followed at once by ``heartbeats`` Heartbeats."""
    frames = [encode(Authenticate((PROTOCOL_VERSION,), token, session_id, "tests"))]
    return frames + [encode(Heartbeat(n)) for n in range(heartbeats)]


# --- messages before Welcome ----------------------------------------------------------------


async def test_the_33rd_message_before_welcome_is_rate_limited(server: ServerHandle) -> None:
    """Authenticate plus 33 Heartbeats in one TCP write: the token is checked in a worker
    thread while they arrive, 32 are held, the 33rd gets Error(rate_limited) and 4008."""
    server.add_user("alex")
    token = server.token("alex")
    raw = await RawWebSocket.connect(server.ws_url)
    await raw.send_in_one_write(pipelined(token, "pipelined-33", 33))
    messages, code = await raw.messages_until_close()
    assert code == CloseCode.RATE_LIMITED
    assert [type(m) for m in messages] == [Error]
    assert messages[0].code is ErrorCode.RATE_LIMITED  # type: ignore[attr-defined]
    assert "more than 32 messages" in messages[0].message  # type: ignore[attr-defined]
    raw.close()


async def test_32_messages_before_welcome_are_held_and_answered_in_order(
    server: ServerHandle,
) -> None:
    """Exactly the limit in one write: Welcome, then the 32 answers in order."""
    server.add_user("alex")
    token = server.token("alex")
    raw = await RawWebSocket.connect(server.ws_url)
    await raw.send_in_one_write(pipelined(token, "pipelined-32", 32))
    first, *acks = await raw.messages(33)
    assert isinstance(first, Welcome)
    assert [m.nonce for m in acks if isinstance(m, HeartbeatAck)] == list(range(32))
    raw.close()


# --- admission control ----------------------------------------------------------------------


async def busy_refusal(client: WireClient) -> float:
    """The refused connection's retry_after, after checking Error(server_busy) + 1013."""
    code, _ = await client.wait_closed()
    assert code == CloseCode.TRY_AGAIN_LATER
    (error,) = client.received(Error)
    assert error.code is ErrorCode.SERVER_BUSY and error.retry_after is not None
    assert not client.received(Welcome)
    return error.retry_after


async def test_connections_past_max_connections_are_told_when_to_retry(
    server_factory: Any,
) -> None:
    """60 authenticated connections held with --max-connections 60: 30 more are refused at
    once with server_busy, a jittered retry_after in [S, 2 S] and 1013; once some leave,
    new ones get in."""
    server = server_factory("--max-connections", "60", "--busy-retry-after", "1.5")
    server.add_user("alex")
    token = server.token("alex")
    held = await asyncio.gather(*(WireClient.connect(server.ws_url, token) for _ in range(60)))
    refused = await asyncio.gather(*(WireClient.connect(server.ws_url) for _ in range(30)))
    waits = await asyncio.gather(*(busy_refusal(c) for c in refused))
    assert all(1.5 <= w <= 3.0 for w in waits) and len(set(waits)) > 1, waits  # spread out
    await eventually(lambda: any("server busy: refused" in line for line in server.output))
    for client in held[:5]:
        await client.close()
    again = await admitted(server, token)
    assert again.welcome is not None
    for client in held[5:]:
        assert not client.closed.done()  # the held ones were never disturbed


async def admitted(server: ServerHandle, token: str, within: float = 10.0) -> WireClient:
    """Connect until the server admits us (a refusal closes before Welcome)."""
    deadline = time.monotonic() + scaled(within)
    while True:
        try:
            return await WireClient.connect(server.ws_url, token)
        except AssertionError:  # closed with 1013 while waiting for Welcome
            assert time.monotonic() < deadline, "never admitted"


async def test_a_storm_past_max_authenticating_is_refused_then_admitted(
    server_factory: Any,
) -> None:
    """80 connections at once, none authenticated yet, with --max-authenticating 30: 30
    are admitted, 50 refused (server_busy, 1013). The 30 then authenticate, and new
    connections are admitted again."""
    server = server_factory("--max-authenticating", "30")
    server.add_user("alex")
    token = server.token("alex")
    storm = await asyncio.gather(*(WireClient.connect(server.ws_url) for _ in range(80)))
    # Every admission was decided at connect time; now all try to authenticate.

    async def outcome(n: int, client: WireClient) -> str:
        with contextlib.suppress(websockets.ConnectionClosed):  # refused already
            await client.send_raw(pipelined(token, f"storm-{n:04d}-session", 0)[0])
        found = await eventually(lambda: client.received(Welcome) or client.closed.done())
        if found is True:
            await busy_refusal(client)
            return "refused"
        return "admitted"

    outcomes = await asyncio.gather(*(outcome(n, c) for n, c in enumerate(storm)))
    assert outcomes.count("admitted") == 30 and outcomes.count("refused") == 50
    late = await WireClient.connect(server.ws_url, token)
    assert late.welcome is not None


async def test_a_busy_yjs_connection_gets_permission_denied_and_1013(
    server_factory: Any,
) -> None:
    """/yjs refusals speak y-protocols: permission-denied saying when to retry, then 1013."""
    server = server_factory("--max-connections", "1")
    server.add_user("alex")
    token = server.token("alex")
    cid = new_customer(server, token)
    occupant = await WireClient.connect(server.ws_url, token)
    client = await YClient.connect(server, cid, token)
    assert await client.wait_closed() == CloseCode.TRY_AGAIN_LATER
    denied = [m for m in client.inbox if isinstance(m, yjs.PermissionDenied)]
    assert len(denied) == 1 and re.search(r"busy; retry in [\d.]+ s", denied[0].reason)
    assert not any(isinstance(m, yjs.SyncStep1) for m in client.inbox)
    await occupant.close()


async def test_the_client_waits_retry_after_before_reconnecting(server_factory: Any) -> None:
    """The real ClientConnection, refused as busy, waits exactly the server's retry_after
    (its own backoff is shorter here) and gets in once there is room."""
    server = server_factory("--max-connections", "1", "--busy-retry-after", "0.5")
    server.add_user("alex")
    token = server.token("alex")
    occupant = await WireClient.connect(server.ws_url, token)
    statuses: list[tuple[float, Status]] = []

    async def provide(_force_new: bool) -> str:
        return token

    async def nothing(*_args: Any) -> None:
        return None

    conn = ClientConnection(server.ws_url, session_id="busy-client-1", token_provider=provide,
                            on_open=nothing, on_message=nothing, backoff_initial=0.01,
                            backoff_max=0.01)
    conn.add_status_listener(lambda s: statuses.append((time.monotonic(), s)))
    await conn.start()
    try:
        waiting = await eventually(lambda: [(t, s) for t, s in statuses
                                            if s.retry_in is not None])
        at, status = waiting[0]
        hint = re.search(r"busy; retry in ([\d.]+) s", status.error or "")
        assert hint is not None, status
        assert status.retry_in == float(hint.group(1)) and 0.5 <= status.retry_in <= 1.0
        tried = await eventually(lambda: [t for t, s in statuses if t > at and s.retry_in is None
                                          and s.state is ConnectionState.CONNECTING])
        assert tried[0] - at >= status.retry_in - 0.05
        await occupant.close()
        await eventually(lambda: conn.status.state is ConnectionState.ONLINE, timeout=15)
    finally:
        await conn.close()


# --- missing dependencies -------------------------------------------------------------------


def gap_updates(count: int, size: int = 1024) -> tuple[list[bytes], list[bytes]]:
    """``count`` writers' second updates (each ~``size`` bytes of notes) without their
    first ones: every one builds on something the server lacks."""
    firsts, seconds = [], []
    for n in range(count):
        doc: Doc[Any] = Doc(client_id=10_000 + n)
        updates: list[bytes] = []
        doc.observe(lambda event, u=updates: u.append(event.update))
        notes = doc.get("notes", type=Text)
        notes.insert(0, f"<{n}>")
        notes.insert(len(notes), "x" * size)
        firsts.append(updates[0])
        seconds.append(updates[1])
    return firsts, seconds


async def test_updates_with_missing_dependencies_are_refused_and_not_kept(
    server: ServerHandle,
) -> None:
    """500 updates that build on unknown changes: each gets missing_dependencies, none is
    acked, and none is kept: once the changes they need arrive, the document holds only
    those (a kept update would have been integrated with them)."""
    doc_id = new_doc_id()
    mallory = await rep(server, "mallory")
    await join(mallory, doc_id)
    firsts, seconds = gap_updates(500)
    for ref, update in enumerate(seconds, start=1):
        await mallory.send(Update(doc_id, ref, update))
    errors = [await mallory.expect(Error, lambda m, r=ref: m.ref == r)
              for ref in range(1, 501)]
    assert {e.code for e in errors} == {ErrorCode.MISSING_DEPENDENCIES}
    for ref, update in enumerate(firsts[:3], start=1001):
        await mallory.send(Update(doc_id, ref, update))
    await mallory.expect(Ack, lambda m: m.ref == 1003)
    assert all(ack.ref > 1000 for ack in mallory.received(Ack))
    reader = await rep(server, "reader")
    view = await join(reader, doc_id)
    notes = document.read_notes(view.doc)
    assert "x" not in notes and sorted(re.findall(r"<\d+>", notes)) == ["<0>", "<1>", "<2>"]


async def test_the_writer_resyncs_after_missing_dependencies(server: ServerHandle) -> None:
    """The documented way out: the refused client resends with what was missing."""
    doc_id = new_doc_id()
    alex = await rep(server, "alex")
    replica = await join(alex, doc_id)
    replica.set(name="first")  # never sent
    second = replica.set(name="second")
    await alex.send(Update(doc_id, 1, second))
    assert (await alex.expect(Error, lambda m: m.ref == 1)).code is ErrorCode.MISSING_DEPENDENCIES
    await alex.send(SyncStep1(doc_id, Replica().doc.get_state()))
    step2 = await alex.expect(SyncStep2, lambda m: m.doc == doc_id)
    server_view = Replica()
    server_view.apply(step2.update)
    await alex.send(Update(doc_id, 2, replica.doc.get_update(server_view.doc.get_state())))
    await alex.expect(Ack, lambda m: m.ref == 2)
    check = Replica()
    await join(await rep(server, "reader"), doc_id, check)
    assert check.fields()["name"] == "second"


async def test_a_yjs_gap_is_answered_by_one_sync_step1_and_not_kept(
    server: ServerHandle,
) -> None:
    """/yjs: an update past a gap is not integrated; the server asks once (sync step 1),
    not again for more refused updates, and the client's step 2 brings everything."""
    server.add_user("rep")
    token = server.token("rep")
    cid = new_customer(server, token)
    client = await YClient.connect(server, cid, token)
    await client.expect(yjs.SyncStep1)
    await client.sync()
    local: Doc[Any] = Doc()
    local.apply_update(client.doc.get_update())
    before = local.get_state()
    texts = []
    for word in ("alpha ", "beta ", "gamma "):
        state = local.get_state()
        with local.transaction():
            local.get("notes", type=Text).insert(0, word)
        texts.append(local.get_update(state))
    for update in texts[1:]:  # alpha is never sent: beta and gamma build on it
        await client.ws.send(yjs.sync_update(update))
    nudge = await client.expect(yjs.SyncStep1)
    assert nudge.state_vector == client.doc.get_state()
    await client.ws.send(yjs.sync_update(texts[2]))
    await client.ws.send(yjs.sync_step1(client.doc.get_state()))  # a round trip
    await client.expect(yjs.SyncStep2)
    assert not any(isinstance(m, (yjs.SyncStep1, yjs.SyncUpdate)) for m in client.inbox)
    await client.ws.send(yjs.sync_step2(local.get_update(before)))  # the answer
    echo = await client.expect(yjs.SyncUpdate)
    client.doc.apply_update(echo.update)
    assert client.notes() == "gamma beta alpha "
    await client.close()
