"""The sans-I/O connection state machines (docs/protocol.md §3, §8).

``Pair`` links a ClientProtocol and a ServerProtocol in memory, like h11's ConnectionPair:
it moves each side's ``data_to_send()`` into the other's ``receive_data()`` and returns the
events that produced. Raw frames are fed directly when a test plays a misbehaving peer.
"""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.protocol.connection import (
    CLIENT_SENDS,
    SERVER_SENDS,
    ClientProtocol,
    ProtocolFailure,
    ServerProtocol,
    State,
)
from sync.protocol.errors import CloseCode, ErrorCode, LocalProtocolError
from sync.protocol.messages import (
    PROTOCOL_VERSION,
    Ack,
    Authenticate,
    Error,
    Heartbeat,
    HeartbeatAck,
    Message,
    MessageKind,
    Presence,
    RemoteUpdate,
    Subscribe,
    Subscribed,
    SyncStep1,
    SyncStep2,
    Update,
    Welcome,
    decode,
    encode,
)

from .strategies import MESSAGES, by_kind

PROFILE = settings.get_profile("protocol")
DOC = "customer:0b7e4c1a-3f5d-4e2a-9c8b-1d2e3f4a5b6c"
SESSION = "session-0001"
Event = Message | ProtocolFailure


def welcome(version: int = PROTOCOL_VERSION, resumed: bool = False) -> Welcome:
    """A Welcome as a server driver would build it."""
    return Welcome(
        version=version, session_id=SESSION, user="alice", role="rep", customer_id=None,
        resumed=resumed, subscriptions=(), token_expires_at=1e9, heartbeat_interval=15.0,
        max_message_size=1_048_576, max_subscriptions=500, server_time=1e9,
    )


class Pair:
    """A client and a server protocol object joined by an in-memory link."""

    def __init__(self, **server_options: Any) -> None:
        self.client = ClientProtocol()
        self.server = ServerProtocol(**server_options)

    def to_server(self) -> list[Event]:
        """Deliver the client's pending frames; return the server's events."""
        for frame in self.client.data_to_send():
            self.server.receive_data(frame)
        return self.server.events_received()

    def to_client(self) -> list[Event]:
        """Deliver the server's pending frames; return the client's events."""
        for frame in self.server.data_to_send():
            self.client.receive_data(frame)
        return self.client.events_received()

    def open(self) -> None:
        """Run the handshake of §3 to OPEN on both sides."""
        self.client.start("token", SESSION)
        [auth] = self.to_server()
        assert isinstance(auth, Authenticate)
        self.server.accept(welcome())
        [event] = self.to_client()
        assert isinstance(event, Welcome)


def sent(protocol: ServerProtocol | ClientProtocol) -> list[Message]:
    """Decode the frames a protocol object wants to send."""
    return [decode(frame) for frame in protocol.data_to_send()]


def authenticating_server(**options: Any) -> ServerProtocol:
    """A server that has received a valid Authenticate and awaits accept()/reject()."""
    server = ServerProtocol(**options)
    server.receive_data(encode(Authenticate((PROTOCOL_VERSION,), "token", SESSION)))
    [event] = server.events_received()
    assert isinstance(event, Authenticate)
    return server


def open_server() -> ServerProtocol:
    """A server in the OPEN state with its Welcome already drained."""
    server = authenticating_server()
    server.accept(welcome())
    server.data_to_send()
    return server


def assert_failed(
    protocol: ServerProtocol | ClientProtocol, code: ErrorCode, close_code: CloseCode,
) -> None:
    """The protocol reported exactly one failure with these codes and is CLOSED."""
    events = protocol.events_received()
    assert len(events) == 1
    failure = events[0]
    assert isinstance(failure, ProtocolFailure)
    assert (failure.code, failure.close_code) == (code, close_code)
    assert protocol.state is State.CLOSED
    assert protocol.close_code == close_code


def assert_error_frame(server: ServerProtocol, code: ErrorCode) -> None:
    """The server queued exactly one frame: an Error with this code."""
    [frame] = sent(server)
    assert isinstance(frame, Error)
    assert frame.code == code


# --- handshake --------------------------------------------------------------------------


