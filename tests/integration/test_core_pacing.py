"""The client core's pacing against a real server with a tight rate limit: thousands of
edits typed online reach the server in order (none overtakes one waiting for the merged
flush), so none is refused as missing_dependencies, nothing resyncs, and the connection is
never closed for sending too much (docs/protocol.md §8). An outbox entry the server can
never accept as complete backs off and is reported instead of resyncing in a loop."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from pycrdt import Doc, Text

from app.events import ErrorReported, Event
from sync.client.connection import ConnectionState
from sync.protocol.messages import Message, customer_doc_id

from .conftest import ServerHandle, scaled
from .test_core_sync import CoreFactory, make_core, synced
from .wire import eventually

__all__ = ["make_core"]  # the fixture, shared with test_core_sync

EDITS = 3000


@pytest.fixture
def server(server_factory: Any) -> ServerHandle:
    """A server allowing 150 messages/s, burst 600: above the client's pacing (100/s, burst
    500), far below what one message per keystroke (or per refusal) would need."""
    return server_factory("--rate-limit", "150", "--rate-burst", "600")  # type: ignore[no-any-return]


async def test_thousands_of_online_edits_stay_in_order_and_under_the_rate_limit(
    make_core: CoreFactory,
) -> None:
    """3,000 notes keystrokes online: no refusal, no resubscribe, no 4008, empty outbox."""
    alex = await make_core("alex")
    cid = await alex.create_customer({"name": "John Smith"})
    await synced(alex)
    engine = alex.engine
    assert engine is not None
    states: list[ConnectionState] = []
    engine.connection.add_status_listener(lambda status: states.append(status.state))
    errors: list[ErrorReported] = []

    def collect(event: Event) -> None:
        if isinstance(event, ErrorReported):
            errors.append(event)

    alex.bus.subscribe(collect)
    sent: Counter[str] = Counter()
    send = engine.connection.send

    async def counting_send(message: Message) -> None:  # records, then sends for real
        sent[type(message).__name__] += 1
        await send(message)

    engine.connection.send = counting_send  # type: ignore[method-assign]
    for i in range(EDITS):
        await alex.notes_insert(cid, 0, f"{i % 10}")
    await alex.sync(scaled(30))

    assert alex.replica.outbox_count() == 0
    assert states == [], f"the connection dropped: {states}"
    assert sent["Subscribe"] == 0, f"resubscribed {sent['Subscribe']} times: {sent}"
    assert sent["Update"] < EDITS / 2  # beyond the burst, edits went out merged
    assert errors == []
    assert len(alex.customer(cid).notes) == EDITS


async def test_an_entry_refused_as_incomplete_again_and_again_backs_off_and_is_reported(
    make_core: CoreFactory,
) -> None:
    """An outbox update whose dependencies nobody has: 3 resyncs, then a report and a wait."""
    from app.sync_engine import RESYNC_RETRIES

    alex = await make_core("alex")
    cid = await alex.create_customer({"name": "John Smith"})
    await synced(alex)
    await alex.disconnect()
    elsewhere: Doc[Any] = Doc()
    elsewhere["notes"] = notes = Text()
    notes += "a"
    before = elsewhere.get_state()
    notes += "b"
    orphan = elsewhere.get_update(before)  # builds on "a", which nobody else has
    alex.replica.add_outbox(customer_doc_id(cid), orphan, "notes", ["notes"])
    errors: list[ErrorReported] = []
    subscribes_at_report: list[int] = []
    sent: Counter[str] = Counter()

    def collect(event: Event) -> None:
        if isinstance(event, ErrorReported):
            errors.append(event)
            subscribes_at_report.append(sent["Subscribe"])

    alex.bus.subscribe(collect)
    engine = await alex.connect()
    send = engine.connection.send

    async def counting_send(message: Message) -> None:  # records, then sends for real
        sent[type(message).__name__] += 1
        await send(message)

    engine.connection.send = counting_send  # type: ignore[method-assign]
    await eventually(lambda: errors)
    # The connection's own Subscribe (held customers, directory) came first: count resyncs.
    assert subscribes_at_report[0] - 2 == RESYNC_RETRIES
    assert errors[0].retrying and errors[0].customer_id == cid
    await eventually(lambda: sent["Subscribe"] - 2 > RESYNC_RETRIES)  # it tries again, later
    assert len(errors) == 1
    assert alex.replica.outbox_count() == 1  # kept, not dropped
