"""WebSocketPeer.post: frames go out at once, in order, also when the transport is busy.

The socket here is a stand-in with the one method the sender uses (``send_bytes``), whose
coroutine suspends while "the transport's buffer is full", as uvicorn's does.
"""

from __future__ import annotations

import asyncio
import functools
import tempfile
from pathlib import Path
from typing import Any

from sync.server.config import ServerConfig
from sync.server.peer import WebSocketPeer


class _Socket:
    """Records frames; ``busy`` makes send_bytes wait like a paused transport."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.writable = asyncio.Event()
        self.writable.set()
        self.client = None

    async def send_bytes(self, data: bytes) -> None:
        await self.writable.wait()
        self.sent.append(data)


class _Hub:
    def __init__(self) -> None:
        self.config = ServerConfig(db_path=Path(tempfile.gettempdir()) / "unused.db")


def _peer(socket: _Socket) -> WebSocketPeer:
    return WebSocketPeer(_Hub(), socket)  # type: ignore[arg-type]


async def test_frames_are_sent_synchronously_while_the_transport_is_writable() -> None:
    socket = _Socket()
    peer = _peer(socket)
    for i in range(100):
        peer.post(b"%d" % i)
        assert socket.sent[-1] == b"%d" % i  # sent before post() returned: no task
    assert peer._drainer is None


async def test_a_busy_transport_queues_frames_and_sends_them_in_order() -> None:
    socket = _Socket()
    peer = _peer(socket)
    peer.post(b"a")
    socket.writable.clear()
    for frame in (b"b", b"c", b"d"):
        peer.post(frame)
    assert socket.sent == [b"a"]
    assert peer._drainer is not None
    socket.writable.set()
    drainer: Any = peer._drainer
    await asyncio.wait_for(drainer, 5)
    assert socket.sent == [b"a", b"b", b"c", b"d"]
    peer.post(b"e")
    assert socket.sent[-1] == b"e" and peer._drainer is None


class _Transport:
    """What uvicorn's protocol writes to (a socket's transport, minus the socket)."""

    def __init__(self) -> None:
        self.written = bytearray()

    def write(self, data: bytes) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8765)}.get(
            name, default)

    def close(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def test_direct_writer_works_with_the_pinned_uvicorn() -> None:
    """peer.write_direct relies on the shape of uvicorn's sans-I/O WebSocket protocol: a
    real one, driven through a real handshake, must give a writer that emits real frames
    (a uvicorn upgrade that changes that shape fails here, not silently in production)."""
    from starlette.websockets import WebSocket
    from uvicorn.config import Config
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    from uvicorn.server import ServerState
    from websockets.frames import Frame, Opcode

    from sync.server.peer import direct_protocol, write_direct

    writers: list[Any] = []
    accepted = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        proto = direct_protocol(websocket)
        writers.append(None if proto is None else functools.partial(write_direct, proto))
        accepted.set()
        await receive()

    config = Config(app=app, ws="websockets-sansio", lifespan="off",
                    ws_per_message_deflate=False)
    config.load()
    protocol = WebSocketsSansIOProtocol(config=config, server_state=ServerState(),
                                        app_state={})
    transport = _Transport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    protocol.data_received(
        b"GET /yjs/x HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    await asyncio.wait_for(accepted.wait(), 5)
    assert writers[0] is not None, "uvicorn's protocol no longer has the expected shape"
    handshake = bytes(transport.written)
    assert handshake.startswith(b"HTTP/1.1 101")
    assert writers[0](b"\x00\x01frame") is True
    frame = bytes(transport.written)[len(handshake):]
    assert frame == Frame(Opcode.BINARY, b"\x00\x01frame").serialize(
        mask=False, extensions=[])  # type: ignore[call-arg]
    protocol.connection_lost(None)
