"""Exceptions of the wire protocol, and the stable codes that travel on the wire.

Exception hierarchy (everything the protocol core raises)::

    ProtocolError                 root of sync.protocol's errors
    ├── MalformedMessage          bytes from the peer could not be decoded into a message
    │                             (truncated, oversized, wrong types, unknown kind)
    ├── RemoteProtocolError       the peer sent a well-formed message it may not send now
    ├── InvalidFieldValue         a customer field value breaks the document schema
    └── LocalProtocolError        our own code called the protocol out of order (a bug here)

``MalformedMessage`` and ``RemoteProtocolError`` are the peer's fault: the connection drivers
turn them into an ``Error`` message and a close code (see ``CloseCode``) and keep serving
others. ``LocalProtocolError`` is ours and is never sent to the peer.

``ErrorCode`` values are stable strings, part of the protocol (docs/protocol.md §7); the
human-readable message next to them may change. ``CloseCode`` values are the WebSocket close
codes the server uses (docs/protocol.md §8).
"""

from __future__ import annotations

from enum import IntEnum, StrEnum

__all__ = [
    "CloseCode",
    "ErrorCode",
    "InvalidFieldValue",
    "LocalProtocolError",
    "MalformedMessage",
    "ProtocolError",
    "RemoteProtocolError",
]


class ProtocolError(Exception):
    """Root of every error raised by ``sync.protocol``."""


class MalformedMessage(ProtocolError):
    """The bytes received are not a valid protocol message.

    Raised by :func:`sync.protocol.messages.decode` for anything it cannot turn into a
    message: bad encoding, truncation, a message larger than allowed, an unknown message
    kind, a field of the wrong type or out of bounds. It is the only exception the decoder
    raises.
    """


class RemoteProtocolError(ProtocolError):
    """The peer sent a valid message that the protocol does not allow at this point."""

    def __init__(self, message: str, code: ErrorCode, close_code: CloseCode | None) -> None:
        super().__init__(message)
        self.code = code
        self.close_code = close_code


class LocalProtocolError(ProtocolError):
    """This side used the protocol object wrongly (a bug in our code, not the peer's)."""


class ErrorCode(StrEnum):
    """Stable error codes carried by ``Error`` messages and HTTP error bodies."""

    BAD_MESSAGE = "bad_message"
    UNSUPPORTED_VERSION = "unsupported_version"
    AUTH_REQUIRED = "auth_required"
    AUTH_TIMEOUT = "auth_timeout"
    AUTH_FAILED = "auth_failed"
    TOKEN_EXPIRED = "token_expired"
    ACCESS_REVOKED = "access_revoked"
    FORBIDDEN = "forbidden"
    #: An update or patch changes a field (or notes, tasks, comments) the writer's role may
    #: not write (docs/protocol.md §7): nothing of it is kept; a client resyncs the document.
    WRITE_FORBIDDEN = "write_forbidden"
    UNKNOWN_DOCUMENT = "unknown_document"
    NOT_SUBSCRIBED = "not_subscribed"
    TOO_MANY_SUBSCRIPTIONS = "too_many_subscriptions"
    INVALID_UPDATE = "invalid_update"
    MISSING_DEPENDENCIES = "missing_dependencies"
    INVALID_VALUE = "invalid_value"
    RATE_LIMITED = "rate_limited"
    MESSAGE_TOO_BIG = "message_too_big"
    SERVER_BUSY = "server_busy"
    INTERNAL_ERROR = "internal_error"


class CloseCode(IntEnum):
    """WebSocket close codes used by the server (docs/protocol.md §8)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    TRY_AGAIN_LATER = 1013
    BAD_MESSAGE = 4000
    AUTH_TIMEOUT = 4001
    AUTH_FAILED = 4003
    UNSUPPORTED_VERSION = 4004
    TOKEN_EXPIRED = 4005
    ACCESS_REVOKED = 4006
    PROTOCOL_VIOLATION = 4007
    RATE_LIMITED = 4008
    HEARTBEAT_TIMEOUT = 4009
    SESSION_REPLACED = 4010


class InvalidFieldValue(ProtocolError):
    """A customer field was given a value it cannot hold (unknown field, wrong type, too
    long, badly formatted). ``field`` names it; the message says what is allowed."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
