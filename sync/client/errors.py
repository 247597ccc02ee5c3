"""Exceptions of the client connection (:mod:`sync.client`).

Exception hierarchy::

    ClientError                     root of everything sync.client raises
    ├── NotConnected                send()/wait_online() while the link is not usable; the
    │                               caller keeps its data queued and tries again when online
    ├── MessageTooBig               send(): the message is larger than the server accepts
    │                               (Welcome.max_message_size); retrying cannot help
    └── ConnectionClosedFatal       the connection stopped for good (status OFFLINE);
        │                           reconnecting with the same settings cannot succeed
        ├── AuthenticationFailed    the server refused the credentials (4003, auth_failed);
        │   │                       the user must sign in again
        │   └── AccessRevoked       the user's access was revoked (4006, access_revoked)
        ├── UnsupportedVersion      client and server share no protocol version (4004)
        ├── SessionReplaced         another connection took over this session id (4010)
        └── InvalidEndpoint         the URL is wrong or the HTTP handshake was refused (4xx)

A token provider (see :class:`sync.client.connection.ClientConnection`) raises
``AuthenticationFailed`` when it knows no token can be had (e.g. the refresh token was
rejected); any other exception from it is treated as transient and retried with backoff.

Exceptions caused by the server breaking the protocol are not raised to callers: the
connection logs them, closes and reconnects (docs/protocol.md §8).
"""

from __future__ import annotations

from sync.protocol.errors import ErrorCode

__all__ = [
    "AccessRevoked",
    "AuthenticationFailed",
    "ClientError",
    "ConnectionClosedFatal",
    "InvalidEndpoint",
    "MessageTooBig",
    "NotConnected",
    "SessionReplaced",
    "UnsupportedVersion",
]


class ClientError(Exception):
    """Root of every error raised by ``sync.client``."""


class NotConnected(ClientError):
    """The connection is not online; nothing was sent. Keep the data and retry later."""


class MessageTooBig(ClientError):
    """The encoded message exceeds the server's ``max_message_size``; nothing was sent."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"message of {size} bytes exceeds the server's {limit}-byte limit")
        self.size = size
        self.limit = limit


class ConnectionClosedFatal(ClientError):
    """The connection stopped and will not reconnect by itself.

    ``close_code`` and ``error_code`` are what the server said, when it said anything.
    """

    def __init__(
        self, message: str, *, close_code: int | None = None,
        error_code: ErrorCode | None = None,
    ) -> None:
        super().__init__(message)
        self.close_code = close_code
        self.error_code = error_code


class AuthenticationFailed(ConnectionClosedFatal):
    """The server refused the access token; sign in again to get new credentials."""


class AccessRevoked(AuthenticationFailed):
    """The user's access was revoked by an administrator."""


class UnsupportedVersion(ConnectionClosedFatal):
    """The server speaks no protocol version this client does; update the app."""


class SessionReplaced(ConnectionClosedFatal):
    """Another connection authenticated with this session id and took it over."""


class InvalidEndpoint(ConnectionClosedFatal):
    """The server URL is malformed, or the server refused the WebSocket handshake."""
