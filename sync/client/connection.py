"""The client's live connection to the sync server: an asyncio driver over ``ClientProtocol``.

:class:`ClientConnection` keeps one WebSocket to ``ws(s)://HOST:PORT/ws`` open for as long
as it runs: it authenticates (docs/protocol.md §3), hands every server message to the app
core, sends Heartbeats, renews the access token in-band before it expires, notices a dead
link, and reconnects with capped, jittered backoff when anything goes wrong — until it is
closed or the server refuses it for good (bad credentials, revoked access, no common
protocol version). The reconnect policy itself is pure and lives in
:mod:`sync.client.backoff`; the wire rules live in :mod:`sync.protocol.connection`; what
a single connection attempt owns (socket, protocol object, why it ended) lives in the
private :mod:`sync.client._link`, what keeps it alive (Heartbeats, in-band token renewal)
in :mod:`sync.client._keepalive`, and the status it reports, with its listeners, in
:mod:`sync.client.status` (:class:`~sync.client.status.StatusBoard`).

Call order::

    conn = ClientConnection(url, session_id=..., token_provider=..., on_open=...,
                            on_message=...)
    await conn.start()              # once; returns at once, connecting runs in the background
    welcome = await conn.wait_online(10)     # optional
    await conn.send(message)        # any time; NotConnected when not online
    await conn.close()              # once or more; afterwards the object is finished

Callbacks run on the connection's task, one at a time and in the order the messages
arrived. ``on_open(welcome)`` runs after each successful (re)authentication and before any
other message of that connection is dispatched; ``send()`` already works inside it (the
status turns ONLINE when it returns). It must not wait for the server's replies: they are
dispatched only after it returns. If ``on_open`` raises, the connection is closed and
retried with backoff; if ``on_message`` raises, the error is logged and the next message is
dispatched.

WebSocket-level pings are disabled (``ping_interval=None``): the protocol's own Heartbeat
does that job and is what the server counts towards its idle timeout (close 4009), and a
single liveness rule — no frame received for ``dead_after`` seconds means the link is dead —
is easier to reason about than two timers with different close behaviour.

Logging levels: DEBUG every message sent and received (guarded), INFO connection
lifecycle (connecting, online, renewed, closed), WARNING drops and transient failures that
are retried, ERROR fatal stops and exceptions raised by callbacks. Every record carries
the session id and a per-attempt connection number, through a ``LoggerAdapter``
(``ConnectionLog`` in :mod:`sync.client._link`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from ssl import SSLContext
from typing import Any

from websockets.asyncio.client import ClientConnection as WebSocket
from websockets.asyncio.client import connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidStatus,
    InvalidURI,
    WebSocketException,
)

from sync.protocol.connection import ClientProtocol, ProtocolFailure, State
from sync.protocol.errors import CloseCode, ErrorCode
from sync.protocol.messages import (
    MAX_MESSAGE_SIZE,
    Error,
    Heartbeat,
    HeartbeatAck,
    Message,
    TokenRenewed,
    Welcome,
    encode,
)

from ._keepalive import heartbeats, renewals
from ._link import ConnectionLog, Drop, Link, fatal_error
from .backoff import Disposition, backoff, classify, retry_floor
from .errors import (
    ClientError,
    ConnectionClosedFatal,
    InvalidEndpoint,
    MessageTooBig,
    NotConnected,
)
from .status import ConnectionState, Status, StatusBoard

__all__ = [
    "ClientConnection",
    "ConnectionState",
    "MessageHandler",
    "OpenHandler",
    "Status",
    "TokenProvider",
]

logger = logging.getLogger(__name__)

#: ``token_provider(force_new)``: an access token; ``force_new`` asks for a fresh one.
TokenProvider = Callable[[bool], Awaitable[str]]
OpenHandler = Callable[[Welcome], Awaitable[None]]
MessageHandler = Callable[[Message], Awaitable[None]]

#: Largest frame accepted from the server. Generous on purpose: the server announces its
#: own limit for what it accepts, and refusing a big SyncStep2 would only loop reconnects.
_RECEIVE_LIMIT = 16 * MAX_MESSAGE_SIZE
_OPEN_TIMEOUT = 10.0
_CLOSE_TIMEOUT = 3.0
#: Errors that, without ``ref``/``doc``, describe the connection rather than a request: the
#: server closes right after them (docs/protocol.md §7). They feed the reconnect policy and
#: the status; they are not dispatched to ``on_message``.
_CONNECTION_ERRORS = frozenset({
    ErrorCode.AUTH_FAILED, ErrorCode.TOKEN_EXPIRED, ErrorCode.ACCESS_REVOKED,
    ErrorCode.UNSUPPORTED_VERSION, ErrorCode.SERVER_BUSY, ErrorCode.RATE_LIMITED,
    ErrorCode.AUTH_TIMEOUT, ErrorCode.AUTH_REQUIRED, ErrorCode.BAD_MESSAGE,
    ErrorCode.MESSAGE_TOO_BIG,
})


class ClientConnection:
    """A self-healing, authenticated connection to the sync server.

    ``url`` is ``ws://HOST:PORT/ws`` or ``wss://…`` (pass ``ssl`` only with wss).
    ``session_id`` identifies this client instance (8-64 of ``A-Za-z0-9_-``); reuse it
    across reconnects and restarts so that the server resumes the session's subscriptions.
    ``token_provider(force_new)`` returns an access token; it is called before every
    connection attempt (``force_new`` after the server said the token expired) and for
    in-band renewal (always ``force_new``). It raises ``AuthenticationFailed`` when no
    token can be had; other exceptions are retried. See the module docstring for the
    callbacks' rules.

    ``dead_after``: a link on which nothing was received for this many seconds is closed
    and reconnected. ``renew_margin``: renew the token this many seconds before it expires
    (or after 80% of its lifetime when that is later).
    """

    def __init__(
        self,
        url: str,
        *,
        session_id: str,
        token_provider: TokenProvider,
        on_open: OpenHandler,
        on_message: MessageHandler,
        client_name: str = "",
        ssl: SSLContext | None = None,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        dead_after: float = 30.0,
        renew_margin: float = 60.0,
    ) -> None:
        if not url.startswith(("ws://", "wss://")):
            raise ValueError(f"a sync server URL starts with ws:// or wss://, not {url!r}")
        if ssl is not None and not url.startswith("wss://"):
            raise ValueError("an SSL context needs a wss:// URL")
        if dead_after <= 0 or renew_margin < 0:
            raise ValueError("dead_after must be positive and renew_margin not negative")
        backoff(backoff_initial, maximum=backoff_max)  # validates the parameters now
        self.url = url
        self.session_id = session_id
        self._token_provider = token_provider
        self._on_open = on_open
        self._on_message = on_message
        self._client_name = client_name
        self._ssl = ssl
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._dead_after = dead_after
        self._renew_margin = renew_margin
        self._log = ConnectionLog(logger, session_id)
        self._board = StatusBoard(self._log)
        self._task: asyncio.Task[None] | None = None
        self._link: Link | None = None
        self._welcome: Welcome | None = None
        self._token_expires_at: float | None = None
        self._force_new = False
        self._provider_failures = 0
        self._closed = False
        #: Why the connection stopped by itself (fatal refusal or internal error).
        self._stop_error: ClientError | None = None

    # --- public API ---------------------------------------------------------------------

    @property
    def status(self) -> Status:
        """The current status (also delivered to status listeners on every change)."""
        return self._board.current

    @property
    def welcome(self) -> Welcome | None:
        """The Welcome of the last successful authentication (kept while reconnecting)."""
        return self._welcome

    @property
    def token_expires_at(self) -> float | None:
        """When the access token in force expires (unix time, server clock), after renewals."""
        return self._token_expires_at

    async def start(self) -> None:
        """Start connecting in the background. Call once, from a running event loop."""
        if self._task is not None or self._closed:
            raise RuntimeError("ClientConnection.start() may be called only once")
        self._task = asyncio.create_task(self._run(), name=f"liveedit-sync-{self.session_id}")
        self._task.add_done_callback(self._on_run_done)

    async def close(self) -> None:
        """Close cleanly (close code 1000), stop reconnecting, go OFFLINE. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._log.info("closing")
        link = self._link
        if link is not None:
            await link.close(CloseCode.NORMAL, "client closing")
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            if task is not asyncio.current_task():  # close() called from a callback
                await asyncio.wait([task])
        error = str(self._stop_error) if self._stop_error else None
        self._set_status(Status(ConnectionState.OFFLINE, error=error))

    async def send(self, message: Message) -> None:
        """Send one message to the server.

        Raises ``NotConnected`` when the link is not online (nothing was sent; keep the
        data queued and send it again from ``on_open``), ``MessageTooBig`` when the server
        would refuse its size. Returning means the frame was written to the socket, not that
        the server processed it (wait for its Ack for that). Sending a message kind a client
        may not send is a bug and raises ``LocalProtocolError``.
        """
        link = self._link
        if link is None or link.proto.state is not State.OPEN:
            raise NotConnected(f"not connected ({self._board.current.state})")
        frame = encode(message)  # once: the size check and the socket use the same bytes
        if self._welcome is not None and len(frame) > self._welcome.max_message_size:
            raise MessageTooBig(len(frame), self._welcome.max_message_size)
        if self._log.isEnabledFor(logging.DEBUG):
            self._log.debug("send %s", type(message).__name__)
        await link.send_frame(frame)

    def add_status_listener(self, callback: Callable[[Status], None]) -> Callable[[], None]:
        """Call ``callback(status)`` on every status change; returns a function removing it.

        Callbacks run on the event loop and must not block; their exceptions are logged.
        """
        return self._board.add_listener(callback)

    async def subscribe_status(self) -> AsyncIterator[Status]:
        """Yield the current status, then every change, until the consumer stops."""
        async for status in self._board.subscribe():
            yield status

    async def wait_online(self, timeout: float) -> Welcome:  # noqa: ASYNC109 (public API)
        """Wait until ONLINE and return the Welcome.

        Raises ``TimeoutError`` after ``timeout`` seconds, the fatal ``ConnectionClosedFatal``
        if the server refused the connection for good, ``NotConnected`` after ``close()``.
        """
        async with asyncio.timeout(timeout):
            while True:
                if self.status.state is ConnectionState.ONLINE and self._welcome is not None:
                    return self._welcome
                if self._stop_error is not None:
                    raise self._stop_error
                if self._closed:
                    raise NotConnected("the connection was closed")
                await self._board.changed()

    # --- status ---------------------------------------------------------------------------

    def _set_status(self, status: Status) -> None:
        self._board.set(status)

    def _on_run_done(self, task: asyncio.Task[None]) -> None:
        """Make a crash of the run loop (a bug) visible: logged, and status OFFLINE."""
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        self._log.error("connection loop crashed", exc_info=exc)
        self._stop_error = ClientError(f"internal error in the connection: {exc!r}")
        self._stop_error.__cause__ = exc
        self._link = None
        self._set_status(Status(ConnectionState.OFFLINE, error=str(self._stop_error)))

    # --- the run loop ------------------------------------------------------------------

    def _new_backoff(self) -> Iterator[float]:
        return backoff(self._backoff_initial, maximum=self._backoff_max)

    async def _run(self) -> None:
        """Connect, serve, and reconnect after each drop until closed or refused for good."""
        delays = self._new_backoff()
        attempt = 0
        renewals_in_row = 0
        last_error: str | None = None
        while not self._closed:
            attempt += 1
            self._log.number += 1
            self._set_status(Status(ConnectionState.CONNECTING, error=last_error, attempt=attempt))
            drop = await self._attempt()
            if self._closed:
                return
            if drop.online:
                delays, attempt, renewals_in_row = self._new_backoff(), 0, 0
            disposition = (
                Disposition.FATAL if drop.fatal else classify(drop.close_code, drop.error_code)
            )
            if disposition is Disposition.FATAL:
                fatal = drop.fatal or fatal_error(drop)
                self._log.error("stopping: %s", fatal)
                self._stop_error = fatal
                self._set_status(Status(ConnectionState.OFFLINE, error=str(fatal)))
                return
            floor = retry_floor(drop.close_code, drop.error_code, drop.retry_after)
            if disposition is Disposition.RENEW_TOKEN:
                self._force_new = True
                renewals_in_row += 1
                # The first retry with a fresh token is immediate; repeated expiries back off.
                delay = max(floor, 0.0 if renewals_in_row == 1 else next(delays))
            else:
                delay = max(floor, next(delays))
            last_error = drop.reason
            self._log.warning("%s; reconnecting in %.2f s", drop.reason, delay)
            self._set_status(Status(
                ConnectionState.CONNECTING, retry_in=delay, error=last_error,
                attempt=attempt + 1,
            ))
            await asyncio.sleep(delay)

    async def _attempt(self) -> Drop:
        """One connection attempt, from getting a token to the link's end."""
        try:
            token = await self._token_provider(self._force_new)
        except ConnectionClosedFatal as exc:
            return Drop(f"no access token: {exc}", fatal=exc)
        except Exception as exc:  # transient by contract (see the class docstring)
            # The traceback once per outage: enough to spot a bug, not a flood while down.
            self._provider_failures += 1
            self._log.warning(
                "token provider failed: %r", exc, exc_info=self._provider_failures == 1,
            )
            return Drop(f"could not get an access token: {exc}")
        self._force_new = False
        self._provider_failures = 0
        self._log.info("connecting to %s", self.url)
        extra: dict[str, Any] = {} if self._ssl is None else {"ssl": self._ssl}
        try:
            async with connect(
                self.url, ping_interval=None, max_size=_RECEIVE_LIMIT,
                open_timeout=_OPEN_TIMEOUT, close_timeout=_CLOSE_TIMEOUT, **extra,
            ) as ws:
                return await self._serve(ws, token)
        except InvalidURI as exc:
            return Drop(str(exc), fatal=InvalidEndpoint(f"bad server URL: {exc}"))
        except InvalidStatus as exc:
            status = exc.response.status_code
            if 400 <= status < 500 and status not in (408, 429):
                return Drop(str(exc), fatal=InvalidEndpoint(
                    f"the server refused the WebSocket connection to {self.url}: HTTP {status}"
                ))
            return Drop(f"server answered HTTP {status}")
        except (OSError, TimeoutError, WebSocketException) as exc:
            return Drop(f"cannot connect to {self.url}: {exc or type(exc).__name__}")

    async def _serve(self, ws: WebSocket, token: str) -> Drop:
        """Authenticate, then read and dispatch frames until the link ends (§3-§5)."""
        link = Link(ws, ClientProtocol(max_message_size=_RECEIVE_LIMIT))
        self._link = link
        try:
            link.proto.start(token, self.session_id, self._client_name)
            # Refused at once (server_busy), the server may have closed before our
            # Authenticate went out. Its Error, with the retry_after the reconnect policy
            # honours, is still to be read below.
            with contextlib.suppress(NotConnected):
                await link.flush()
            while True:
                try:
                    data = await asyncio.wait_for(ws.recv(decode=False), self._dead_after)
                except TimeoutError:
                    self._log.warning("no frame for %.1f s: the link is dead", self._dead_after)
                    await link.close(
                        CloseCode.GOING_AWAY,
                        f"no frame received from the server for {self._dead_after:g} s",
                    )
                    return link.drop()
                if self._log.isEnabledFor(logging.DEBUG):
                    self._log.debug("received a frame of %d bytes", len(data))
                link.proto.receive_data(data)
                for event in link.proto.events_received():
                    if await self._handle(link, event):
                        return link.drop()
        except (ConnectionClosed, NotConnected):
            return link.drop()
        finally:
            if self._link is link:
                self._link = None
            for task in link.tasks:
                task.cancel()
            if link.tasks:
                await asyncio.wait(link.tasks)

    async def _handle(self, link: Link, event: Message | ProtocolFailure) -> bool:
        """Act on one protocol event; True when the link must end (it was closed)."""
        if isinstance(event, ProtocolFailure):
            if link.error is not None and not link.online:
                # The server refused the authentication (§3); its Error says why.
                await link.close(CloseCode.NORMAL, link.error.message)
                link.reason = f"server refused the connection: {link.error.message}"
            else:
                self._log.warning("the server broke the protocol: %s", event.message)
                link.error = Error(event.code, event.message)
                await link.close(event.close_code, "protocol error")
                link.reason = f"bad message from the server: {event.message}"
            return True
        if isinstance(event, Welcome):
            return await self._opened(link, event)
        if isinstance(event, Error) and (
            not link.online or (event.ref is None and event.doc is None
                                and event.code in _CONNECTION_ERRORS)
        ):
            return await self._connection_error(link, event)
        if isinstance(event, Heartbeat):
            await link.send(HeartbeatAck(event.nonce))
        elif isinstance(event, HeartbeatAck):
            pass  # receiving it is the point: it feeds the dead_after watchdog
        elif isinstance(event, TokenRenewed):
            link.expires_at = self._token_expires_at = event.token_expires_at
            link.renewed.set()
            self._log.info("access token renewed, valid %.0f s more", link.remaining())
        else:
            if self._log.isEnabledFor(logging.DEBUG):
                self._log.debug("dispatch %s", type(event).__name__)
            try:
                await self._on_message(event)
            except Exception:
                self._log.exception("on_message failed for %s", type(event).__name__)
        return False

    async def _connection_error(self, link: Link, error: Error) -> bool:
        """An Error about the connection itself: remember it for the reconnect policy."""
        link.error = error
        if not link.online and link.proto.state is State.CLOSED:
            return False  # refused during authentication: the ProtocolFailure follows
        self._log.warning("server error %s: %s", error.code, error.message)
        if classify(None, error.code) is Disposition.RETRY:
            return False  # e.g. rate_limited: the server decides whether to close
        await link.close(CloseCode.NORMAL, error.message)
        link.reason = f"server error: {error.message}"
        return True

    async def _opened(self, link: Link, welcome: Welcome) -> bool:
        """Welcome received: start the timers, let the app core resync, go ONLINE."""
        self._welcome = welcome
        link.skew = welcome.server_time - time.time()
        link.expires_at = self._token_expires_at = welcome.token_expires_at
        interval = max(0.05, min(welcome.heartbeat_interval, self._dead_after / 2))
        link.tasks = [
            asyncio.create_task(self._guard(link, heartbeats(link, interval))),
            asyncio.create_task(self._guard(link, renewals(
                link, self._token_provider, self._renew_margin, self._log))),
        ]
        self._log.info(
            "authenticated as %s (%s), resumed=%s", welcome.user, welcome.role, welcome.resumed,
        )
        try:
            await self._on_open(welcome)
        except Exception as exc:
            self._log.exception("on_open failed; reconnecting")
            await link.close(CloseCode.NORMAL, "client failed to resync")
            link.reason = f"could not resync after connecting: {exc!r}"
            return True
        link.online = True
        self._set_status(Status(ConnectionState.ONLINE))
        return False

    async def _guard(self, link: Link, work: Coroutine[Any, Any, None]) -> None:
        """Run a helper of ``link``; if it fails (a bug), log it and end the link."""
        try:
            await work
        except NotConnected:
            return  # the link is ending; the reader reports why
        except Exception as exc:
            self._log.exception("connection helper failed")
            await link.close(CloseCode.INTERNAL_ERROR, "client error")
            link.reason = f"internal client error: {exc!r}"
