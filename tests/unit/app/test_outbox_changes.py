"""The outbox counts what a rep calls a change (issue 15, item 9): per field, per notes
editing session, per customer — not one per keystroke. Offline core, real replica."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core import ClientCore
from app.events import Event, OutboxChanged


@pytest.fixture
def core(tmp_path: Path) -> Iterator[ClientCore]:
    """An offline profile (nothing is ever sent)."""
    c = ClientCore.open(tmp_path / "profile")
    yield c
    asyncio.run(c.close())


def test_a_sentence_typed_offline_is_one_change(core: ClientCore) -> None:
    """25 keystrokes in the notes are 1 change, and the event says so."""
    seen: list[int] = []

    def on_event(event: Event) -> None:
        if isinstance(event, OutboxChanged):
            seen.append(event.pending)

    async def body() -> str:
        cid = await core.create_customer({"name": "Ada Lovelace"})
        core.bus.subscribe(on_event)
        for index, char in enumerate("Called about the invoice."):
            await core.notes_insert(cid, index, char)
        return cid

    asyncio.run(body())
    pending = core.pending_changes()
    assert len(core.outbox()) == 26  # the replica still keeps every update
    assert (pending.changes, pending.customers) == (2, 1)  # new customer + notes
    assert seen[-1] == 2


def test_changes_count_per_field_and_customer(core: ClientCore) -> None:
    """Three edits of City are one change; Zip another; a second customer's name a third,
    on two customers."""

    async def body() -> None:
        a = await core.create_customer({"name": "Ada Lovelace"})
        b = await core.create_customer({"name": "Grace Hopper"})
        pending = core.pending_changes()
        assert (pending.changes, pending.customers) == (2, 2)
        for city in ("Paris", "Lyon", "Nice"):
            await core.set_fields(a, {"city": city})
        await core.set_fields(a, {"zip": "06000"})
        await core.set_fields(b, {"name": "Grace B. Hopper"})

    asyncio.run(body())
    pending = core.pending_changes()
    assert (pending.changes, pending.customers) == (5, 2)
    assert pending.text() == "5 changes on 2 customers"
