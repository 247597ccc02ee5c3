"""LeanWebSocketProtocol (uvicorn_ws.py): uvicorn's WebSocket protocol, less state per
connection, same behaviour. Driven through a real handshake and real frames, on a
transport stand-in that records what the server writes."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from starlette.websockets import WebSocket
from uvicorn.config import Config
from uvicorn.server import ServerState
from websockets.frames import Frame, Opcode

from sync.server.peer import direct_protocol, write_direct
from sync.server.uvicorn_ws import PAUSE_READING_AT, LeanWebSocketProtocol

UPGRADE = (
    b"GET /yjs/x?token=t HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)


class _Transport:
    """What uvicorn's protocol writes to (a socket's transport, minus the socket)."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.closed = False
        self.paused = False
        self.pauses = 0

    def write(self, data: bytes) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8765)}.get(
            name, default)

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        self.paused = True
        self.pauses += 1

    def resume_reading(self) -> None:
        self.paused = False


def _serve(app: Any) -> tuple[LeanWebSocketProtocol, _Transport]:
    """A LeanWebSocketProtocol serving ``app``, connected to a recording transport."""
    config = Config(app=app, ws=LeanWebSocketProtocol, lifespan="off", interface="asgi3",
                    ws_per_message_deflate=False)
    config.load()
    protocol = LeanWebSocketProtocol(config=config, server_state=ServerState(), app_state={})
    transport = _Transport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    return protocol, transport


class _TwoMessages:
    """An ASGI app that accepts, keeps a direct writer, and reads two binary messages."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.writers: list[Any] = []
        self.accepted, self.done = asyncio.Event(), asyncio.Event()

    async def app(self, scope: Any, receive: Any, send: Any) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        proto = direct_protocol(websocket)
        self.writers.append(None if proto is None else functools.partial(write_direct, proto))
        self.accepted.set()
        for _ in range(2):
            self.received.append(await websocket.receive_bytes())
        self.done.set()
        await receive()


async def test_lean_protocol_serves_frames_and_keeps_no_handshake_state() -> None:
    """After the handshake: no instance dict, no request or response kept (not even in the
    frame parser), and frames still flow both ways, in order."""
    two = _TwoMessages()
    received, accepted, done, writers = two.received, two.accepted, two.done, two.writers
    app = two.app
    protocol, transport = _serve(app)
    protocol.data_received(UPGRADE)
    await asyncio.wait_for(accepted.wait(), 5)
    assert bytes(transport.written).startswith(b"HTTP/1.1 101")
    assert vars(protocol) == {}
    assert protocol.request is None and protocol.response is None
    parser = protocol.conn.parser  # a fresh frame parser: the request is not kept
    assert parser.gi_frame is not None and "request" not in parser.gi_frame.f_locals
    for payload in (b"one", b"two"):
        protocol.data_received(Frame(Opcode.BINARY, payload).serialize(
            mask=True, extensions=[]))
    await asyncio.wait_for(done.wait(), 5)
    assert received == [b"one", b"two"]
    before = len(transport.written)
    assert writers[0] is not None and writers[0](b"back") is True
    assert bytes(transport.written)[before:] == Frame(Opcode.BINARY, b"back").serialize(
        mask=False, extensions=[])
    protocol.connection_lost(None)


async def test_frames_sent_with_the_upgrade_are_not_lost() -> None:
    """A client that sends frames right behind its upgrade request (before the 101) keeps
    them, also when the parser stopped inside one: the parser is then left as it is."""
    two = _TwoMessages()
    received, accepted, done = two.received, two.accepted, two.done
    app = two.app
    protocol, _ = _serve(app)
    first = Frame(Opcode.BINARY, b"early").serialize(mask=True, extensions=[])
    second = Frame(Opcode.BINARY, b"next").serialize(mask=True, extensions=[])
    # the whole first frame, and the header of the second (consumed, nothing left buffered)
    protocol.data_received(UPGRADE + first + second[:2])
    await asyncio.wait_for(accepted.wait(), 5)
    assert not protocol.conn.reader.buffer
    protocol.data_received(second[2:])
    await asyncio.wait_for(done.wait(), 5)
    assert received == [b"early", b"next"]
    protocol.connection_lost(None)


async def test_reading_pauses_only_when_several_messages_wait() -> None:
    """One message at a time never pauses the socket (uvicorn paused after each); a backlog
    of PAUSE_READING_AT does, until the app has taken them all."""
    taken: list[bytes] = []
    accepted, release = asyncio.Event(), asyncio.Event()
    got: dict[int, asyncio.Event] = {n: asyncio.Event() for n in (1, 8)}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        accepted.set()
        taken.append(await websocket.receive_bytes())
        got[1].set()
        await release.wait()
        while len(taken) < 8:
            taken.append(await websocket.receive_bytes())
        got[8].set()
        await receive()

    protocol, transport = _serve(app)
    protocol.data_received(UPGRADE)
    await asyncio.wait_for(accepted.wait(), 5)

    def frame(n: int) -> bytes:
        return Frame(Opcode.BINARY, b"%d" % n).serialize(mask=True, extensions=[])

    protocol.data_received(frame(0))
    await asyncio.wait_for(got[1].wait(), 5)
    assert transport.pauses == 0
    protocol.data_received(b"".join(frame(n) for n in range(1, 8)))  # 7 wait for the app
    assert transport.paused and transport.pauses == 1 and PAUSE_READING_AT <= 7
    release.set()
    await asyncio.wait_for(got[8].wait(), 5)
    assert taken == [b"%d" % n for n in range(8)] and not transport.paused
    protocol.connection_lost(None)


async def test_reading_goes_on_after_the_close_frame_is_sent() -> None:
    """Messages the app will never read (it sent its close frame) do not pause reading:
    the client's close reply must still get through (else the close waits 10 s)."""
    accepted, go, closed = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        accepted.set()
        await go.wait()
        await websocket.close(4008, "too many messages")
        closed.set()

    protocol, transport = _serve(app)
    protocol.data_received(UPGRADE)
    await asyncio.wait_for(accepted.wait(), 5)

    def frames(count: int) -> bytes:
        return b"".join(Frame(Opcode.BINARY, b"%d" % n).serialize(mask=True, extensions=[])
                        for n in range(count))

    protocol.data_received(frames(PAUSE_READING_AT - 1))  # unread: just under the limit
    go.set()
    await asyncio.wait_for(closed.wait(), 5)
    protocol.data_received(frames(PAUSE_READING_AT))  # after the close: discarded
    assert transport.pauses == 0 and not transport.paused
    protocol.connection_lost(None)
