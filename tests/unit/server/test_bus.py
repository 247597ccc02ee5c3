"""The bus events' encoding, its limits, and the in-process bus."""

from __future__ import annotations

import asyncio

import pytest

from sync.server.bus import (
    MAX_PAYLOAD,
    AccountChanged,
    BusEvent,
    LocalBus,
    LocalNetwork,
    NotificationsCommitted,
    PresenceSignal,
    SessionMoved,
    UpdatesCommitted,
    decode_event,
    encode_event,
)
from sync.server.errors import BusMessageInvalid, BusPayloadTooLarge
from tests.bus_recorder import Recorder


@pytest.mark.parametrize("event", [
    UpdatesCommitted("n1", "customer:9f0c", 42, 1.5),
    NotificationsCommitted("n1", "customer:9f0c", 7, 9, 1.5),
    PresenceSignal("n1", "customer:9f0c", "session-1", "alice", {"f": "name", "n": 1}, 2.0),
    PresenceSignal("n1", "customer:9f0c", "session-1", "alice", None, 2.0),
    AccountChanged("n2", "bob", 3.0),
    SessionMoved("n3", "session-2", 4.0),
])
def test_every_event_survives_encoding(event: BusEvent) -> None:
    """Encoding then decoding gives the same event back, well below NOTIFY's limit."""
    text = encode_event(event)
    assert decode_event(text) == event
    assert len(text.encode()) < 200


def test_an_oversized_event_is_refused() -> None:
    """An event past MAX_PAYLOAD bytes raises BusPayloadTooLarge naming the limit."""
    state = {f"k{i}": "x" * 1000 for i in range(5)}
    with pytest.raises(BusPayloadTooLarge, match=str(MAX_PAYLOAD)):
        encode_event(PresenceSignal("n1", "customer:1", "s" * 8, "alice", state))


@pytest.mark.parametrize("text", [
    "", "[]", "not json", '{"a": 1}', "[1]", '[2, "u", "n", 0, "d", 1]',
    '[1, "u", "n", 0, "d", 0]', '[1, "u", "n", 0, "d", true]', '[1, "x", "n", 0, "d"]',
    '[1, "p", "n", 0, "d", "s", "u", [1]]', '[1, "a", "", 0, "bob"]', "[" * 100000,
    '[1, "n", "n", 0, "d", 9, 7]', '[1, "n", "n", 0, "d", 0, 1]', '[1, "n", "n", 0, "d", 1]',
])
def test_garbage_from_the_bus_is_refused_cleanly(text: str) -> None:
    """Anything that is not one of our events raises BusMessageInvalid, nothing else."""
    with pytest.raises(BusMessageInvalid):
        decode_event(text)


async def test_local_network_delivers_to_the_other_nodes_only() -> None:
    """On a shared LocalNetwork an event reaches every other node, stamped, not its sender."""
    network = LocalNetwork()
    buses = [LocalBus(f"node{i}", network) for i in range(3)]
    recorders = [Recorder() for _ in buses]
    for bus, recorder in zip(buses, recorders, strict=True):
        await bus.start(recorder)
        assert bus.listening
    await buses[0].publish(UpdatesCommitted("", "customer:1", 5))
    for _ in range(3):
        await asyncio.sleep(0)  # delivery is on the next turn of the loop, as on a network
    assert recorders[0].events == []
    for recorder in recorders[1:]:
        [event] = recorder.events
        assert isinstance(event, UpdatesCommitted)
        assert (event.node, event.doc_id, event.seq) == ("node0", "customer:1", 5)
        assert event.time > 0
    await buses[1].close()
    assert not buses[1].listening
    await buses[0].publish(AccountChanged("", "bob"))
    for _ in range(3):
        await asyncio.sleep(0)
    assert len(recorders[1].events) == 1 and len(recorders[2].events) == 2


async def test_a_single_node_bus_still_checks_the_limit() -> None:
    """A bus without a network publishes nothing anywhere but refuses oversized events."""
    bus = LocalBus()
    await bus.start(Recorder())
    await bus.publish(AccountChanged("", "bob"))
    assert bus.published == 1
    with pytest.raises(BusPayloadTooLarge):
        await bus.publish(AccountChanged("", "b" * 5000))
