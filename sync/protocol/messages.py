"""Wire messages of the Live Edit sync protocol and their binary encoding.

Every WebSocket message is one binary frame holding one protocol message, encoded with
MessagePack as an array ``[kind, field1, field2, ...]`` (docs/protocol.md §2). Messages are
frozen dataclasses; :func:`encode` turns one into bytes and :func:`decode` turns bytes back,
checking every field's type and bounds. ``decode`` raises :class:`MalformedMessage` and
nothing else, whatever the bytes.

Document updates and state vectors are pycrdt's (Yjs-compatible, update format v1) bytes,
carried opaquely.
"""

from __future__ import annotations

import reprlib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from enum import IntEnum, StrEnum
from typing import Any, ClassVar, NamedTuple

import msgpack

from . import schema
from .errors import ErrorCode, MalformedMessage
from .wire_values import (
    _MAX_DIRECTORY_COLUMNS,
    _MAX_DIRECTORY_TEXT,
    _NAME,
    _SEQ,
    _SESSION,
    DIRECTORY_FEED,
    PresenceState,
    PresenceValue,
    Validator,
    _bool,
    _bytes,
    _directory_fields,
    _doc_id,
    _enum,
    _float,
    _int,
    _Invalid,
    _list,
    _opt,
    _presence_state,
    _str,
    _sub_id,
    _uuid,
    customer_doc_id,
    customer_id_of,
    is_doc_id,
)

__all__ = [
    "DIRECTORY_FEED",
    "MAX_MESSAGE_SIZE",
    "PROTOCOL_VERSION",
    "SERVER_VERSIONS",
    "SUPPORTED_VERSIONS",
    "Ack",
    "Authenticate",
    "DirectoryChanges",
    "DirectoryEntry",
    "DirectoryPage",
    "DirectoryRows",
    "DirectorySubscribe",
    "Error",
    "Heartbeat",
    "HeartbeatAck",
    "Message",
    "MessageKind",
    "Notification",
    "NotificationKind",
    "Notifications",
    "Presence",
    "PresenceChanged",
    "PresenceState",
    "PresenceValue",
    "ReadNotifications",
    "RemoteUpdate",
    "RenewToken",
    "Subscribe",
    "Subscribed",
    "SyncStep1",
    "SyncStep2",
    "TokenRenewed",
    "Unsubscribe",
    "Update",
    "Welcome",
    "customer_doc_id",
    "customer_id_of",
    "decode",
    "encode",
    "is_doc_id",
    "kind_of",
]

#: The protocol version this code speaks; client and server negotiate it (§3).
#: Version 2: ``DirectoryEntry`` carries the directory columns as a map (§4).
#: Version 3: the directory pass comes as ``DirectoryPage`` (column arrays, §4, §6).
PROTOCOL_VERSION = 3
#: What a client offers and accepts.
SUPPORTED_VERSIONS: tuple[int, ...] = (3,)
#: What a server accepts: version 2 too, so desktop apps not yet upgraded keep working through
#: a server upgrade; to a version-2 session the directory pass comes as ``DirectoryChanges``.
SERVER_VERSIONS: tuple[int, ...] = (2, 3)

#: Default largest encoded message accepted, in bytes (§8). The server may lower or raise it.
MAX_MESSAGE_SIZE = 1_048_576



class MessageKind(IntEnum):
    """The first element of every encoded message (§4)."""

    AUTHENTICATE = 1
    WELCOME = 2
    RENEW_TOKEN = 3
    TOKEN_RENEWED = 4
    SUBSCRIBE = 10
    SUBSCRIBED = 11
    UNSUBSCRIBE = 12
    SYNC_STEP1 = 20
    SYNC_STEP2 = 21
    UPDATE = 22
    REMOTE_UPDATE = 23
    ACK = 24
    PRESENCE = 30
    PRESENCE_CHANGED = 31
    NOTIFICATION = 40
    READ_NOTIFICATIONS = 41
    NOTIFICATIONS = 42
    DIRECTORY_SUBSCRIBE = 50
    DIRECTORY_CHANGES = 51
    DIRECTORY_PAGE = 52
    ERROR = 60
    HEARTBEAT = 70
    HEARTBEAT_ACK = 71


class NotificationKind(StrEnum):
    """What a notification reports (§6)."""

    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"
    RESTORED = "restored"
    COMMENTED = "commented"
    JOINED = "joined"
    LEFT = "left"




