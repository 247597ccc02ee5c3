"""The updates one session sends to one document within a loop turn share one log row,
commit and fan-out frame (hub.py, "Batching"): what each client ref is answered is what it
would be answered alone."""

from __future__ import annotations

from sync.protocol.errors import ErrorCode
from sync.protocol.messages import Ack, Error, RemoteUpdate, Update

from .conftest import ServerHandle, both_engines
from .test_server_sync import Replica, join, new_doc_id, rep


@both_engines
async def test_a_refused_update_amid_a_burst_is_answered_as_alone(
    server: ServerHandle,
) -> None:
    """Back-to-back updates with one missing its dependencies in the middle: that one gets
    missing_dependencies and is not kept; all others are acked in order, fanned out once."""
    doc_id = new_doc_id()
    a = await rep(server, "alex")
    ra = await join(a, doc_id)
    await a.send(Update(doc_id, 1, ra.set(name="created")))
    await a.expect(Ack, lambda m: m.ref == 1)
    watcher = await rep(server, "sam")
    view = await join(watcher, doc_id)
    stranger = Replica()
    stranger.set(city="never sent")
    gap = stranger.set(city="Gap")  # builds on a change the server never got
    burst = [ra.set(name=f"n{i}") for i in range(2, 6)]
    messages = [Update(doc_id, ref, update) for ref, update in enumerate(burst, start=2)]
    messages.insert(2, Update(doc_id, 99, gap))  # refs 2, 3, 99, 4, 5
    for message in messages:
        await a.send(message)
    error = await a.expect(Error, lambda m: m.ref == 99)
    assert error.code == ErrorCode.MISSING_DEPENDENCIES
    last = await a.expect(Ack, lambda m: m.ref == 5)
    acks = [*a.received(Ack), last]
    assert [m.ref for m in acks] == [2, 3, 4, 5]
    assert [m.seq for m in acks] == sorted(m.seq for m in acks)
    while view.doc.get_state() != ra.doc.get_state():
        view.apply((await watcher.expect(RemoteUpdate)).update)
    assert view.fields()["name"] == "n5" and not view.fields().get("city")
    assert not a.received(RemoteUpdate)  # the writer never gets its own echo
