"""The outbox names the fields (and notes/tasks/comments) each entry changes, so the core
can say which parts of a customer still wait for the server, after a reopen too."""

from __future__ import annotations

import asyncio
from pathlib import Path

from app.core import ClientCore


def test_pending_parts_survive_a_restart_and_name_fields_and_roots(tmp_path: Path) -> None:
    """Offline edits of City, Zip, the notes and a task are named per customer, still after
    the profile is closed and opened again; another customer's parts are not mixed in."""

    async def run() -> tuple[str, str]:
        core = ClientCore.open(tmp_path / "profile")
        try:
            a = await core.create_customer({"name": "Ada Lovelace"})
            b = await core.create_customer({"name": "Grace Hopper"})
            await core.set_fields(a, {"city": "London", "zip": "N1"})
            await core.notes_insert(a, 0, "Called.")
            await core.add_task(a, "Call back")
            await core.set_fields(b, {"email": "grace@example.com"})
            return a, b
        finally:
            await core.close()

    a, b = asyncio.run(run())
    core = ClientCore.open(tmp_path / "profile")
    try:
        pending = core.pending_parts(a)
        assert {"name", "city", "zip", "notes", "tasks"} <= pending
        assert "comments" not in pending
        assert "email" not in pending  # created empty: nothing of it waits
        assert core.pending_fields(a) == pending - {"notes", "tasks", "comments", "meta"}
        assert {"name", "email"} <= core.pending_parts(b)
        assert not {"notes", "tasks"} & core.pending_parts(b)
    finally:
        asyncio.run(core.close())


def test_acknowledged_entries_leave_the_pending_parts(tmp_path: Path) -> None:
    """Once the entries of a customer leave the outbox (acked), nothing is pending."""

    async def run() -> None:
        core = ClientCore.open(tmp_path / "profile")
        try:
            a = await core.create_customer({"name": "Ada Lovelace"})
            await core.set_fields(a, {"city": "London"})
            assert "city" in core.pending_fields(a)
            for entry in core.outbox():
                core.replica.remove_outbox(entry.ref)  # as the sync engine does on an ack
            assert core.pending_fields(a) == frozenset()
        finally:
            await core.close()

    asyncio.run(run())
