"""Sans-I/O connection state machines: who may send what, when (docs/protocol.md §3-§5).

Like ``websockets``' protocol objects, these do no I/O. The driver feeds each received
frame to :meth:`receive_data`, then reads :meth:`events_received` (decoded messages, or a
:class:`ProtocolFailure` when the peer broke the rules) and sends what
:meth:`data_to_send` returns. Call ``data_to_send()`` after every ``receive_data()`` and
every ``send()``.

Server states::

    AWAITING_AUTH --Authenticate--> AUTHENTICATING --accept()--> OPEN
          |                               |--reject()--> CLOSED
          +--anything else / bad bytes--> CLOSED           OPEN --failure/close()--> CLOSED

Client states::

    IDLE --start()--> AUTHENTICATING --Welcome--> OPEN --Error(fatal)/close()--> CLOSED

All transitions are listed in ``_TRANSITIONS``; any other raises LocalProtocolError.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum, auto

from .errors import CloseCode, ErrorCode, LocalProtocolError, MalformedMessage
from .messages import (
    MAX_MESSAGE_SIZE,
    PROTOCOL_VERSION,
    SERVER_VERSIONS,
    SUPPORTED_VERSIONS,
    Ack,
    Authenticate,
    DirectoryChanges,
    DirectoryPage,
    DirectorySubscribe,
    Error,
    Heartbeat,
    HeartbeatAck,
    Message,
    Notification,
    Notifications,
    Presence,
    PresenceChanged,
    ReadNotifications,
    RemoteUpdate,
    RenewToken,
    Subscribe,
    Subscribed,
    SyncStep1,
    SyncStep2,
    TokenRenewed,
    Unsubscribe,
    Update,
    Welcome,
    decode,
    encode,
    kind_of,
)

__all__ = [
    "CLIENT_SENDS",
    "SERVER_SENDS",
    "ClientProtocol",
    "ProtocolFailure",
    "ServerProtocol",
    "State",
]

#: Messages a client may send once OPEN, and those a server may send once OPEN.
CLIENT_SENDS: frozenset[type[Message]] = frozenset({
    RenewToken, Subscribe, Unsubscribe, SyncStep1, Update, Presence, ReadNotifications,
    DirectorySubscribe, Heartbeat, HeartbeatAck,
})
SERVER_SENDS: frozenset[type[Message]] = frozenset({
    TokenRenewed, Subscribed, SyncStep1, SyncStep2, RemoteUpdate, Ack, PresenceChanged,
    Notification, Notifications, DirectoryChanges, DirectoryPage, Error, Heartbeat,
    HeartbeatAck,
})


#: Longest Error.message the decoder accepts (messages.Error.SCHEMA); longer text is cut.
_MAX_ERROR_TEXT = 1000


class State(Enum):
    """Connection states shared by both sides (IDLE is the client's before start())."""

    IDLE = auto()
    AWAITING_AUTH = auto()
    AUTHENTICATING = auto()
    OPEN = auto()
    CLOSED = auto()


_TRANSITIONS: frozenset[tuple[State, State]] = frozenset({
    (State.IDLE, State.AUTHENTICATING),
    (State.AWAITING_AUTH, State.AUTHENTICATING),
    (State.AWAITING_AUTH, State.CLOSED),
    (State.AUTHENTICATING, State.OPEN),
    (State.AUTHENTICATING, State.CLOSED),
    (State.OPEN, State.CLOSED),
    (State.IDLE, State.CLOSED),
})


@dataclass(frozen=True, slots=True)
class ProtocolFailure:
    """Event: the peer broke the protocol; the connection must close with ``close_code``.

    ``code`` and ``message`` were already queued to the peer as an Error message (server
    side) — the driver sends ``data_to_send()`` and then closes.
    """

    code: ErrorCode
    message: str
    close_code: CloseCode


class _Protocol:
    """What both sides share: the state, the outgoing queue and the event list."""

    def __init__(self, initial: State, max_message_size: int) -> None:
        self.state = initial
        self.max_message_size = max_message_size
        self.close_code: CloseCode | None = None
        self.close_reason = ""
        self._events: list[Message | ProtocolFailure] = []
        self._out: list[bytes] = []

    def _move(self, new: State) -> None:
        if (self.state, new) not in _TRANSITIONS:
            raise LocalProtocolError(f"cannot go from {self.state.name} to {new.name}")
        self.state = new

    def events_received(self) -> list[Message | ProtocolFailure]:
        """The events since the last call, oldest first."""
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> list[bytes]:
        """The frames to send since the last call, in order (each is one binary message)."""
        out, self._out = self._out, []
        return out

    def _fail(self, code: ErrorCode, message: str, close_code: CloseCode) -> None:
        """Record that the connection must close; later input is ignored."""
        if self.state is State.CLOSED:
            return
        self._move(State.CLOSED)
        self.close_code, self.close_reason = close_code, message
        self._events.append(ProtocolFailure(code, message, close_code))

    def close(self, close_code: CloseCode = CloseCode.NORMAL, reason: str = "") -> None:
        """Mark the connection closed from this side (the driver closes the socket)."""
        if self.state is not State.CLOSED:
            self._move(State.CLOSED)
            self.close_code, self.close_reason = close_code, reason

    def _decode(self, data: bytes) -> Message | None:
        try:
            return decode(data, self.max_message_size)
        except MalformedMessage as exc:
            too_big = len(data) > self.max_message_size
            self._fail_with_error(
                ErrorCode.MESSAGE_TOO_BIG if too_big else ErrorCode.BAD_MESSAGE,
                str(exc),
                CloseCode.MESSAGE_TOO_BIG if too_big else CloseCode.BAD_MESSAGE,
            )
            return None

    def _fail_with_error(self, code: ErrorCode, message: str, close_code: CloseCode) -> None:
        self._fail(code, message, close_code)


class ServerProtocol(_Protocol):
    """The server's side of one connection.

    After an ``Authenticate`` event the driver checks the token and calls :meth:`accept`
    or :meth:`reject`. Messages the client sends meanwhile are held (at most
    ``max_pending``) and released as events by ``accept()``.
    """

    def __init__(self, max_message_size: int = MAX_MESSAGE_SIZE, max_pending: int = 32) -> None:
        super().__init__(State.AWAITING_AUTH, max_message_size)
        self.max_pending = max_pending
        self.version: int | None = None
        self._pending: deque[Message] = deque()

    def _fail_with_error(self, code: ErrorCode, message: str, close_code: CloseCode) -> None:
        if self.state is not State.CLOSED:
            self._out.append(encode(Error(code, message[:_MAX_ERROR_TEXT])))
        self._fail(code, message, close_code)

    def receive_data(self, data: bytes) -> None:
        """Feed one received frame (§2)."""
        if self.state is State.CLOSED:
            return
        message = self._decode(data)
        if message is None:
            return
        if self.state is State.AWAITING_AUTH:
            self._on_first(message)
        elif self.state is State.AUTHENTICATING:
            if len(self._pending) >= self.max_pending:
                self._fail_with_error(
                    ErrorCode.RATE_LIMITED,
                    f"more than {self.max_pending} messages before authentication finished",
                    CloseCode.RATE_LIMITED,
                )
            elif type(message) not in CLIENT_SENDS:
                self._violation(message)
            else:
                self._pending.append(message)
        elif type(message) not in CLIENT_SENDS:
            self._violation(message)
        else:
            self._events.append(message)

    def _on_first(self, message: Message) -> None:
        """§3: the first message must be Authenticate with a version we speak."""
        if not isinstance(message, Authenticate):
            self._fail_with_error(
                ErrorCode.AUTH_REQUIRED,
                f"authenticate first; got {type(message).__name__}",
                CloseCode.PROTOCOL_VIOLATION,
            )
            return
        common = set(message.versions) & set(SERVER_VERSIONS)
        if not common:
            self._fail_with_error(
                ErrorCode.UNSUPPORTED_VERSION,
                f"this server speaks protocol versions {list(SERVER_VERSIONS)}",
                CloseCode.UNSUPPORTED_VERSION,
            )
            return
        self.version = max(common)
        self._move(State.AUTHENTICATING)
        self._events.append(message)

    def _violation(self, message: Message) -> None:
        self._fail_with_error(
            ErrorCode.BAD_MESSAGE,
            f"a client may not send {type(message).__name__} now",
            CloseCode.PROTOCOL_VIOLATION,
        )

    def accept(self, welcome: Welcome) -> None:
        """Authentication succeeded: send Welcome, release held messages as events."""
        if self.state is not State.AUTHENTICATING:
            raise LocalProtocolError(f"accept() in state {self.state.name}")
        if welcome.version != self.version:
            raise LocalProtocolError(
                f"Welcome.version {welcome.version} is not the negotiated {self.version}"
            )
        self._move(State.OPEN)
        self._out.append(encode(welcome))
        self._events.extend(self._pending)
        self._pending.clear()

    def reject(self, code: ErrorCode, message: str, close_code: CloseCode) -> None:
        """Authentication failed: queue the Error; the driver then closes with close_code."""
        if self.state is not State.AUTHENTICATING:
            raise LocalProtocolError(f"reject() in state {self.state.name}")
        self._pending.clear()
        self._out.append(encode(Error(code, message[:_MAX_ERROR_TEXT])))
        self._move(State.CLOSED)
        self.close_code, self.close_reason = close_code, message

    def send(self, message: Message) -> None:
        """Queue a message to the client (OPEN only)."""
        if self.state is not State.OPEN:
            raise LocalProtocolError(f"cannot send in state {self.state.name}")
        if type(message) not in SERVER_SENDS:
            raise LocalProtocolError(f"a server does not send {type(message).__name__}")
        self._out.append(encode(message))

    def send_encoded(self, frame: bytes) -> None:
        """Queue a message that was encoded once for many connections (fan-out of a
        RemoteUpdate, Notification, PresenceChanged, DirectoryChanges), with the same state
        and direction checks as :meth:`send`; the kind is read from the frame's header."""
        if self.state is not State.OPEN:
            raise LocalProtocolError(f"cannot send in state {self.state.name}")
        if kind_of(frame) not in SERVER_SENDS:
            raise LocalProtocolError("a server does not send this frame")
        self._out.append(frame)

    def fail(self, code: ErrorCode, message: str, close_code: CloseCode) -> None:
        """Close because of the client's behaviour (rate limit, expired token, …)."""
        self._fail_with_error(code, message, close_code)


class ClientProtocol(_Protocol):
    """The client's side of one connection: authenticate, then exchange messages."""

    def __init__(self, max_message_size: int = MAX_MESSAGE_SIZE) -> None:
        super().__init__(State.IDLE, max_message_size)
        self.welcome: Welcome | None = None

    def start(self, token: str, session_id: str, client: str = "") -> None:
        """Queue the Authenticate message (§3); the first thing sent on a connection."""
        self._move(State.AUTHENTICATING)
        self._out.append(encode(Authenticate((PROTOCOL_VERSION,), token, session_id, client)))

    def receive_data(self, data: bytes) -> None:
        """Feed one received frame."""
        if self.state is State.CLOSED:
            return
        message = self._decode(data)
        if message is None:
            return
        if self.state is State.IDLE:
            self._fail(
                ErrorCode.BAD_MESSAGE,
                f"server sent {type(message).__name__} before Authenticate",
                CloseCode.PROTOCOL_VIOLATION,
            )
        elif self.state is State.AUTHENTICATING:
            if isinstance(message, Welcome):
                if message.version not in SUPPORTED_VERSIONS:
                    self._fail(
                        ErrorCode.UNSUPPORTED_VERSION,
                        f"server chose protocol version {message.version}",
                        CloseCode.UNSUPPORTED_VERSION,
                    )
                    return
                self.welcome = message
                self._move(State.OPEN)
                self._events.append(message)
            elif isinstance(message, Error):
                self._events.append(message)
                self._fail(message.code, message.message, CloseCode.AUTH_FAILED)
            else:
                self._fail(
                    ErrorCode.BAD_MESSAGE,
                    f"server sent {type(message).__name__} before Welcome",
                    CloseCode.PROTOCOL_VIOLATION,
                )
        elif self.state is State.OPEN:
            if type(message) not in SERVER_SENDS:
                self._fail(
                    ErrorCode.BAD_MESSAGE,
                    f"a server may not send {type(message).__name__}",
                    CloseCode.PROTOCOL_VIOLATION,
                )
            else:
                self._events.append(message)

    def send(self, message: Message) -> None:
        """Queue a message to the server (OPEN only)."""
        if self.state is not State.OPEN:
            raise LocalProtocolError(f"cannot send in state {self.state.name}")
        if type(message) not in CLIENT_SENDS:
            raise LocalProtocolError(f"a client does not send {type(message).__name__}")
        self._out.append(encode(message))

    def send_encoded(self, frame: bytes) -> None:
        """Queue a message the driver already encoded (it checks the size against the
        server's limit first, so each message is encoded once), with the same state and
        direction checks as :meth:`send`; the kind is read from the frame's header."""
        if self.state is not State.OPEN:
            raise LocalProtocolError(f"cannot send in state {self.state.name}")
        if kind_of(frame) not in CLIENT_SENDS:
            raise LocalProtocolError("a client does not send this frame")
        self._out.append(frame)
