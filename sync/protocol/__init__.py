"""The Live Edit wire protocol: messages, their encoding and the connection state machines.

Sans-I/O: nothing here opens a socket or touches an event loop (docs/protocol.md).
"""

from .errors import (
    CloseCode,
    ErrorCode,
    InvalidFieldValue,
    LocalProtocolError,
    MalformedMessage,
    ProtocolError,
    RemoteProtocolError,
)

__all__ = [
    "CloseCode",
    "ErrorCode",
    "InvalidFieldValue",
    "LocalProtocolError",
    "MalformedMessage",
    "ProtocolError",
    "RemoteProtocolError",
]
