"""Assembly of the reference server: the ASGI app, its lifetime, and ``serve()``.

One port carries the WebSocket endpoints ``/ws`` (our protocol) and ``/yjs/{customer_id}``
(y-websocket) and the HTTP API. The app is served by
uvicorn (httptools for HTTP, the sans-I/O ``websockets`` implementation for WebSocket in
a leaner subclass, ``uvicorn_ws.LeanWebSocketProtocol``, uvloop where available).
``serve()`` returns when SIGINT/SIGTERM stops the server, after
closing every connection with 1001 and committing everything queued.

Admission control (:class:`Admission`) refuses new WebSocket connections while too many are
authenticating or open, telling the client when to come back; the sweeper also evicts
documents nobody uses (``room_idle_timeout``, ``max_loaded_rooms``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.util
import logging
import random
import signal
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, WebSocket
from starlette.websockets import WebSocketDisconnect

from sync.protocol import yjs
from sync.protocol.errors import CloseCode, ErrorCode
from sync.protocol.messages import Error, encode

from .auth import AuthService
from .bus import new_node_id
from .config import ServerConfig
from .errors import DatabaseError
from .events_stream import install_event_streams
from .http_api import install_http_api
from .hub import SyncHub
from .lock import server_lock
from .operations import install_operations
from .peer import WebSocketPeer
from .registry import DeadlineWheel, PeerRegistry
from .storage import is_postgres_url, open_engine
from .uvicorn_ws import LeanWebSocketProtocol
from .web_app import install_web_app
from .ws import Connection
from .yjs import YjsConnection

__all__ = ["create_app", "serve"]

log = logging.getLogger(__name__)

SWEEP_INTERVAL = 0.5
#: Every node checks its connections' accounts this often: a disabled account or changed
#: role closes its connections on every node within about this long (docs/deploy.md).
REVOCATION_INTERVAL = 1.0
#: How often the sweeper probes the database (Admission.database_down, /readyz).
HEALTH_INTERVAL = 1.0
PURGE_INTERVAL = 600.0
#: Refused connections are logged as one summary line at most this often.
REFUSAL_REPORT_INTERVAL = 10.0


class Admission:
    """Admission control for WebSocket connections (reconnect storms, floods).

    A new connection is refused while ``max_connections`` are open or
    ``max_authenticating`` have not finished authenticating yet (token not checked, or not
    even sent): /ws gets ``Error(server_busy, retry_after)`` and close 1013, /yjs
    permission-denied and 1013. ``retry_after`` is drawn from [S, 2 S] so that clients
    refused together do not come back together.
    """

    def __init__(self, config: ServerConfig, connections: set[WebSocketPeer],
                 write_failure: Callable[[], str | None] = lambda: None) -> None:
        self.config = config
        self.connections = connections
        #: The same connections on the sweeper's deadline wheel and by account.
        self.registry = PeerRegistry(
            connections, DeadlineWheel(SWEEP_INTERVAL, time.monotonic()))  # type: ignore[arg-type]
        #: Why the database cannot be used (set by the sweeper's probe); None: it can.
        self.database_down: str | None = None
        #: Why the last write failed, at once (before the next probe), or None.
        self.write_failure = write_failure
        #: Connections admitted but not authenticated when last looked at (pruned lazily).
        self._authenticating: set[WebSocketPeer] = set()
        self.refused = 0

    def busy(self) -> str | None:
        """Why a new connection must be refused now, or None to admit it."""
        config = self.config
        down = self.database_down or self.write_failure()
        if down is not None:
            self.database_down = down
            return f"the database is unavailable ({down})"
        if len(self.connections) >= config.max_connections:
            return f"the server has {len(self.connections)} connections"
        if len(self._authenticating) >= config.max_authenticating:
            self._authenticating = {
                c for c in self._authenticating if c.claims is None and not c.closing
            }
            if len(self._authenticating) >= config.max_authenticating:
                return f"{len(self._authenticating)} connections are authenticating"
        return None

    def admit(self, connection: WebSocketPeer) -> None:
        """Count a connection that is about to be served (and put it on the wheel)."""
        connection.registry = self.registry
        self.registry.add(connection, time.monotonic())
        self._authenticating.add(connection)

    def leave(self, connection: WebSocketPeer) -> None:
        """The connection is gone."""
        self.registry.discard(connection)
        connection.registry = None
        self._authenticating.discard(connection)

    def retry_after(self) -> float:
        """Seconds a refused client should wait: jittered, one decimal."""
        return round(self.config.busy_retry_after * (1.0 + random.random()), 1)

    async def refuse(self, websocket: WebSocket, yjs_endpoint: bool, why: str) -> None:
        """Tell the client to come back later, and close with 1013 (docs/protocol.md §8)."""
        self.refused += 1
        retry_after = self.retry_after()
        text = (f"the server cannot reach its database; retry in {retry_after:g} s"
                if self.database_down is not None
                else f"the server is busy; retry in {retry_after:g} s")
        log.debug("refusing a connection: %s", why)
        frame = (yjs.permission_denied(text) if yjs_endpoint else
                 encode(Error(ErrorCode.SERVER_BUSY, text, retry_after=retry_after)))
        try:
            await websocket.accept()
            await websocket.send_bytes(frame)
            await websocket.close(CloseCode.TRY_AGAIN_LATER, text)
        except (WebSocketDisconnect, RuntimeError, OSError) as exc:
            log.debug("refused connection went away: %s", exc)


def create_app(config: ServerConfig) -> FastAPI:
    """Build the ASGI app; storage opens in its lifespan."""
    # The bus ignores a node's own signals by this id: unique per process, even when an
    # operator gives two nodes the same --node-id.
    node_id = f"{config.node_id}-{new_node_id()[:8]}" if config.node_id else new_node_id()
    engine = open_engine(config.db_path, node_id=node_id, max_batch=config.max_batch)
    auth = AuthService(
        config.db_path, access_ttl=config.access_token_ttl, refresh_ttl=config.refresh_token_ttl
    )
    hub = SyncHub(config, engine, auth)
    connections: set[WebSocketPeer] = set()
    # Where several nodes share the database, a failed write refuses new connections at
    # once (the load balancer sends them to a node that can write); the probe clears it.
    admission = Admission(config, connections, (lambda: engine.failed) if
                          engine.capabilities.multi_node else (lambda: None))

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await engine.start()
        await operations.start()
        sweeper = asyncio.create_task(_sweep(hub, connections, admission))
        prober = asyncio.create_task(_probe_database(hub, admission))
        try:
            yield
        finally:
            sweeper.cancel()
            prober.cancel()
            await operations.stop()
            for connection in list(connections):
                connection.close(CloseCode.GOING_AWAY, "server shutting down")
            await asyncio.sleep(0)
            hub.flush()  # what the last loop turn accepted is committed before closing
            await engine.close()
            await asyncio.to_thread(auth.close)
            log.info("server stopped; %d updates accepted", hub.stats["updates"])

    app = FastAPI(
        title="Live Edit reference server",
        version=_version(),
        description="HTTP API of the Live Edit sync server. The WebSocket protocol at /ws "
        "is described in docs/protocol.md.",
        lifespan=lifespan,
    )
    app.state.hub = hub
    app.state.connections = connections
    app.state.admission = admission

    # /ws and /yjs are served by WebSocketFront (below), around FastAPI's routing.
    operations = install_operations(app, config, hub, connections, admission)
    install_http_api(app)
    install_event_streams(app)
    install_web_app(app)
    return app


class WebSocketFront:
    """The ASGI app uvicorn serves: ``/ws`` and ``/yjs/{customer_id}`` are served here,
    everything else (HTTP, lifespan, unknown WebSocket paths) by FastAPI.

    Around FastAPI's routing and middleware, a connection holds two suspended coroutine
    frames of ours (this call and the peer's receive loop) instead of about fifteen (memory
    per connection), and the socket's ASGI ``send`` is uvicorn's own, which lets
    ``peer.write_direct`` write frames without a coroutine chain each (the cost of a
    fan-out). Admission control first (``Admission``), then the peer runs until it closes.
    """

    def __init__(self, api: FastAPI) -> None:
        self.api = api
        self._hub: SyncHub = api.state.hub
        self._admission: Admission = api.state.admission

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            await self.api(scope, receive, send)
            return
        path: str = scope["path"]
        yjs_endpoint = path.startswith("/yjs/") and "/" not in path[5:]
        if path != "/ws" and not yjs_endpoint:
            await self.api(scope, receive, send)
            return
        websocket = WebSocket(scope, receive, send)
        admission = self._admission
        why = admission.busy()
        if why is not None:
            await admission.refuse(websocket, yjs_endpoint, why)
            return
        peer: WebSocketPeer = (YjsConnection(self._hub, websocket, path[5:]) if yjs_endpoint
                               else Connection(self._hub, websocket))
        admission.admit(peer)
        try:
            await peer.run()
        finally:
            admission.leave(peer)


async def _probe_database(hub: SyncHub, admission: Admission) -> None:
    """Probe the database every HEALTH_INTERVAL (Admission.database_down, /readyz). Its own
    task: a sweep waiting on a write barrier never keeps a node unready, nor ready."""
    while True:
        try:
            admission.database_down = await hub.engine.check()
        except Exception:  # logged with its traceback; the node reads as down
            log.exception("the database probe failed unexpectedly; the node is not ready")
            admission.database_down = "the database probe failed (see the server log)"
        await asyncio.sleep(HEALTH_INTERVAL)


async def _sweep(hub: SyncHub, connections: set[WebSocketPeer], admission: Admission) -> None:
    """The sweeper's loop: one :func:`_sweep_once` every SWEEP_INTERVAL. A sweep that fails
    is logged with its traceback and the next one runs: deadlines and eviction never stop."""
    state = _SweepState()
    try:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            try:
                await _sweep_once(hub, connections, admission, state)
            except Exception:  # logged; a later sweep retries what this one missed
                log.exception("a sweep failed; the next one runs in %g s", SWEEP_INTERVAL)
    finally:
        if state.revoking is not None:
            state.revoking.cancel()


@dataclass(slots=True)
class _SweepState:
    last_revocation: float = 0.0
    last_purge: float = 0.0
    last_refusals: float = 0.0
    refused: int = 0
    #: The revocation check under way: its own task, so that a read of the accounts that
    #: waits on the database never holds the deadlines back; at most one at a time.
    revoking: asyncio.Task[None] | None = None


async def _sweep_once(hub: SyncHub, connections: set[WebSocketPeer], admission: Admission,
                      state: _SweepState) -> None:
    """Deadlines, idle and token expiry for every connection; session grace; room eviction;
    revocation; notification purge. One task for all connections keeps per-connection
    memory low."""
    now = time.monotonic()
    admission.registry.wheel.run_due(now)  # only the connections with a deadline due
    hub.expire_sessions(now)
    if hub.cluster is not None:
        hub.cluster.sweep(now)
    await _evict_rooms(hub, now)
    if admission.refused != state.refused and now - state.last_refusals >= REFUSAL_REPORT_INTERVAL:
        log.warning("server busy: refused %d connections since the last report (%d open)",
                    admission.refused - state.refused, len(connections))
        state.refused, state.last_refusals = admission.refused, now
    if (now - state.last_revocation >= REVOCATION_INTERVAL and admission.database_down is None
            and (state.revoking is None or state.revoking.done())):
        state.last_revocation = now
        state.revoking = asyncio.create_task(_revocation_pass(hub, admission.registry),
                                             name="liveedit-revocations")
    if now - state.last_purge >= PURGE_INTERVAL and admission.database_down is None:
        state.last_purge = now
        try:
            purged = await hub.engine.purge_notifications()
        except DatabaseError as exc:
            log.warning("notification purge skipped: %s", exc)
            purged = 0
        if purged:
            log.info("purged %d expired notifications", purged)


async def _evict_rooms(hub: SyncHub, now: float) -> None:
    """Evict documents nobody uses (rooms.py RoomRegistry): idle for room_idle_timeout, or
    the least recently used ones past max_loaded_rooms. A write barrier first, so that what
    an evicted room logged is durable and a reload reads the same document."""
    rooms, idle_after = hub.rooms, hub.config.room_idle_timeout
    if not rooms.idle(now, idle_after):
        return
    mark = hub.last_seq  # numbered in memory (SQLite): submitted before the barrier
    try:
        await hub.barrier()
    except DatabaseError as exc:  # the writer failed: keep every room (they reload after a drop)
        log.error("write barrier failed, no room is evicted: %s", exc)
        return
    if hub.numbers_at_commit:  # numbers seen after the barrier are all committed
        mark = hub.last_seq
    rooms.durable_seq = max(rooms.durable_seq, mark)
    evicted = rooms.evict_idle(time.monotonic(), idle_after)
    if evicted:
        log.debug("evicted %d idle documents; %d loaded", evicted, len(rooms))


async def _revocation_pass(hub: SyncHub, registry: PeerRegistry) -> None:
    """One revocation check; a database error is logged and the next interval tries again
    (anything else is logged with its traceback: the checks must go on)."""
    try:
        await _check_revocations(hub, registry)
    except DatabaseError as exc:
        log.warning("revocation check skipped: %s", exc)
    except Exception:
        log.exception("the revocation check failed; the next one runs in %g s",
                      REVOCATION_INTERVAL)


async def _check_revocations(hub: SyncHub, registry: PeerRegistry) -> None:
    """Close connections whose account was disabled or changed since they authenticated.

    Reads the accounts of the registry's index (``by_account``, kept as connections
    authenticate) and visits only the connections of an account that changed, so idle
    connections cost nothing here."""
    if not registry.by_account:
        return
    asked = registry.usernames()
    users = await asyncio.to_thread(hub.auth.get_users, asked)
    asked_about = set(asked)
    for (username, token_version), peers in list(registry.by_account.items()):
        if username not in asked_about:  # authenticated during the read: checked then
            continue
        account = users.get(username)
        if account is None or account.disabled:
            reason = "your account was disabled"
        elif account.token_version != token_version:
            reason = "your account changed; sign in again"
        else:
            continue
        for peer in list(peers):
            connection: WebSocketPeer = peer  # type: ignore[assignment]
            connection.revoke(reason)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("liveedit")
    except PackageNotFoundError:
        return "0+unknown"


class _Server(uvicorn.Server):
    """uvicorn's server, telling the caller the bound address once it listens."""

    def __init__(self, config: uvicorn.Config, ready: Callable[[str], None] | None) -> None:
        super().__init__(config)
        self._ready = ready

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Stop gracefully on SIGINT/SIGTERM and exit 0 (uvicorn re-raises the signal)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        stops = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in stops}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.should_exit or self._ready is None:
            return
        for server in self.servers:
            for sock in server.sockets:
                host, port = sock.getsockname()[:2]
                scheme = "https" if self.config.ssl_certfile else "http"
                self._ready(f"{scheme}://{host}:{port}")
                return


