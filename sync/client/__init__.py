"""The client's connection to the sync server: connect, authenticate, heartbeat, renew
the access token, reconnect with backoff (docs/protocol.md §3, §8).

A thin asyncio driver over the sans-I/O :mod:`sync.protocol`; the app core uses
:class:`ClientConnection` and shows :class:`Status` in the UI.
"""

from .backoff import Disposition, backoff, classify, renew_delay, retry_floor
from .connection import (
    ClientConnection,
    ConnectionState,
    MessageHandler,
    OpenHandler,
    Status,
    TokenProvider,
)
from .errors import (
    AccessRevoked,
    AuthenticationFailed,
    ClientError,
    ConnectionClosedFatal,
    InvalidEndpoint,
    MessageTooBig,
    NotConnected,
    SessionReplaced,
    UnsupportedVersion,
)

__all__ = [
    "AccessRevoked",
    "AuthenticationFailed",
    "ClientConnection",
    "ClientError",
    "ConnectionClosedFatal",
    "ConnectionState",
    "Disposition",
    "InvalidEndpoint",
    "MessageHandler",
    "MessageTooBig",
    "NotConnected",
    "OpenHandler",
    "SessionReplaced",
    "Status",
    "TokenProvider",
    "UnsupportedVersion",
    "backoff",
    "classify",
    "renew_delay",
    "retry_floor",
]
