"""Assembly of the reference server: the ASGI app, its lifetime, and ``serve()``.

One port carries the WebSocket endpoints ``/ws`` (our protocol) and ``/yjs/{customer_id}``
(y-websocket) and the HTTP API. The app is served by
uvicorn (httptools for HTTP, the sans-I/O ``websockets`` implementation for WebSocket,
uvloop where available). ``serve()`` returns when SIGINT/SIGTERM stops the server, after
closing every connection with 1001 and committing everything queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import signal
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import uvicorn
from fastapi import FastAPI, WebSocket

from sync.protocol.errors import CloseCode

from .auth import AuthService
from .config import ServerConfig
from .http_api import install_http_api
from .hub import SyncHub
from .lock import server_lock
from .peer import WebSocketPeer
from .store import UpdateStore
from .ws import Connection
from .yjs import YjsConnection

__all__ = ["create_app", "serve"]

log = logging.getLogger(__name__)

SWEEP_INTERVAL = 0.5
REVOCATION_INTERVAL = 2.0
PURGE_INTERVAL = 600.0


def create_app(config: ServerConfig) -> FastAPI:
    """Build the ASGI app; storage opens in its lifespan."""
    store = UpdateStore(config.db_path, max_batch=config.max_batch)
    auth = AuthService(
        config.db_path, access_ttl=config.access_token_ttl, refresh_ttl=config.refresh_token_ttl
    )
    hub = SyncHub(config, store, auth)
    connections: set[WebSocketPeer] = set()

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        store.start()
        sweeper = asyncio.create_task(_sweep(hub, connections))
        try:
            yield
        finally:
            sweeper.cancel()
            for connection in list(connections):
                connection.close(CloseCode.GOING_AWAY, "server shutting down")
            await asyncio.sleep(0)
            await asyncio.to_thread(store.close)
            log.info("server stopped; %d updates committed in %d transactions",
                     hub.stats["updates"], store.commits)

    app = FastAPI(
        title="Live Edit reference server",
        version=_version(),
        description="HTTP API of the Live Edit sync server. The WebSocket protocol at /ws "
        "is described in docs/protocol.md.",
        lifespan=lifespan,
    )
    app.state.hub = hub
    app.state.connections = connections

    async def serve_peer(connection: WebSocketPeer) -> None:
        connections.add(connection)
        try:
            await connection.run()
        finally:
            connections.discard(connection)

    @app.websocket("/ws")
    async def websocket_endpoint(websocket: WebSocket) -> None:
        await serve_peer(Connection(hub, websocket))

    @app.websocket("/yjs/{customer_id}")
    async def yjs_endpoint(websocket: WebSocket, customer_id: str) -> None:
        await serve_peer(YjsConnection(hub, websocket, customer_id))

    install_http_api(app)
    return app


async def _sweep(hub: SyncHub, connections: set[WebSocketPeer]) -> None:
    """Deadlines, idle and token expiry for every connection; session grace; revocation;
    notification purge. One task for all connections keeps per-connection memory low."""
    last_revocation = last_purge = 0.0
    while True:
        await asyncio.sleep(SWEEP_INTERVAL)
        now = time.monotonic()
        for connection in list(connections):
            connection.sweep(now)
        hub.expire_sessions(now)
        if now - last_revocation >= REVOCATION_INTERVAL:
            last_revocation = now
            await _check_revocations(hub, connections)
        if now - last_purge >= PURGE_INTERVAL:
            last_purge = now
            purged = await asyncio.to_thread(hub.store.purge_notifications)
            if purged:
                log.info("purged %d expired notifications", purged)


async def _check_revocations(hub: SyncHub, connections: set[WebSocketPeer]) -> None:
    """Close connections whose account was disabled or changed since they authenticated."""
    by_user: dict[str, list[WebSocketPeer]] = {}
    for connection in connections:
        if connection.claims is not None:
            by_user.setdefault(connection.claims.username, []).append(connection)
    if not by_user:
        return
    users = await asyncio.to_thread(lambda: {u: hub.auth.get_user(u) for u in by_user})
    for username, conns in by_user.items():
        account = users[username]
        for connection in conns:
            claims = connection.claims
            if claims is None:
                continue
            if account is None or account.disabled:
                connection.revoke("your account was disabled")
            elif account.token_version != claims.token_version:
                connection.revoke("your account changed; sign in again")


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
    return uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        ws="websockets-sansio",
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


def serve(config: ServerConfig, ready: Callable[[str], None] | None = None) -> int:
    """Run the server until SIGINT/SIGTERM; ``ready(url)`` is called once it listens."""
    with server_lock(config.db_path, purpose="start the server"):
        server = _Server(uvicorn_config(create_app(config), config), ready)
        server.run()
    return 0 if server.started else 1