def uvicorn_config(app: Any, config: ServerConfig) -> uvicorn.Config:
    """uvicorn settings for our app (one source for serve() and embedding)."""
    if isinstance(app, FastAPI) and hasattr(app.state, "admission"):
        app = WebSocketFront(app)
    return uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        # uvicorn's "websockets-sansio" protocol with less state per connection (issue 14).
        ws=LeanWebSocketProtocol,
        http="httptools",
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        # Frames up to twice the limit reach ServerProtocol, which answers
        # Error(message_too_big) and closes with 1009 in an orderly way (docs/protocol.md
        # §2). uvicorn's own limit closes the socket with the frame's rest unread, so the
        # kernel resets the connection and the client often never sees the 1009.
        ws_max_size=2 * config.max_message_size,
        # Compression costs more CPU than it saves bytes on small CRDT updates (the Node
        # reference server leaves it off too).
        ws_per_message_deflate=False,
        ws_ping_interval=None,
        ws_ping_timeout=None,
        lifespan="on",
        log_config=None,
        access_log=False,
        server_header=False,
        ssl_certfile=str(config.tls_cert) if config.tls_cert else None,
        ssl_keyfile=str(config.tls_key) if config.tls_key else None,
        ssl_version=ssl.PROTOCOL_TLS_SERVER,
        timeout_graceful_shutdown=5,
        backlog=4096,
    )


def serve(
    config: ServerConfig, ready: Callable[[str], None] | None = None,
    metrics_ready: Callable[[str], None] | None = None,
) -> int:
    """Run the server until SIGINT/SIGTERM; ``ready(url)`` is called once it listens, then
    ``metrics_ready(url)`` with the metrics listener's URL if ``--metrics-port`` is set."""
    location = config.db_path
    shared = isinstance(location, str) and is_postgres_url(location)
    lock = contextlib.nullcontext() if shared else server_lock(
        Path(location), purpose="start the server")
    with lock:
        app = create_app(config)

        def announce(url: str) -> None:
            # Everything built so far (modules, app, routes: ~90k objects) lives as long as
            # the process: keep it out of the cyclic collector's full passes, which under a
            # backlog of in-flight updates rescanned them each time (bench/server_acks.py:
            # full GC 1.05 s -> 0.76 s per run).
            gc.collect()
            gc.freeze()
            if ready is not None:
                ready(url)
            metrics_server = app.state.operations.metrics_server
            if metrics_ready is not None and metrics_server is not None:
                metrics_ready(metrics_server.url)

        server = _Server(uvicorn_config(app, config), announce)
        server.run()
    return 0 if server.started else 1
