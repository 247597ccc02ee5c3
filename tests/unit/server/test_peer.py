"""WebSocketPeer.post: frames go out at once, in order, also when the transport is busy.

The socket here is a stand-in with the one method the sender uses (``send_bytes``), whose
coroutine suspends while "the transport's buffer is full", as uvicorn's does.
"""

from __future__ import annotations

import asyncio
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