def test_happy_path_handshake_opens_both_sides() -> None:
    """start → Authenticate event → accept(Welcome) → Welcome event; both sides OPEN."""
    pair = Pair()
    pair.client.start("tok-123", SESSION, client="liveedit/0.1")
    assert pair.client.state is State.AUTHENTICATING
    [auth] = pair.to_server()
    assert auth == Authenticate((PROTOCOL_VERSION,), "tok-123", SESSION, "liveedit/0.1")
    assert pair.server.state is State.AUTHENTICATING
    assert pair.server.version == PROTOCOL_VERSION
    pair.server.accept(welcome())
    assert pair.to_client() == [welcome()]
    assert (pair.client.state, pair.server.state) == (State.OPEN, State.OPEN)
    assert pair.client.welcome == welcome()


def test_open_connection_carries_messages_both_ways() -> None:
    """After the handshake, client messages reach the server and server messages the client."""
    pair = Pair()
    pair.open()
    pair.client.send(Update(DOC, 7, b"\x01"))
    pair.client.send(Heartbeat(3))
    assert pair.to_server() == [Update(DOC, 7, b"\x01"), Heartbeat(3)]
    pair.server.send(Ack(DOC, 7, 42))
    pair.server.send(HeartbeatAck(3))
    assert pair.to_client() == [Ack(DOC, 7, 42), HeartbeatAck(3)]


def test_events_and_frames_are_drained_once() -> None:
    """events_received() and data_to_send() return each item once, then nothing."""
    pair = Pair()
    pair.client.start("t", SESSION)
    assert len(pair.client.data_to_send()) == 1
    assert pair.client.data_to_send() == []
    pair.server.receive_data(encode(Authenticate((PROTOCOL_VERSION,), "t", SESSION)))
    assert len(pair.server.events_received()) == 1
    assert pair.server.events_received() == []


@pytest.mark.parametrize(
    "first", [Subscribe((DOC,)), Heartbeat(1), SyncStep1(DOC, b""), Ack(DOC, 1, 1), welcome()],
    ids=lambda m: type(m).__name__,
)
def test_message_before_authenticate_is_refused(first: Message) -> None:
    """A first message other than Authenticate gets AUTH_REQUIRED and close code 4007."""
    server = ServerProtocol()
    server.receive_data(encode(first))
    assert_error_frame(server, ErrorCode.AUTH_REQUIRED)
    assert_failed(server, ErrorCode.AUTH_REQUIRED, CloseCode.PROTOCOL_VIOLATION)


def test_unsupported_version_is_refused() -> None:
    """Authenticate offering only versions the server does not speak: UNSUPPORTED_VERSION/4004."""
    server = ServerProtocol()
    server.receive_data(encode(Authenticate((1, 99), "t", SESSION)))
    assert_error_frame(server, ErrorCode.UNSUPPORTED_VERSION)
    assert_failed(server, ErrorCode.UNSUPPORTED_VERSION, CloseCode.UNSUPPORTED_VERSION)
    assert server.version is None


def test_empty_version_list_is_refused() -> None:
    """Authenticate with no versions at all is UNSUPPORTED_VERSION too."""
    server = ServerProtocol()
    server.receive_data(encode(Authenticate((), "t", SESSION)))
    assert_error_frame(server, ErrorCode.UNSUPPORTED_VERSION)
    assert_failed(server, ErrorCode.UNSUPPORTED_VERSION, CloseCode.UNSUPPORTED_VERSION)


def test_server_picks_highest_common_version() -> None:
    """Offering versions (7, 1, 2, 3) negotiates 3, the highest this server speaks (§9)."""
    server = ServerProtocol()
    server.receive_data(encode(Authenticate((7, 1, 2, 3), "t", SESSION)))
    assert server.version == PROTOCOL_VERSION == 3
    assert server.state is State.AUTHENTICATING


def test_a_version_2_client_is_still_served_version_2() -> None:
    """A client not yet upgraded (version 2 only) negotiates 2: a server upgrade does not
    lock out the reps whose app is older (§9)."""
    server = ServerProtocol()
    server.receive_data(encode(Authenticate((2,), "t", SESSION)))
    assert server.version == 2
    assert server.state is State.AUTHENTICATING


