"""Faults injected into real components: a remote change that the client's replica cannot
store (the file is full) is kept, reported once in the core's error event, and stored
once there is room; an outbox entry sent to a server that does not answer counts the
send ("sent N times")."""

from __future__ import annotations

import os
import signal

from app.events import ErrorReported, Event

from .conftest import ServerHandle
from .test_core_sync import CoreFactory, make_core, shared_customer, synced
from .wire import eventually

__all__ = ["make_core"]  # the fixture, shared with test_core_sync


async def test_remote_update_into_full_replica_is_retried_and_reported(
    make_core: CoreFactory,
) -> None:
    """With sam's replica full, alex's big notes edit is reported (retrying) and not lost:
    it shows on sam's side once the file may grow again, and sam gets back in sync."""
    alex, sam = await make_core("alex"), await make_core("sam")
    cid = await shared_customer(alex, sam)
    errors: list[ErrorReported] = []

    def collect(event: Event) -> None:
        if isinstance(event, ErrorReported):
            errors.append(event)

    sam.bus.subscribe(collect)
    conn = sam.replica._conn()
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")  # a real SQLITE_FULL from now on
    await alex.notes_insert(cid, 0, "n" * 100_000)
    await eventually(lambda: errors)
    assert errors[0].retrying and errors[0].customer_id == cid
    assert "full" in errors[0].message
    assert sam.engine is not None and not sam.engine.in_sync
    assert sam.customer(cid).notes == ""
    conn.execute("PRAGMA max_page_count = 1073741823")
    await eventually(lambda: sam.customer(cid).notes.startswith("nnn"))
    await synced(sam)
    assert len(errors) == 1  # reported once, not at every retry


async def test_each_send_of_an_outbox_entry_is_counted(
    make_core: CoreFactory, server: ServerHandle,
) -> None:
    """An edit sent to a frozen server (SIGSTOP) shows "sent 1 time" until the ack."""
    alex = await make_core("alex")
    cid = await alex.create_customer({"name": "John Smith"})
    await synced(alex)
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        await alex.set_fields(cid, {"city": "Paris"})
        entries = alex.outbox()
        assert [e.attempts for e in entries] == [1]
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
    await synced(alex)
    assert alex.outbox() == []
