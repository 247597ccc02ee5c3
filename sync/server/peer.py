"""What every WebSocket connection of the server shares: sending, closing, the receive loop.

Both front doors for WebSocket clients, ``/ws`` (``ws.py``, our protocol) and ``/yjs``
(``yjs.py``, the y-websocket protocol), are a :class:`WebSocketPeer`: it owns the socket,
rate-limits what arrives, and sends through :meth:`WebSocketPeer.post`, which never waits.
A per-connection queue is drained by a short-lived task, so one slow subscriber never holds
up a fan-out; one that falls too far behind is closed.

An idle connection should cost little memory and no CPU (issue 14): the peer has
``__slots__``, its send queue, logger adapter and name are made only when needed, and its
deadlines are enforced by the node's one sweeper through ``registry.DeadlineWheel``
(:meth:`WebSocketPeer.sweep` returns when it next needs checking), not by a timer or task
of its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Coroutine, Generator
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.exceptions import InvalidState
from websockets.protocol import Protocol as WebSocketsProtocol

from sync.protocol.errors import CloseCode

from .auth import Claims
from .errors import AuthError
from .hub import SyncHub
from .registry import AccountKey, PeerRegistry

__all__ = ["MAX_QUEUED_BYTES", "WebSocketPeer", "direct_protocol", "write_direct"]

log = logging.getLogger(__name__)

#: A subscriber with more than this many bytes queued is too slow and gets closed.
MAX_QUEUED_BYTES = 32 * 1024 * 1024


class WebSocketPeer:
    """One accepted WebSocket; subclasses handle frames in :meth:`on_frame`.

    Subclasses declare ``__slots__`` too (memory per connection, issue 14).
    """

    __slots__ = (
        "_claims", "_close_task", "_closing", "_drainer", "_log", "_proto", "_queue",
        "_queued_bytes", "_tokens", "_tokens_at", "connected_at", "due_tick", "hub",
        "last_seen", "registry", "token_expires_at", "websocket",
    )

    def __init__(self, hub: SyncHub, websocket: WebSocket) -> None:
        self.hub = hub
        self.websocket = websocket
        self._claims: Claims | None = None
        now = time.monotonic()
        self.connected_at = now
        self.last_seen = now
        self.token_expires_at = 0.0
        self._tokens = float(hub.config.rate_burst)
        self._tokens_at = now
        #: Frames waiting while the transport is busy (made when first needed).
        self._queue: deque[bytes] | None = None
        self._queued_bytes = 0
        self._drainer: asyncio.Task[None] | None = None
        self._closing = False
        self._close_task: asyncio.Task[None] | None = None
        self._proto = direct_protocol(websocket)
        self._log: logging.LoggerAdapter[logging.Logger] | None = None
        #: The node's index of connections (set by ``PeerRegistry.add``), or None.
        self.registry: PeerRegistry | None = None
        #: The sweeper's bucket for this connection (``registry.DeadlineWheel``).
        self.due_tick: int | None = None

    @property
    def claims(self) -> Claims | None:
        """The verified token's claims (None before authentication)."""
        return self._claims

    @claims.setter
    def claims(self, claims: Claims | None) -> None:
        old = self.account_key
        self._claims = claims
        if self.registry is not None:
            self.registry.authenticated(self, old)

    @property
    def account_key(self) -> AccountKey | None:
        """(username, token version) of the verified token; None before authentication."""
        claims = self._claims
        return None if claims is None else (claims.username, claims.token_version)

    @property
    def username(self) -> str:
        """The authenticated user ('' before authentication)."""
        return self._claims.username if self._claims is not None else ""

    @property
    def peer(self) -> str:
        """The client's address, for logs."""
        client = self.websocket.client
        return f"{client.host}:{client.port}" if client else "?"

    @property
    def log(self) -> logging.LoggerAdapter[logging.Logger]:
        """This connection's logger (carries the peer, and the session once bound)."""
        if self._log is None:
            self._log = logging.LoggerAdapter(log, {"peer": self.peer})
        return self._log

    @log.setter
    def log(self, adapter: logging.LoggerAdapter[logging.Logger]) -> None:
        self._log = adapter

    @property
    def closing(self) -> bool:
        """True once the connection is closing or closed."""
        return self._closing

    # Sending -----------------------------------------------------------------------------

    def post(self, frame: bytes) -> None:
        """Send a frame, or queue it behind earlier ones; never waits.

        With nothing queued the frame goes to the transport at once, without a task (see
        :func:`_send_now`); a task drains the queue only while the transport is busy.
        """
        if self._closing:
            return
        if self._drainer is None:
            pending = self._send_now(frame)
            if pending is not None:
                self._drainer = asyncio.get_running_loop().create_task(self._drain(pending))
            return
        if self._queue is None:
            self._queue = deque()
        self._queue.append(frame)
        self._queued_bytes += len(frame)
        if self._queued_bytes > MAX_QUEUED_BYTES:
            self.log.warning("closing %s: too far behind (%d bytes queued)", self.peer,
                             self._queued_bytes)
            self._queue.clear()
            self._queued_bytes = 0
            self.close(CloseCode.TRY_AGAIN_LATER, "too slow to keep up; reconnect and resync")

    def _send_now(self, frame: bytes) -> Awaitable[None] | None:
        """Hand a frame to the transport synchronously; returns what is left to await.

        Sending through the ASGI stack is a coroutine, but it only suspends when the
        transport's write buffer is full (uvicorn waits for it to drain before writing).
        Stepping the coroutine once therefore sends at once in the common case, and saves a
        task per frame, the largest cost of a fan-out to many subscribers. If it does
        suspend, the rest of it is returned for the drainer to finish, in order.
        """
        if self._proto is not None and write_direct(self._proto, frame):
            return None
        coro = self.websocket.send_bytes(frame)
        try:
            waiting_on = coro.send(None)
        except StopIteration:
            return None
        except (WebSocketDisconnect, RuntimeError, OSError) as exc:
            self.log.debug("send to %s failed: %s", self.peer, exc)
            return None
        return _Resumed(coro, waiting_on)

    async def _drain(self, first: Awaitable[None] | None = None) -> None:
        try:
            if first is not None:
                await first
            while self._queue:
                frame = self._queue.popleft()
                self._queued_bytes -= len(frame)
                await self.websocket.send_bytes(frame)
        except (WebSocketDisconnect, RuntimeError, OSError) as exc:
            self.log.debug("send to %s failed: %s", self.peer, exc)
            self._queued_bytes = 0
        finally:
            self._queue = None  # an idle connection keeps no queue
            self._drainer = None

    # Closing -----------------------------------------------------------------------------

    def close(self, code: int, reason: str = "") -> None:
        """Close after what is queued has been sent (never waits)."""
        if self._closing:
            return
        self._closing = True
        self.on_closing(code, reason)
        self._close_task = asyncio.get_running_loop().create_task(self._close(code, reason))

    def on_closing(self, code: int, reason: str) -> None:
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
        """Serve the connection until it closes.

        No task per receive: once :meth:`close` has sent the close frame, the ASGI server
        delivers ``websocket.disconnect`` to the pending receive, which ends the loop.
        """
        await self.websocket.accept()
        try:
            await self.on_open()
            # The upgrade request's headers are not read after opening: do not keep them
            # for the life of the connection (~1 KiB each).
            self.websocket.scope["headers"] = []
            while not self._closing:
                message = await self.websocket.receive()
                if message["type"] == "websocket.disconnect" or self._closing:
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

    async def _check_token(self, token: str) -> Claims | AuthError:
        """Verify an access token off the event loop (it reads the account's row)."""
        def check() -> Claims | AuthError:
            try:
                return self.hub.auth.verify_access(token)
            except AuthError as exc:
                return exc

        return await asyncio.to_thread(check)

    # Called by the server's sweeper --------------------------------------------------------

    def sweep(self, now: float) -> float | None:
        """Enforce the deadlines due at ``now`` (auth, idle, token expiry); called by the
        sweeper when this connection is due. Returns the ``time.monotonic()`` time at which
        the next one falls due, or None once closing (see ``registry.DeadlineWheel``)."""
        return None

    def revoke(self, reason: str) -> None:
        """The account was disabled or changed: close at once."""
        raise NotImplementedError


