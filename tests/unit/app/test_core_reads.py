"""Edits flow once: committing a field reads the stored document at most once, and the
change event carries what a view needs (no re-read of the customer)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from app.core import ClientCore
from app.events import DocumentChanged, Event


def test_committing_a_field_reads_the_stored_document_once(tmp_path: Path) -> None:
    """set_fields on a customer not open in memory loads its state from SQLite once; a
    second commit and reading the customer afterwards load it no more."""

    async def run() -> None:
        core = ClientCore.open(tmp_path / "profile")
        try:
            cid = await core.create_customer({"name": "Ada Lovelace"})
            core.docs.forget(cid)  # as after a restart: only the replica has it
            loads: list[str] = []
            core.replica._conn().set_trace_callback(
                lambda sql: loads.append(sql) if "SELECT state FROM documents" in sql else None)
            events: list[Event] = []
            core.bus.subscribe(events.append)
            await core.set_fields(cid, {"city": "London"})
            await core.set_fields(cid, {"zip": "N1"})
            view = core.customer(cid)
            assert len(loads) == 1
            assert view.fields["city"] == "London"
            changed = [e for e in events if isinstance(e, DocumentChanged)]
            assert [e.values for e in changed] == [{"city": "London"}, {"zip": "N1"}]
        finally:
            await core.close()

    asyncio.run(run())


def test_count_says_how_many_customers_match(tmp_path: Path) -> None:
    """ClientCore.count counts the directory's matches (offline, from the local index),
    the same customers search lists."""

    async def run() -> None:
        core = ClientCore.open(tmp_path / "profile")
        try:
            await core.create_customer({"name": "Ada Lovelace", "city": "London"})
            await core.create_customer({"name": "Grace Hopper", "city": "Arlington"})
            assert core.count("") == 2
            assert core.count("london") == 1 == len(core.search("london"))
            assert core.count("nobody") == 0
        finally:
            await core.close()

    asyncio.run(run())
