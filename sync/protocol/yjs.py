"""The y-websocket wire protocol, sans-I/O: parse what a Yjs client sends, build what it gets.

The ``/yjs/{customer_id}`` endpoint (docs/protocol.md §10) speaks the protocol of the
``y-websocket`` provider and its reference server, one document per connection. A frame is
one binary WebSocket message made of lib0 variable-length integers and byte strings:

=====================  ==========================================================
``[0, 0, sv]``         sync step 1: the sender's state vector
``[0, 1, update]``     sync step 2: what the receiver lacks, answering a step 1
``[0, 2, update]``     a document update
``[1, awareness]``     an awareness update (client id, clock, JSON state)*
``[2, 0, reason]``     permission denied (server to client, y-protocols ``auth``)
``[2, 1, token]``      authenticate with an access token (client to server; ours)
``[3]``                query awareness: please send every awareness state you know
=====================  ==========================================================

Writing uses pycrdt's lib0 helpers (var uints, length-prefixed bytes); strings are
encoded as UTF-8 bytes here because pycrdt's string writer counts characters, not bytes.
Reading is done here with bounds on every length: :func:`parse` raises only
:class:`MalformedMessage`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import IntEnum

from pycrdt import YMessageType, YSyncMessageType, write_message, write_var_uint

from .errors import MalformedMessage

__all__ = [
    "AUTH",
    "AUTH_PERMISSION_DENIED",
    "AUTH_TOKEN",
    "MAX_AWARENESS_CLIENTS",
    "MAX_AWARENESS_STATE",
    "QUERY_AWARENESS",
    "AuthToken",
    "AwarenessEntry",
    "AwarenessUpdate",
    "PermissionDenied",
    "QueryAwareness",
    "SyncStep1",
    "SyncStep2",
    "SyncUpdate",
    "YMessage",
    "YjsCloseCode",
    "auth_token",
    "awareness_relay",
    "awareness_update",
    "parse",
    "permission_denied",
    "query_awareness",
    "sync_step1",
    "sync_step2",
    "sync_update",
]

class YjsCloseCode(IntEnum):
    """Close codes of refusals on /yjs that retrying cannot fix.

    The stock y-websocket provider reconnects after any close except codes 4400-4499,
    which it takes as final (it stops and emits ``connection-close``): the application can
    then get a new token, put it in ``provider.params`` and call ``provider.connect()``.
    """

    BAD_REQUEST = 4400  # not a customer id
    UNAUTHORIZED = 4401  # no, forged or expired token: sign in again
    FORBIDDEN = 4403  # no access to this customer, or the account was disabled/changed


#: Message types beyond pycrdt's YMessageType (SYNC = 0, AWARENESS = 1).
AUTH = 2
QUERY_AWARENESS = 3
#: Sub-types of AUTH: y-protocols' permission-denied, and our token message.
AUTH_PERMISSION_DENIED = 0
AUTH_TOKEN = 1

#: Bounds on what one awareness update may carry (a client has one id; a few more allow
#: a provider that also relays others' states, as the reference client does on query).
MAX_AWARENESS_CLIENTS = 64
MAX_AWARENESS_STATE = 16 * 1024
_MAX_TOKEN = 8 * 1024
_MAX_REASON = 1000


@dataclass(frozen=True, slots=True)
class SyncStep1:
    """The sender's state vector: answer with what it lacks."""

    state_vector: bytes


@dataclass(frozen=True, slots=True)
class SyncStep2:
    """What the sender has that the receiver lacked (an update)."""

    update: bytes


@dataclass(frozen=True, slots=True)
class SyncUpdate:
    """One document update."""

    update: bytes


@dataclass(frozen=True, slots=True)
class AwarenessEntry:
    """One client's awareness: ``state`` is its JSON text, ``None`` when it left."""

    client_id: int
    clock: int
    state: str | None


@dataclass(frozen=True, slots=True)
class AwarenessUpdate:
    """An awareness update, parsed; ``payload`` is the encoded update as received."""

    entries: tuple[AwarenessEntry, ...]
    payload: bytes


@dataclass(frozen=True, slots=True)
class QueryAwareness:
    """The peer asks for every awareness state."""


@dataclass(frozen=True, slots=True)
class PermissionDenied:
    """The server refused access (only servers send it)."""

    reason: str


@dataclass(frozen=True, slots=True)
class AuthToken:
    """The client authenticates (or renews) with an access token."""

    token: str


YMessage = (
    SyncStep1 | SyncStep2 | SyncUpdate | AwarenessUpdate | QueryAwareness | AuthToken
    | PermissionDenied
)