# --- messages ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Message:
    """Base of every wire message. ``KIND`` and ``SCHEMA`` describe the encoding."""

    KIND: ClassVar[MessageKind]
    SCHEMA: ClassVar[tuple[Validator, ...]]


@dataclass(frozen=True, slots=True)
class Authenticate(Message):
    """Client → server, first message: who I am and which versions I speak (§3)."""

    versions: tuple[int, ...]
    token: str
    session_id: str
    client: str = ""
    KIND = MessageKind.AUTHENTICATE
    SCHEMA = (_list(_int(1, 65535), 16), _str(8192), _SESSION, _str(200))


@dataclass(frozen=True, slots=True)
class Welcome(Message):
    """Server → client: authentication accepted (§3).

    ``resumed`` tells that the session id was known and its ``subscriptions`` are active
    again without a Subscribe; the client still syncs each document (SyncStep1).
    """

    version: int
    session_id: str
    user: str
    role: str
    customer_id: str | None
    resumed: bool
    subscriptions: tuple[str, ...]
    token_expires_at: float
    heartbeat_interval: float
    max_message_size: int
    max_subscriptions: int
    server_time: float
    KIND = MessageKind.WELCOME
    SCHEMA = (
        _int(1, 65535), _SESSION, _NAME, _str(32), _opt(_str(64)), _bool,
        _list(_sub_id), _float, _float, _int(1), _int(1), _float,
    )


@dataclass(frozen=True, slots=True)
class RenewToken(Message):
    """Client → server: a fresh access token for the same user, before the old expires."""

    token: str
    KIND = MessageKind.RENEW_TOKEN
    SCHEMA = (_str(8192),)


@dataclass(frozen=True, slots=True)
class TokenRenewed(Message):
    """Server → client: the renewed token is in force until ``token_expires_at``."""

    token_expires_at: float
    KIND = MessageKind.TOKEN_RENEWED
    SCHEMA = (_float,)


@dataclass(frozen=True, slots=True)
class Subscribe(Message):
    """Client → server: start receiving these documents (or ``DIRECTORY_FEED``)."""

    docs: tuple[str, ...]
    KIND = MessageKind.SUBSCRIBE
    SCHEMA = (_list(_sub_id, 1000),)


@dataclass(frozen=True, slots=True)
class Subscribed(Message):
    """Server → client: these subscriptions are now active."""

    docs: tuple[str, ...]
    KIND = MessageKind.SUBSCRIBED
    SCHEMA = (_list(_sub_id, 1000),)


@dataclass(frozen=True, slots=True)
class Unsubscribe(Message):
    """Client → server: stop receiving these documents."""

    docs: tuple[str, ...]
    KIND = MessageKind.UNSUBSCRIBE
    SCHEMA = (_list(_sub_id, 1000),)


@dataclass(frozen=True, slots=True)
class SyncStep1(Message):
    """Either way: my state vector of ``doc``; answer with a SyncStep2 (or an Update)."""

    doc: str
    state_vector: bytes
    KIND = MessageKind.SYNC_STEP1
    SCHEMA = (_doc_id, _bytes())


@dataclass(frozen=True, slots=True)
class SyncStep2(Message):
    """Server → client: everything of ``doc`` missing from the client's state vector.

    ``seq`` is the server's latest log sequence number for the document.
    """

    doc: str
    update: bytes
    seq: int
    KIND = MessageKind.SYNC_STEP2
    SCHEMA = (_doc_id, _bytes(), _SEQ)


@dataclass(frozen=True, slots=True)
class Update(Message):
    """Client → server: a document update; ``ref`` comes back in the Ack (§5)."""

    doc: str
    ref: int
    update: bytes
    KIND = MessageKind.UPDATE
    SCHEMA = (_doc_id, _int(), _bytes())


@dataclass(frozen=True, slots=True)
class RemoteUpdate(Message):
    """Server → client: an update another session wrote, with its log sequence number."""

    doc: str
    seq: int
    update: bytes
    author: str
    time: float
    KIND = MessageKind.REMOTE_UPDATE
    SCHEMA = (_doc_id, _SEQ, _bytes(), _NAME, _float)


@dataclass(frozen=True, slots=True)
class Ack(Message):
    """Server → client: the update ``ref`` is durably committed as ``seq``."""

    doc: str
    ref: int
    seq: int
    KIND = MessageKind.ACK
    SCHEMA = (_doc_id, _int(), _SEQ)