def direct_protocol(websocket: WebSocket) -> Any:
    """uvicorn's protocol object behind ``websocket`` if it has the expected shape, else
    None; :func:`write_direct` writes frames through it.

    The ASGI way to send is a chain of coroutines (Starlette, uvicorn) around two calls:
    ``conn.send_binary(frame)`` on the ``websockets`` sans-I/O protocol and
    ``transport.write(...)``. For a fan-out to a thousand subscribers that chain was most
    of the cost, so when the socket's ASGI ``send`` is uvicorn's own (the app routes
    WebSockets around FastAPI's middleware, see app.py), the peer makes those two calls
    itself, under the same conditions uvicorn checks (it keeps just this object: no
    closure per connection). ``test_peer.py`` checks that the pinned uvicorn still has the
    shape this relies on.
    """
    send = getattr(websocket, "_send", None)
    proto = getattr(send, "__self__", None)
    if (
        proto is None or getattr(send, "__name__", "") != "send"
        or not isinstance(getattr(proto, "conn", None), WebSocketsProtocol)
        or not isinstance(getattr(proto, "writable", None), asyncio.Event)
        or not hasattr(proto, "transport") or not hasattr(proto, "close_sent")
    ):
        return None
    return proto


def write_direct(proto: Any, frame: bytes) -> bool:
    """Write ``frame`` as uvicorn would; False where it may not (handshake not done,
    closing, transport paused): the caller then takes the ASGI path, which waits for the
    transport as it should."""
    if (not proto.writable.is_set() or proto.close_sent or proto.disconnected
            or not proto.handshake_complete or proto.initial_response is not None):
        return False
    conn = proto.conn
    try:
        conn.send_binary(frame)
    except InvalidState:
        return True  # the connection is closing: the frame is moot, as uvicorn drops it
    proto.transport.write(b"".join(conn.data_to_send()))
    return True


class _Resumed:
    """The remainder of a coroutine that was stepped once and suspended on ``waiting_on``.

    Awaiting it first yields that same future to the running task (exactly what the
    coroutine itself would have done), then resumes the coroutine where it stopped.
    """

    def __init__(self, coro: Coroutine[Any, Any, None], waiting_on: Any) -> None:
        self._coro = coro
        self._waiting_on = waiting_on

    def __await__(self) -> Generator[Any, Any, None]:
        yield self._waiting_on
        return (yield from self._coro.__await__())
