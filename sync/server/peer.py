"""What every WebSocket connection of the server shares: sending, closing, the receive loop.

Both front doors for WebSocket clients, ``/ws`` (``ws.py``, our protocol) and ``/yjs``
(``yjs.py``, the y-websocket protocol), are a :class:`WebSocketPeer`: it owns the socket,
rate-limits what arrives, and sends through :meth:`WebSocketPeer.post`, which never waits.
A per-connection queue is drained by a short-lived task, so one slow subscriber never holds
up a fan-out; one that falls too far behind is closed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from sync.protocol.errors import CloseCode

from .auth import Claims
from .hub import SyncHub

__all__ = ["MAX_QUEUED_BYTES", "WebSocketPeer"]

log = logging.getLogger(__name__)

#: A subscriber with more than this many bytes queued is too slow and gets closed.
MAX_QUEUED_BYTES = 32 * 1024 * 1024


class WebSocketPeer:
    """One accepted WebSocket; subclasses handle frames in :meth:`on_frame`."""

    def __init__(self, hub: SyncHub, websocket: WebSocket) -> None:
        self.hub = hub
        self.websocket = websocket
        config = hub.config
        self.claims: Claims | None = None
        now = time.monotonic()
        self.connected_at = now
        self.last_seen = now
        self.token_expires_at = 0.0
        self._tokens = float(config.rate_burst)
        self._tokens_at = now
        self._queue: deque[bytes] = deque()
        self._queued_bytes = 0
        self._drainer: asyncio.Task[None] | None = None
        self._closing = False
        self._close_task: asyncio.Task[None] | None = None
        self._receiver: asyncio.Task[Any] | None = None
        client = websocket.client
        self.peer = f"{client.host}:{client.port}" if client else "?"
        self.log = logging.LoggerAdapter(log, {"peer": self.peer})

    @property
    def closing(self) -> bool:
        """True once the connection is closing or closed."""
        return self._closing

    # Sending -----------------------------------------------------------------------------

    def post(self, frame: bytes) -> None:
        """Queue a frame to send; never waits (see the module docstring)."""
        if self._closing:
            return
        self._queue.append(frame)
        self._queued_bytes += len(frame)
        if self._queued_bytes > MAX_QUEUED_BYTES:
            self.log.warning("closing %s: too far behind (%d bytes queued)", self.peer,
                             self._queued_bytes)
            self._queue.clear()
            self._queued_bytes = 0
            self.close(CloseCode.TRY_AGAIN_LATER, "too slow to keep up; reconnect and resync")
            return
        if self._drainer is None:
            self._drainer = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while self._queue:
                frame = self._queue.popleft()
                self._queued_bytes -= len(frame)
                await self.websocket.send_bytes(frame)
        except (WebSocketDisconnect, RuntimeError, OSError) as exc:
            self.log.debug("send to %s failed: %s", self.peer, exc)
            self._queue.clear()
            self._queued_bytes = 0
        finally:
            self._drainer = None

    # Closing -----------------------------------------------------------------------------

    def close(self, code: CloseCode, reason: str = "") -> None:
        """Close after what is queued has been sent (never waits)."""
        if self._closing:
            return
        self._closing = True
        self.on_closing(code, reason)
        self._close_task = asyncio.get_running_loop().create_task(self._close(code, reason))
        self._wake_receiver()

    def on_closing(self, code: CloseCode, reason: str) -> None:
        """Hook: the connection starts closing (before the close frame is queued)."""

    def close_for_resync(self) -> None:
        """Used by the hub after a failed write: the client reconnects and resyncs."""
        self.close(CloseCode.TRY_AGAIN_LATER, "the server could not store a change; resync")

    async def _close(self, code: int, reason: str) -> None:
        drainer = self._drainer
        if drainer is not None:
            try:
                await asyncio.wait_for(asyncio.shield(drainer), 5.0)
            except TimeoutError:
                drainer.cancel()
        try:
            await self.websocket.close(code, reason[:120])
        except (RuntimeError, OSError) as exc:
            self.log.debug("close of %s: %s", self.peer, exc)

    # Receiving ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the connection until it closes."""
        await self.websocket.accept()
        try:
            await self.on_open()
            while not self._closing:
                self._receiver = asyncio.ensure_future(self.websocket.receive())
                try:
                    message = await self._receiver
                except asyncio.CancelledError:
                    if self._closing and not _current_task_cancelling():
                        break  # woken by close(): stop reading
                    raise
                finally:
                    self._receiver = None
                if message["type"] == "websocket.disconnect":
                    break
                self.last_seen = time.monotonic()
                data = message.get("bytes")
                if data is None:
                    self.on_text_frame()
                    break
                if not self._take_token():
                    self.on_rate_limited()
                    break
                await self.on_frame(data)
        except WebSocketDisconnect:
            pass
        finally:
            self._closing = True
            self.on_closed()
            if self._close_task is not None:
                await self._close_task

    async def on_open(self) -> None:
        """Hook: the WebSocket was accepted."""

    async def on_frame(self, data: bytes) -> None:
        """Handle one binary frame."""
        raise NotImplementedError

    def on_text_frame(self) -> None:
        """A text frame arrived (both protocols are binary): fail the connection."""
        raise NotImplementedError

    def on_rate_limited(self) -> None:
        """The client sent faster than the rate limit: fail the connection."""
        raise NotImplementedError

    def on_closed(self) -> None:
        """Hook: the connection is gone (always called once)."""

    def _wake_receiver(self) -> None:
        """Interrupt a pending receive so run() sees that the connection is closing."""
        receiver = self._receiver
        if receiver is not None and not receiver.done():
            receiver.cancel()

    def _take_token(self) -> bool:
        """Token-bucket rate limit (docs/protocol.md §8)."""
        now = time.monotonic()
        config = self.hub.config
        self._tokens = min(
            float(config.rate_burst), self._tokens + (now - self._tokens_at) * config.rate_limit
        )
        self._tokens_at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    # Called by the server's sweeper --------------------------------------------------------

    def sweep(self, now: float) -> None:
        """Enforce deadlines (auth, idle, token expiry); called every half second."""

    def revoke(self, reason: str) -> None:
        """The account was disabled or changed: close at once."""
        raise NotImplementedError


def _current_task_cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