@dataclass(frozen=True, slots=True)
class Presence(Message):
    """Client → server: my presence on ``doc`` (``state`` None: I left)."""

    doc: str
    state: PresenceState | None
    KIND = MessageKind.PRESENCE
    SCHEMA = (_doc_id, _opt(_presence_state))


@dataclass(frozen=True, slots=True)
class PresenceChanged(Message):
    """Server → client: ``user``'s session changed presence on ``doc`` (None: gone)."""

    doc: str
    session_id: str
    user: str
    state: PresenceState | None
    KIND = MessageKind.PRESENCE_CHANGED
    SCHEMA = (_doc_id, _SESSION, _NAME, _opt(_presence_state))


@dataclass(frozen=True, slots=True)
class Notification(Message):
    """Server → client: something happened to a document (§6). Also a record in lists."""

    seq: int
    doc: str
    kind: NotificationKind
    actor: str
    time: float
    fields: tuple[str, ...]
    title: str | None
    KIND = MessageKind.NOTIFICATION
    SCHEMA = (
        _SEQ, _doc_id, _enum(NotificationKind), _NAME, _float, _list(_str(64), 64),
        _opt(_str(512)),
    )


@dataclass(frozen=True, slots=True)
class ReadNotifications(Message):
    """Client → server: notifications after ``since`` on my subscriptions (§6)."""

    since: int
    limit: int = 500
    KIND = MessageKind.READ_NOTIFICATIONS
    SCHEMA = (_SEQ, _int(1, 5000))


@dataclass(frozen=True, slots=True)
class Notifications(Message):
    """Server → client: a page of notifications; ``more`` when another page follows."""

    items: tuple[Notification, ...]
    latest: int
    more: bool
    KIND = MessageKind.NOTIFICATIONS
    SCHEMA: ClassVar[tuple[Validator, ...]]


@dataclass(frozen=True, slots=True)
class DirectoryEntry(Message):
    """One customer in the directory feed (a record inside DirectoryChanges).

    ``fields`` holds the directory columns of the field table
    (:func:`sync.protocol.schema.directory_fields`), name → value, in table order. On the
    wire it is a map, so a column added to one side's table alone is ignored by the other
    (and a column the sender lacks decodes as null), docs/protocol.md §4.
    """

    customer_id: str
    fields: Mapping[str, str | None]
    updated_at: float
    deleted: bool
    cursor: int
    KIND = MessageKind.DIRECTORY_CHANGES  # records are never sent alone
    SCHEMA = (_uuid, _directory_fields, _float, _bool, _SEQ)

    def value(self, name: str) -> str | None:
        """One column's value (None when null or not a column)."""
        return self.fields.get(name)


@dataclass(frozen=True, slots=True)
class DirectorySubscribe(Message):
    """Client → server: send the directory changes after ``cursor``, then live ones."""

    cursor: int
    KIND = MessageKind.DIRECTORY_SUBSCRIBE
    SCHEMA = (_SEQ,)


@dataclass(frozen=True, slots=True)
class DirectoryChanges(Message):
    """Server → client: directory entries changed, up to ``cursor``; ``more`` pages follow."""

    entries: tuple[DirectoryEntry, ...]
    cursor: int
    more: bool
    KIND = MessageKind.DIRECTORY_CHANGES
    SCHEMA: ClassVar[tuple[Validator, ...]]


class DirectoryRows(NamedTuple):
    """The rows of a DirectoryPage as column arrays (§4): one item per customer in each.

    ``columns`` maps each directory column of the field table to its values; on decode
    it is read against the receiver's table as ``DirectoryEntry.fields`` is (a column the
    receiver lacks is ignored, one the sender did not send is null).
    """

    ids: tuple[str, ...]
    columns: Mapping[str, tuple[str | None, ...]]
    updated_at: tuple[float, ...]
    deleted: tuple[bool, ...]
    cursors: tuple[int, ...]

    @classmethod
    def of(cls, entries: tuple[DirectoryEntry, ...]) -> DirectoryRows:
        """The column arrays of ``entries`` (their ``fields`` are in table order)."""
        names = [f.name for f in schema.directory_fields()]
        return cls(
            tuple(e.customer_id for e in entries),
            {n: tuple(e.fields.get(n) for e in entries) for n in names},
            tuple(e.updated_at for e in entries), tuple(e.deleted for e in entries),
            tuple(e.cursor for e in entries),
        )

    def entries(self) -> tuple[DirectoryEntry, ...]:
        """The same rows as DirectoryEntry records."""
        names = tuple(self.columns)
        values = zip(*self.columns.values(), strict=True) if names else iter(
            () for _ in self.ids)
        return tuple(
            DirectoryEntry(cid, dict(zip(names, row, strict=True)), at, gone, seq)
            for cid, row, at, gone, seq in zip(
                self.ids, values, self.updated_at, self.deleted, self.cursors, strict=True)
        )