def test_a_version_1_client_is_refused_with_a_clear_error() -> None:
    """A client speaking only version 1 gets UNSUPPORTED_VERSION naming the versions this
    server speaks, never a silent mismatch."""
    server = ServerProtocol()
    server.receive_data(encode(Authenticate((1,), "t", SESSION)))
    [frame] = sent(server)
    assert isinstance(frame, Error)
    assert frame.code is ErrorCode.UNSUPPORTED_VERSION
    assert "[2, 3]" in frame.message
    assert_failed(server, ErrorCode.UNSUPPORTED_VERSION, CloseCode.UNSUPPORTED_VERSION)


def test_client_refuses_a_version_it_did_not_offer() -> None:
    """A Welcome naming a version the client did not offer: UNSUPPORTED_VERSION."""
    client = ClientProtocol()
    client.start("t", SESSION)
    client.receive_data(encode(welcome(version=PROTOCOL_VERSION + 1)))
    assert_failed(client, ErrorCode.UNSUPPORTED_VERSION, CloseCode.UNSUPPORTED_VERSION)
    assert client.welcome is None


def test_messages_held_while_authenticating_are_released_on_accept() -> None:
    """Messages sent before Welcome are not events until accept(), then come in order."""
    server = authenticating_server()
    held = [Subscribe((DOC,)), SyncStep1(DOC, b"\x00"), Presence(DOC, {"editing": "name"})]
    for message in held:
        server.receive_data(encode(message))
    assert server.events_received() == []
    assert server.data_to_send() == []
    server.accept(welcome())
    assert server.events_received() == held
    assert sent(server) == [welcome()]


def test_pending_overflow_closes_with_rate_limited() -> None:
    """One message beyond max_pending before accept() gets RATE_LIMITED/4008."""
    server = authenticating_server(max_pending=2)
    server.receive_data(encode(Heartbeat(1)))
    server.receive_data(encode(Heartbeat(2)))
    assert server.state is State.AUTHENTICATING
    server.receive_data(encode(Heartbeat(3)))
    assert_error_frame(server, ErrorCode.RATE_LIMITED)
    assert_failed(server, ErrorCode.RATE_LIMITED, CloseCode.RATE_LIMITED)
    with pytest.raises(LocalProtocolError):
        server.accept(welcome())


def test_server_only_message_while_authenticating_is_a_violation() -> None:
    """An Ack (server-only) sent before Welcome is BAD_MESSAGE with close code 4007."""
    server = authenticating_server()
    server.receive_data(encode(Ack(DOC, 1, 1)))
    assert_error_frame(server, ErrorCode.BAD_MESSAGE)
    assert_failed(server, ErrorCode.BAD_MESSAGE, CloseCode.PROTOCOL_VIOLATION)


def test_reject_sends_error_and_closes_both_sides() -> None:
    """reject() queues the Error; the client reports it and fails with AUTH_FAILED/4003."""
    pair = Pair()
    pair.client.start("expired", SESSION)
    pair.to_server()
    pair.server.receive_data(encode(Heartbeat(1)))  # held, then dropped by reject()
    pair.server.reject(ErrorCode.AUTH_FAILED, "bad token", CloseCode.AUTH_FAILED)
    assert (pair.server.state, pair.server.close_code) == (State.CLOSED, CloseCode.AUTH_FAILED)
    assert pair.server.events_received() == []
    events = pair.to_client()
    assert events[0] == Error(ErrorCode.AUTH_FAILED, "bad token")
    assert events[1] == ProtocolFailure(ErrorCode.AUTH_FAILED, "bad token", CloseCode.AUTH_FAILED)
    assert pair.client.state is State.CLOSED
    pair.server.receive_data(encode(Heartbeat(2)))
    assert pair.server.events_received() == []
    assert pair.server.data_to_send() == []


# --- violations once open ---------------------------------------------------------------


@pytest.mark.parametrize(
    "cls",
    by_kind(set(MESSAGES) - CLIENT_SENDS),
    ids=lambda c: c.__name__,
)
@PROFILE
@given(data=st.data())
def test_server_refuses_messages_a_client_may_not_send(
    cls: type[Message], data: st.DataObject,
) -> None:
    """Welcome, Ack, RemoteUpdate, a second Authenticate… from a client: 4007."""
    server = open_server()
    server.receive_data(encode(data.draw(MESSAGES[cls])))
    assert_error_frame(server, ErrorCode.BAD_MESSAGE)
    assert_failed(server, ErrorCode.BAD_MESSAGE, CloseCode.PROTOCOL_VIOLATION)


