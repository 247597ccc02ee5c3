"""A thin test client speaking the wire protocol over a real WebSocket.

Server tests use it to send exact frames and wait for exact messages; the app's real
connection (sync.client) has its own tests.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from typing import Any, TypeVar

import websockets
from websockets.asyncio.client import ClientConnection

from sync.protocol.connection import ClientProtocol
from sync.protocol.messages import Authenticate, Message, Welcome, decode, encode

from .conftest import scaled

M = TypeVar("M", bound=Message)


class WireClient:
    """One real WebSocket connection with a message inbox."""

    def __init__(self, ws: ClientConnection, session_id: str) -> None:
        self.ws = ws
        self.session_id = session_id
        self.inbox: list[Message] = []
        self.closed: asyncio.Future[tuple[int | None, str]] = (
            asyncio.get_running_loop().create_future()
        )
        self._arrived = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())
        self.welcome: Welcome | None = None

    @classmethod
    async def connect(cls, ws_url: str, token: str | None = None,
                      session_id: str | None = None,
                      versions: tuple[int, ...] | None = None) -> WireClient:
        """Open a connection; with a token, authenticate and wait for Welcome (offering
        ``versions`` instead of this code's own, to play an older client)."""
        ws = await websockets.connect(ws_url, max_size=None)
        client = cls(ws, session_id or secrets.token_hex(8))
        if token is not None and versions is not None:
            await ws.send(encode(Authenticate(versions, token, client.session_id, "tests")))
            client.welcome = await client.expect(Welcome)
        elif token is not None:
            protocol = ClientProtocol()
            protocol.start(token, client.session_id, "tests")
            for frame in protocol.data_to_send():
                await ws.send(frame)
            client.welcome = await client.expect(Welcome)
        return client

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                assert isinstance(frame, bytes), "server sent a text frame"
                async with self._arrived:
                    self.inbox.append(decode(frame, 64 * 1024 * 1024))
                    self._arrived.notify_all()
        except websockets.ConnectionClosed:
            pass
        finally:
            rcvd = self.ws.protocol.close_rcvd
            if not self.closed.done():
                self.closed.set_result((rcvd.code, rcvd.reason) if rcvd else (None, ""))
            async with self._arrived:
                self._arrived.notify_all()

    async def send(self, message: Message) -> None:
        """Send one message."""
        await self.ws.send(encode(message))

    async def send_raw(self, data: bytes | str) -> None:
        """Send arbitrary bytes (or text) as one frame."""
        await self.ws.send(data)

    async def expect(self, kind: type[M], where: Callable[[M], bool] = lambda m: True,
                     timeout: float = 10.0) -> M:
        """Wait for (and take out of the inbox) the first message of ``kind`` matching."""
        async def find() -> M:
            async with self._arrived:
                while True:
                    for i, message in enumerate(self.inbox):
                        if isinstance(message, kind) and where(message):
                            del self.inbox[i]
                            return message
                    if self.closed.done():
                        raise AssertionError(
                            f"connection closed {self.closed.result()} while waiting for "
                            f"{kind.__name__}; inbox: {self.inbox}"
                        )
                    await self._arrived.wait()
        return await asyncio.wait_for(find(), scaled(timeout))

    def received(self, kind: type[M]) -> list[M]:
        """Messages of ``kind`` in the inbox now (not taken out)."""
        return [m for m in self.inbox if isinstance(m, kind)]

    async def wait_closed(self, timeout: float = 10.0) -> tuple[int | None, str]:
        """Wait for the server to close; returns (code, reason)."""
        return await asyncio.wait_for(asyncio.shield(self.closed), scaled(timeout))

    async def close(self) -> None:
        """Close from our side."""
        await self.ws.close()
        self._reader.cancel()


async def eventually(check: Callable[[], Any], timeout: float = 10.0,
                     interval: float = 0.02) -> Any:
    """Poll ``check`` until it returns a truthy value; fail after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + scaled(timeout)
    while True:
        value = check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s: {check}")
        await asyncio.sleep(interval)
