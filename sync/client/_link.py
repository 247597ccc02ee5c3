"""What one connection attempt of :class:`sync.client.connection.ClientConnection` owns.

Private to :mod:`sync.client`. :class:`Link` pairs a WebSocket with its ``ClientProtocol``
and writes the protocol's frames one writer at a time; when the link ends, ``drop()``
summarises why as a :class:`Drop`, which is what the reconnect policy
(:mod:`sync.client.backoff`) needs, and ``fatal_error()`` turns a fatal drop into the
exception the user sees. :class:`ConnectionLog` is the per-connection ``LoggerAdapter``
that tags every record with the session id and the attempt number.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection as WebSocket
from websockets.exceptions import ConnectionClosed

from sync.protocol.connection import ClientProtocol, State
from sync.protocol.errors import CloseCode, ErrorCode
from sync.protocol.messages import Error, Message

from .errors import (
    AccessRevoked,
    AuthenticationFailed,
    ConnectionClosedFatal,
    NotConnected,
    SessionReplaced,
    UnsupportedVersion,
)

__all__ = ["ConnectionLog", "Drop", "Link", "fatal_error"]


@dataclass(slots=True)
class Drop:
    """Why one connection attempt ended, as the reconnect policy needs it."""

    reason: str
    close_code: int | None = None
    error_code: ErrorCode | None = None
    error_message: str | None = None
    retry_after: float | None = None
    online: bool = False
    fatal: ConnectionClosedFatal | None = None


class ConnectionLog(logging.LoggerAdapter[logging.Logger]):
    """Prefixes records with ``[session#attempt]`` and adds both as ``extra`` fields."""

    def __init__(self, base: logging.Logger, session_id: str) -> None:
        super().__init__(base, {"session_id": session_id})
        self.session_id = session_id
        self.number = 0

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any],
    ) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {"session_id": self.session_id, "connection": self.number}
        return f"[{self.session_id}#{self.number}] {msg}", kwargs


class Link:
    """One WebSocket and its protocol object: what a single connection attempt owns."""

    def __init__(self, ws: WebSocket, proto: ClientProtocol) -> None:
        self.ws = ws
        self.proto = proto
        self.lock = asyncio.Lock()
        self.online = False
        self.tasks: list[asyncio.Task[None]] = []
        # Token lifetime, on the server's clock (skew = server clock - ours).
        self.expires_at = 0.0
        self.skew = 0.0
        self.renewed = asyncio.Event()
        # What the policy needs to know when this link ends.
        self.reason: str | None = None
        self.error: Error | None = None
        self.local_close: int | None = None
        self.fatal: ConnectionClosedFatal | None = None

    def remaining(self) -> float:
        """Seconds until the access token expires, by the server's clock."""
        return self.expires_at - (time.time() + self.skew)

    async def send(self, message: Message) -> None:
        """Queue ``message`` on the protocol and write it (OPEN only)."""
        if self.proto.state is not State.OPEN:
            raise NotConnected("the connection is not open")
        self.proto.send(message)
        await self.flush()

    async def send_frame(self, frame: bytes) -> None:
        """Queue an already encoded message on the protocol and write it (OPEN only)."""
        if self.proto.state is not State.OPEN:
            raise NotConnected("the connection is not open")
        self.proto.send_encoded(frame)
        await self.flush()

    async def flush(self) -> None:
        """Write every frame the protocol has queued, in order (one writer at a time)."""
        async with self.lock:
            for data in self.proto.data_to_send():
                try:
                    await self.ws.send(data)
                except ConnectionClosed as exc:
                    raise NotConnected(f"the connection closed: {exc}") from exc

    async def close(self, code: int, reason: str) -> None:
        """Start (and await) the closing handshake; the reader then sees ConnectionClosed."""
        self.local_close = code
        self.reason = self.reason or reason
        await self.ws.close(code, reason[:120])

    def drop(self) -> Drop:
        """Summarise why this link ended."""
        code = self.ws.close_code if self.ws.close_code is not None else self.local_close
        reason = self.reason
        if reason is None:
            rcvd = self.ws.close_reason
            if code is None or code == 1006:
                reason = "connection lost"
            else:
                reason = f"server closed the connection ({code}{': ' + rcvd if rcvd else ''})"
        error = self.error
        return Drop(
            reason, close_code=code,
            error_code=error.code if error else None,
            error_message=error.message if error else None,
            retry_after=error.retry_after if error else None,
            online=self.online, fatal=self.fatal,
        )


def fatal_error(drop: Drop) -> ConnectionClosedFatal:
    """The exception that tells the user why the server refused us for good."""
    code, err = drop.close_code, drop.error_code
    detail = drop.error_message or drop.reason
    kw: dict[str, Any] = {"close_code": code, "error_code": err}
    if err is ErrorCode.ACCESS_REVOKED or code == CloseCode.ACCESS_REVOKED:
        return AccessRevoked(f"access revoked: {detail}", **kw)
    if err is ErrorCode.AUTH_FAILED or code == CloseCode.AUTH_FAILED:
        return AuthenticationFailed(f"authentication failed: {detail}", **kw)
    if err is ErrorCode.UNSUPPORTED_VERSION or code == CloseCode.UNSUPPORTED_VERSION:
        return UnsupportedVersion(f"incompatible server: {detail}", **kw)
    if code == CloseCode.SESSION_REPLACED:
        return SessionReplaced(
            "another connection took over this session (the app is open elsewhere?)", **kw,
        )
    return ConnectionClosedFatal(detail, **kw)