@dataclass(frozen=True, slots=True)
class DirectoryPage(Message):
    """Server → client: one page of the directory pass, the reply to DirectorySubscribe
    (§6): rows changed up to ``cursor`` as column arrays; ``more`` pages follow. Live
    changes never come as a page (they are DirectoryChanges), so a client can tell its
    pass from the live feed."""

    rows: DirectoryRows
    cursor: int
    more: bool
    KIND = MessageKind.DIRECTORY_PAGE
    SCHEMA: ClassVar[tuple[Validator, ...]]

    def entries(self) -> tuple[DirectoryEntry, ...]:
        """The page's rows as DirectoryEntry records."""
        return self.rows.entries()


#: Most rows in one page (DirectoryPage, DirectoryChanges, Notifications; the encoded frame
#: must also fit the message size).
MAX_PAGE_ROWS = 5000


def _directory_rows(v: Any) -> DirectoryRows:
    """Check a DirectoryPage's column arrays as a whole (each array as long as ``ids``)."""
    if not isinstance(v, list) or len(v) != len(DirectoryRows._fields):
        raise _Invalid("expected [ids, columns, updated_at, deleted, cursors]")
    ids, columns, updated, deleted, cursors = v
    if not isinstance(ids, list) or len(ids) > MAX_PAGE_ROWS:
        raise _Invalid(f"expected at most {MAX_PAGE_ROWS} ids")
    n = len(ids)
    for name, array in (("updated_at", updated), ("deleted", deleted), ("cursors", cursors)):
        if not isinstance(array, list) or len(array) != n:
            raise _Invalid(f"{name} must have one item per id ({n})")
    if not isinstance(columns, dict) or len(columns) > _MAX_DIRECTORY_COLUMNS:
        raise _Invalid(f"expected a map of at most {_MAX_DIRECTORY_COLUMNS} columns")
    for key, values in columns.items():
        if not isinstance(key, str) or len(key) > 64:
            raise _Invalid("directory column names are strings of at most 64 characters")
        if not isinstance(values, list) or len(values) != n:
            raise _Invalid(f"column {key!r} must have one value per id ({n})")
        if not all(x is None or (type(x) is str and len(x) <= _MAX_DIRECTORY_TEXT)
                   for x in values):
            raise _Invalid(f"directory values are null or strings of at most "
                           f"{_MAX_DIRECTORY_TEXT} characters")
    if not all(type(x) is bool for x in deleted):
        raise _Invalid("deleted holds booleans")
    if not all(type(x) is int and 0 <= x < 2**63 for x in cursors):
        raise _Invalid("cursors are integers from 0 to 2**63 - 1")
    nulls = (None,) * n
    return DirectoryRows(
        tuple(_uuid(i) for i in ids),
        {f.name: tuple(columns[f.name]) if f.name in columns else nulls
         for f in schema.directory_fields()},
        tuple(_float(x) for x in updated), tuple(deleted), tuple(cursors),
    )


@dataclass(frozen=True, slots=True)
class Error(Message):
    """Server → client: a request failed (``ref``/``doc`` say which); see ErrorCode."""

    code: ErrorCode
    message: str
    ref: int | None = None
    doc: str | None = None
    retry_after: float | None = None
    KIND = MessageKind.ERROR
    SCHEMA = (_enum(ErrorCode), _str(1000), _opt(_int()), _opt(_sub_id), _opt(_float))


@dataclass(frozen=True, slots=True)
class Heartbeat(Message):
    """Either way: are you there? Answered by HeartbeatAck with the same nonce."""

    nonce: int
    KIND = MessageKind.HEARTBEAT
    SCHEMA = (_int(),)


@dataclass(frozen=True, slots=True)
class HeartbeatAck(Message):
    """Either way: the answer to Heartbeat."""

    nonce: int
    KIND = MessageKind.HEARTBEAT_ACK
    SCHEMA = (_int(),)