@pytest.mark.parametrize(
    "cls",
    by_kind(set(MESSAGES) - SERVER_SENDS),
    ids=lambda c: c.__name__,
)
@PROFILE
@given(data=st.data())
def test_client_refuses_messages_a_server_may_not_send(
    cls: type[Message], data: st.DataObject,
) -> None:
    """Update, Subscribe, Authenticate, a second Welcome… from a server close the client."""
    pair = Pair()
    pair.open()
    pair.client.receive_data(encode(data.draw(MESSAGES[cls])))
    assert_failed(pair.client, ErrorCode.BAD_MESSAGE, CloseCode.PROTOCOL_VIOLATION)
    assert pair.client.data_to_send() == []


def test_client_refuses_anything_but_welcome_or_error_while_authenticating() -> None:
    """A RemoteUpdate before Welcome is a protocol violation on the client."""
    client = ClientProtocol()
    client.start("t", SESSION)
    client.data_to_send()
    client.receive_data(encode(RemoteUpdate(DOC, 1, b"", "bob", 0.0)))
    assert_failed(client, ErrorCode.BAD_MESSAGE, CloseCode.PROTOCOL_VIOLATION)


def test_client_refuses_data_before_start() -> None:
    """A frame arriving before start() is a violation, not silently dropped."""
    client = ClientProtocol()
    client.receive_data(encode(welcome()))
    assert_failed(client, ErrorCode.BAD_MESSAGE, CloseCode.PROTOCOL_VIOLATION)


@pytest.mark.parametrize("opened", [False, True], ids=["awaiting-auth", "open"])
def test_garbage_bytes_get_bad_message_then_input_is_ignored(opened: bool) -> None:
    """Undecodable bytes: one BAD_MESSAGE Error frame, close 4000, later frames ignored."""
    server = open_server() if opened else ServerProtocol()
    server.receive_data(b"\xc1 not msgpack")
    assert_error_frame(server, ErrorCode.BAD_MESSAGE)
    assert_failed(server, ErrorCode.BAD_MESSAGE, CloseCode.BAD_MESSAGE)
    server.receive_data(encode(Heartbeat(1)))
    server.receive_data(b"\xc1")
    assert server.events_received() == []
    assert server.data_to_send() == []


def test_client_garbage_bytes_close_without_sending() -> None:
    """The client fails with BAD_MESSAGE/4000 on garbage and sends nothing back."""
    pair = Pair()
    pair.open()
    pair.client.receive_data(b"\x93\x01")
    assert_failed(pair.client, ErrorCode.BAD_MESSAGE, CloseCode.BAD_MESSAGE)
    assert pair.client.data_to_send() == []


def test_oversized_frame_gets_message_too_big() -> None:
    """A frame over max_message_size: MESSAGE_TOO_BIG Error, close code 1009."""
    server = ServerProtocol(max_message_size=1024)
    server.receive_data(encode(Authenticate((PROTOCOL_VERSION,), "t" * 1100, SESSION)))
    assert_error_frame(server, ErrorCode.MESSAGE_TOO_BIG)
    assert_failed(server, ErrorCode.MESSAGE_TOO_BIG, CloseCode.MESSAGE_TOO_BIG)


def test_client_oversized_frame_gets_message_too_big() -> None:
    """The client applies its own size limit with the same codes."""
    client = ClientProtocol(max_message_size=100)
    client.start("t", SESSION)
    client.receive_data(b"\x00" * 101)
    assert_failed(client, ErrorCode.MESSAGE_TOO_BIG, CloseCode.MESSAGE_TOO_BIG)


@PROFILE
@given(data=st.binary(max_size=256))
def test_server_answers_any_bytes_with_frames_the_client_can_decode(data: bytes) -> None:
    """Whatever arrives, the server never raises and every frame it sends decodes."""
    server = ServerProtocol()
    server.receive_data(data)
    for frame in server.data_to_send():
        decode(frame)


def test_error_text_for_a_huge_unknown_kind_stays_decodable() -> None:
    """An unknown kind of 100,000 characters still yields an Error the client can decode."""
    server = ServerProtocol()
    server.receive_data(msgpack.packb(["k" * 100_000]))
    [error] = sent(server)
    assert isinstance(error, Error)
    assert len(error.message) <= 1000


