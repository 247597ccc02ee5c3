"""Regression: a conflict is recorded only for a real concurrent write (found by the fault
run, seed 2): sequential overwrites that reach an offline rep in one sync are not one."""

from __future__ import annotations

from pathlib import Path

from app.core import ClientCore
from tests.integration.conftest import DEFAULT_PASSWORD, ServerHandle, scaled


async def _core(server: ServerHandle, folder: Path, name: str) -> ClientCore:
    server.add_user(name)
    core = ClientCore.open(folder / name)
    await core.login(server.http_url, name, DEFAULT_PASSWORD)
    return core


async def _shared(alex: ClientCore, sam: ClientCore, fields: dict[str, str]) -> str:
    """A customer Alex creates with ``fields`` and Sam has opened and synced."""
    cid = await alex.create_customer({"name": fields["name"]})
    if len(fields) > 1:
        await alex.set_fields(cid, {k: v for k, v in fields.items() if k != "name"})
    await alex.sync(scaled(20))
    await sam.sync(scaled(20))
    await sam.open_customer(cid)
    await sam.sync(scaled(20))
    return cid


async def test_two_sequential_overwrites_while_offline_are_not_a_conflict(
        server: ServerHandle, tmp_path: Path) -> None:
    """Alex's value, seen by Sam and then overwritten twice by Sam, is no conflict for Alex."""
    alex = await _core(server, tmp_path, "alex")
    sam = await _core(server, tmp_path, "sam")
    try:
        cid = await _shared(alex, sam, {"name": "Shared", "city": "Boston"})
        assert sam.customer(cid).fields["city"] == "Boston"
        await alex.disconnect()
        await sam.set_fields(cid, {"city": "Salem"})
        await sam.sync(scaled(20))
        await sam.set_fields(cid, {"city": "Lowell"})
        await sam.sync(scaled(20))
        await alex.sync(scaled(20))
        assert alex.customer(cid).fields["city"] == "Lowell"
        assert alex.conflicts() == []
    finally:
        await alex.close()
        await sam.close()


async def test_one_overwrite_after_seeing_mine_is_not_a_conflict(
        server: ServerHandle, tmp_path: Path) -> None:
    """A single overwrite by someone who had seen my value records no conflict."""
    alex = await _core(server, tmp_path, "alex")
    sam = await _core(server, tmp_path, "sam")
    try:
        cid = await _shared(alex, sam, {"name": "Shared", "city": "Boston"})
        await alex.disconnect()
        await sam.set_fields(cid, {"city": "Salem"})
        await sam.sync(scaled(20))
        await alex.sync(scaled(20))
        assert alex.customer(cid).fields["city"] == "Salem"
        assert alex.conflicts() == []
    finally:
        await alex.close()
        await sam.close()


async def test_concurrent_writes_while_offline_are_a_conflict(
        server: ServerHandle, tmp_path: Path) -> None:
    """Two reps who both change a field offline: the loser gets exactly one conflict."""
    alex = await _core(server, tmp_path, "alex")
    sam = await _core(server, tmp_path, "sam")
    try:
        cid = await _shared(alex, sam, {"name": "Shared"})
        await alex.disconnect()
        await sam.disconnect()
        await alex.set_fields(cid, {"city": "Boston"})
        await sam.set_fields(cid, {"city": "Salem"})
        for core in (alex, sam, alex, sam):
            await core.sync(scaled(20))
        final = alex.customer(cid).fields["city"]
        assert final == sam.customer(cid).fields["city"]
        loser = alex if final == "Salem" else sam
        winner = sam if loser is alex else alex
        assert [(c.field, c.theirs) for c in loser.conflicts()] == [("city", final)]
        assert winner.conflicts() == []
    finally:
        await alex.close()
        await sam.close()