def _record(cls: type[Message]) -> Validator:
    def check(v: Any) -> Message:
        if not isinstance(v, list) or len(v) != len(cls.SCHEMA):
            raise _Invalid(f"expected a {cls.__name__} record of {len(cls.SCHEMA)} fields")
        return cls(*(validate(item) for validate, item in zip(cls.SCHEMA, v, strict=True)))

    return check


Notifications.SCHEMA = (_list(_record(Notification), MAX_PAGE_ROWS), _SEQ, _bool)
DirectoryChanges.SCHEMA = (_list(_record(DirectoryEntry), MAX_PAGE_ROWS), _SEQ, _bool)
DirectoryPage.SCHEMA = (_directory_rows, _SEQ, _bool)

_BY_KIND: dict[int, type[Message]] = {
    cls.KIND: cls
    for cls in (
        Authenticate, Welcome, RenewToken, TokenRenewed, Subscribe, Subscribed, Unsubscribe,
        SyncStep1, SyncStep2, Update, RemoteUpdate, Ack, Presence, PresenceChanged,
        Notification, ReadNotifications, Notifications, DirectorySubscribe, DirectoryChanges,
        DirectoryPage, Error, Heartbeat, HeartbeatAck,
    )
}


def kind_of(frame: bytes) -> type[Message] | None:
    """The message class of an encoded frame, read from its first two bytes (every message
    is a MessagePack fixarray whose first element, the kind, is a positive fixint: §2);
    None when the frame does not start like one of ours. Decodes nothing else."""
    if len(frame) < 2 or not 0x90 <= frame[0] <= 0x9F:
        return None
    return _BY_KIND.get(frame[1])


_NAMES: dict[type, tuple[str, ...]] = {}


def _names(cls: type[Message]) -> tuple[str, ...]:
    """A message class's field names in wire order (``dataclasses.fields`` is slow)."""
    names = _NAMES.get(cls)
    if names is None:
        names = _NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


#: Field values MessagePack takes as they are (checked first: most fields are these).
_SCALARS = frozenset({str, int, float, bytes, bool, type(None)})


def _plain(value: Any) -> Any:
    """Turn a message field into MessagePack-ready values (records become arrays)."""
    if type(value) in _SCALARS:
        return value
    if isinstance(value, Message):
        return [_plain(getattr(value, name)) for name in _names(type(value))]
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return dict(value)
    return value


def encode(message: Message) -> bytes:
    """Encode a message into the bytes of one WebSocket binary frame."""
    body = [message.KIND.value]
    for name in _names(type(message)):
        value = getattr(message, name)
        body.append(value if type(value) in _SCALARS else _plain(value))
    return msgpack.packb(body, use_bin_type=True)  # type: ignore[no-any-return]


def decode(data: bytes, max_size: int = MAX_MESSAGE_SIZE) -> Message:
    """Decode one frame's bytes into a message, checking every field.

    Raises :class:`MalformedMessage` (and nothing else) when ``data`` is larger than
    ``max_size``, is not valid MessagePack, or does not match a message's schema.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedMessage("a message must be binary")
    if len(data) > max_size:
        raise MalformedMessage(f"message of {len(data)} bytes exceeds the {max_size}-byte limit")
    try:
        raw = msgpack.unpackb(
            data, raw=False, use_list=True, strict_map_key=True, max_ext_len=0,
        )
    except (ValueError, msgpack.UnpackException) as exc:  # ExtraData, FormatError, UTF-8…
        raise MalformedMessage(
            f"not a valid MessagePack message: {str(exc)[:200] or type(exc).__name__}"
        ) from exc
    if not isinstance(raw, list) or not raw:
        raise MalformedMessage("a message is a non-empty array")
    kind, *values = raw
    cls = _BY_KIND.get(kind) if isinstance(kind, int) and not isinstance(kind, bool) else None
    if cls is None:
        # Bounded: the text goes back to the peer in an Error (message ≤ 1000 characters).
        raise MalformedMessage(f"unknown message kind {reprlib.repr(kind)}")
    if len(values) != len(cls.SCHEMA):
        raise MalformedMessage(
            f"{cls.__name__} has {len(cls.SCHEMA)} fields, got {len(values)}"
        )
    checked = []
    for name, validate, value in zip(_names(cls), cls.SCHEMA, values, strict=True):
        try:
            checked.append(validate(value))
        except _Invalid as exc:
            raise MalformedMessage(f"{cls.__name__}.{name}: {exc}") from None
    return cls(*checked)
