"""The client hands the protocol bytes it encoded once (size check and socket share them):
``ClientProtocol.send_encoded`` queues them as they are, with ``send``'s checks."""

from __future__ import annotations

import pytest

from sync.protocol.connection import ClientProtocol
from sync.protocol.errors import LocalProtocolError
from sync.protocol.messages import PROTOCOL_VERSION, Ack, Update, Welcome, encode

DOC = "customer:0b7e4c1a-3f5d-4e2a-9c8b-1d2e3f4a5b6c"


def open_client() -> ClientProtocol:
    """A client protocol past authentication."""
    proto = ClientProtocol()
    proto.start("token", "session-0001")
    proto.data_to_send()
    proto.receive_data(encode(Welcome(
        version=PROTOCOL_VERSION, session_id="session-0001", user="alice", role="rep",
        customer_id=None, resumed=False, subscriptions=(), token_expires_at=1e9,
        heartbeat_interval=15.0, max_message_size=1_048_576, max_subscriptions=500,
        server_time=1e9,
    )))
    proto.events_received()
    return proto


def test_encoded_frame_is_sent_as_is() -> None:
    """The very bytes given are queued, identical to what send() would queue."""
    proto = open_client()
    frame = encode(Update(DOC, 7, b"\x01\x02"))
    proto.send_encoded(frame)
    [sent] = proto.data_to_send()
    assert sent is frame
    proto.send(Update(DOC, 7, b"\x01\x02"))
    assert proto.data_to_send() == [frame]


def test_encoded_frame_keeps_direction_and_state_checks() -> None:
    """A server-only message, or any frame before Welcome, is refused as our own bug."""
    proto = open_client()
    with pytest.raises(LocalProtocolError):
        proto.send_encoded(encode(Ack(DOC, 1, 5)))
    with pytest.raises(LocalProtocolError):
        ClientProtocol().send_encoded(encode(Update(DOC, 1, b"\x00")))