class _Reader:
    """Bounds-checked lib0 reads (pycrdt's Decoder neither checks lengths nor bounds the
    size of a var uint, which a hostile frame could make megabytes long)."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def uint(self, what: str) -> int:
        value = shift = 0
        while True:
            if self._pos >= len(self._data):
                raise MalformedMessage(f"truncated {what}")
            byte = self._data[self._pos]
            self._pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7
            if shift > 49:  # lib0 numbers are at most 2**53 - 1
                raise MalformedMessage(f"{what} is out of range")

    def bytes(self, what: str) -> bytes:
        length = self.uint(f"length of {what}")
        end = self._pos + length
        if end > len(self._data):
            raise MalformedMessage(f"truncated {what}")
        data = self._data[self._pos:end]
        self._pos = end
        return data

    def text(self, what: str, limit: int) -> str:
        raw = self.bytes(what)
        if len(raw) > limit:
            raise MalformedMessage(f"{what} is longer than {limit} bytes")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedMessage(f"{what} is not valid UTF-8") from exc

    def end(self) -> None:
        if self._pos != len(self._data):
            raise MalformedMessage("trailing bytes after the message")


def parse(frame: bytes) -> YMessage:
    """Decode one frame (from either side); raises MalformedMessage (and only that)."""
    reader = _Reader(frame)
    kind = reader.uint("message type")
    message: YMessage
    if kind == YMessageType.SYNC:
        sub = reader.uint("sync message type")
        payload = reader.bytes("sync payload")
        if sub == YSyncMessageType.SYNC_STEP1:
            message = SyncStep1(payload)
        elif sub == YSyncMessageType.SYNC_STEP2:
            message = SyncStep2(payload)
        elif sub == YSyncMessageType.SYNC_UPDATE:
            message = SyncUpdate(payload)
        else:
            raise MalformedMessage(f"unknown sync message type {sub}")
    elif kind == YMessageType.AWARENESS:
        payload = reader.bytes("awareness update")
        message = AwarenessUpdate(_parse_awareness(payload), payload)
    elif kind == AUTH:
        sub = reader.uint("auth message type")
        if sub == AUTH_TOKEN:
            message = AuthToken(reader.text("token", _MAX_TOKEN))
        elif sub == AUTH_PERMISSION_DENIED:
            message = PermissionDenied(reader.text("reason", 4 * _MAX_REASON))
        else:
            raise MalformedMessage(f"unknown auth message type {sub}")
    elif kind == QUERY_AWARENESS:
        message = QueryAwareness()
    else:
        raise MalformedMessage(f"unknown message type {kind}")
    reader.end()
    return message


def _parse_awareness(payload: bytes) -> tuple[AwarenessEntry, ...]:
    reader = _Reader(payload)
    count = reader.uint("awareness client count")
    if count > MAX_AWARENESS_CLIENTS:
        raise MalformedMessage(f"an awareness update may name at most {MAX_AWARENESS_CLIENTS} "
                               "clients")
    entries = []
    for _ in range(count):
        client_id = reader.uint("awareness client id")
        clock = reader.uint("awareness clock")
        text = reader.text("awareness state", MAX_AWARENESS_STATE)
        try:
            state = json.loads(text) if text else None
        except ValueError as exc:
            raise MalformedMessage("an awareness state must be JSON") from exc
        entries.append(AwarenessEntry(client_id, clock, None if state is None else text))
    reader.end()
    return tuple(entries)


def _sync(sub: int, payload: bytes) -> bytes:
    return bytes([YMessageType.SYNC, sub]) + write_message(payload)


def sync_step1(state_vector: bytes) -> bytes:
    """``[0, 0, sv]``."""
    return _sync(YSyncMessageType.SYNC_STEP1, state_vector)


def sync_step2(update: bytes) -> bytes:
    """``[0, 1, update]``."""
    return _sync(YSyncMessageType.SYNC_STEP2, update)


def sync_update(update: bytes) -> bytes:
    """``[0, 2, update]``."""
    return _sync(YSyncMessageType.SYNC_UPDATE, update)


def awareness_update(entries: list[AwarenessEntry]) -> bytes:
    """``[1, awareness]`` for these entries (a ``None`` state encodes as ``null``)."""
    parts = [write_var_uint(len(entries))]
    for entry in entries:
        state = "null" if entry.state is None else entry.state
        parts += [write_var_uint(entry.client_id), write_var_uint(entry.clock),
                  write_message(state.encode("utf-8"))]
    return bytes([YMessageType.AWARENESS]) + write_message(b"".join(parts))


def awareness_relay(payload: bytes) -> bytes:
    """``[1, payload]``: relay an encoded awareness update as received."""
    return bytes([YMessageType.AWARENESS]) + write_message(payload)


def permission_denied(reason: str) -> bytes:
    """``[2, 0, reason]``: the y-protocols message a denied client receives."""
    return bytes([AUTH, AUTH_PERMISSION_DENIED]) + write_message(
        reason[:_MAX_REASON].encode("utf-8")
    )


def auth_token(token: str) -> bytes:
    """``[2, 1, token]``: a client's token message."""
    return bytes([AUTH, AUTH_TOKEN]) + write_message(token.encode("utf-8"))


def query_awareness() -> bytes:
    """``[3]``."""
    return bytes([QUERY_AWARENESS])