def test_fail_sends_error_and_closes() -> None:
    """fail() (driver-detected abuse) queues the Error and reports the failure."""
    server = open_server()
    server.fail(ErrorCode.TOKEN_EXPIRED, "token expired", CloseCode.TOKEN_EXPIRED)
    assert_error_frame(server, ErrorCode.TOKEN_EXPIRED)
    assert_failed(server, ErrorCode.TOKEN_EXPIRED, CloseCode.TOKEN_EXPIRED)
    server.fail(ErrorCode.RATE_LIMITED, "again", CloseCode.RATE_LIMITED)
    assert server.data_to_send() == []
    assert server.close_code == CloseCode.TOKEN_EXPIRED


def test_close_records_the_code_once() -> None:
    """close() moves to CLOSED with its code; a second close() changes nothing."""
    pair = Pair()
    pair.open()
    pair.client.close(CloseCode.GOING_AWAY, "quit")
    pair.client.close(CloseCode.NORMAL)
    assert (pair.client.state, pair.client.close_code) == (State.CLOSED, CloseCode.GOING_AWAY)
    assert pair.client.close_reason == "quit"


# --- local misuse -----------------------------------------------------------------------


def test_client_local_misuse_raises() -> None:
    """send() before OPEN, start() twice, sending a server-only message: LocalProtocolError."""
    client = ClientProtocol()
    with pytest.raises(LocalProtocolError):
        client.send(Heartbeat(1))
    client.start("t", SESSION)
    with pytest.raises(LocalProtocolError):
        client.start("t", SESSION)
    with pytest.raises(LocalProtocolError):
        client.send(Subscribe((DOC,)))
    client.receive_data(encode(welcome()))
    with pytest.raises(LocalProtocolError):
        client.send(Ack(DOC, 1, 1))
    with pytest.raises(LocalProtocolError):
        client.send(Authenticate((PROTOCOL_VERSION,), "t", SESSION))
    client.close()
    with pytest.raises(LocalProtocolError):
        client.send(Heartbeat(1))


def test_server_local_misuse_raises() -> None:
    """accept/reject/send out of order, client-only messages, wrong version: LocalProtocolError."""
    server = ServerProtocol()
    with pytest.raises(LocalProtocolError):
        server.accept(welcome())
    with pytest.raises(LocalProtocolError):
        server.reject(ErrorCode.AUTH_FAILED, "no", CloseCode.AUTH_FAILED)
    with pytest.raises(LocalProtocolError):
        server.send(Subscribed((DOC,)))
    server.receive_data(encode(Authenticate((PROTOCOL_VERSION,), "t", SESSION)))
    with pytest.raises(LocalProtocolError):
        server.send(Subscribed((DOC,)))
    with pytest.raises(LocalProtocolError):
        server.accept(welcome(version=PROTOCOL_VERSION + 1))
    server.accept(welcome())
    with pytest.raises(LocalProtocolError):
        server.accept(welcome())
    with pytest.raises(LocalProtocolError):
        server.send(Update(DOC, 1, b""))
    with pytest.raises(LocalProtocolError):
        server.send(welcome())
    server.send(SyncStep2(DOC, b"", 0))
    server.close()
    with pytest.raises(LocalProtocolError):
        server.send(SyncStep2(DOC, b"", 0))


def test_direction_sets_cover_every_kind() -> None:
    """Every message kind is sendable by some side, except handshake and record-only kinds."""
    handshake = {MessageKind.AUTHENTICATE, MessageKind.WELCOME}
    sendable = {cls.KIND for cls in CLIENT_SENDS | SERVER_SENDS}
    assert sendable | handshake == set(MessageKind)


def test_server_send_encoded_checks_state_and_direction_like_send() -> None:
    """A fan-out frame (encoded once) is queued as is when OPEN; a client's kind or a
    frame before OPEN is our bug: LocalProtocolError."""
    frame = encode(RemoteUpdate(DOC, 7, b"u", "bob", 1.0))
    server = authenticating_server()
    with pytest.raises(LocalProtocolError):
        server.send_encoded(frame)
    server.accept(welcome())
    server.data_to_send()
    server.send_encoded(frame)
    assert server.data_to_send() == [frame]
    for bad in (encode(Update(DOC, 1, b"u")), b"", b"\x01\x02"):
        with pytest.raises(LocalProtocolError):
            server.send_encoded(bad)
    assert server.data_to_send() == []
