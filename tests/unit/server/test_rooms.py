"""Rooms: what an integrated update did, duplicates, gaps, and one load per document."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pycrdt import Doc

from sync.protocol import document
from sync.protocol.messages import NotificationKind
from sync.server.rooms import InvalidUpdate, MissingDependencies, Room, RoomRegistry


def client_updates() -> tuple[Doc[Any], list[bytes]]:
    """A client document that records every update it makes."""
    doc = document.new_document()
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    return doc, updates


def empty_room(exists: bool = False) -> Room:
    """A room with an empty document."""
    return Room("customer:00000000-0000-4000-8000-000000000000", document.new_document(), 0,
                exists)


def test_first_update_reports_created_with_fields_and_title() -> None:
    """The first update of a document is 'created' and names the fields it set."""
    doc, updates = client_updates()
    document.set_fields(doc, {"name": "John Smith", "city": "DC"})
    change = empty_room().apply_update(updates[-1])
    assert change is not None
    assert change.kinds == (NotificationKind.CREATED,)
    assert change.fields == ("name", "city") and change.title == "John Smith"


def test_later_updates_report_updated_deleted_restored_commented() -> None:
    """Kinds follow what changed: fields, the tombstone, comments."""
    doc, updates = client_updates()
    room = empty_room()
    document.set_fields(doc, {"name": "A"})
    room.apply_update(updates[-1])
    document.set_fields(doc, {"zip": "12345"})
    assert room.apply_update(updates[-1]).kinds == (NotificationKind.UPDATED,)  # type: ignore[union-attr]
    document.set_deleted(doc, True)
    assert room.apply_update(updates[-1]).kinds == (NotificationKind.DELETED,)  # type: ignore[union-attr]
    document.set_deleted(doc, False)
    assert room.apply_update(updates[-1]).kinds == (NotificationKind.RESTORED,)  # type: ignore[union-attr]
    document.add_comment(doc, "sam", "called back", 1.0)
    assert room.apply_update(updates[-1]).kinds == (NotificationKind.COMMENTED,)  # type: ignore[union-attr]
    document.roots(doc).notes.insert(0, "hello")
    change = room.apply_update(updates[-1])
    assert change is not None and change.changes == ("notes",)


def test_duplicate_update_changes_nothing() -> None:
    """Applying an update twice reports no change the second time."""
    doc, updates = client_updates()
    room = empty_room()
    document.set_fields(doc, {"name": "A"})
    assert room.apply_update(updates[-1]) is not None
    assert room.apply_update(updates[-1]) is None


def test_update_with_a_gap_raises_missing_dependencies_then_integrates() -> None:
    """An update past a gap is refused; once the gap is filled both are integrated."""
    doc, updates = client_updates()
    room = empty_room()
    document.set_fields(doc, {"name": "first"})
    document.set_fields(doc, {"name": "second"})
    with pytest.raises(MissingDependencies):
        room.apply_update(updates[1])
    change = room.apply_update(updates[0])
    assert change is not None
    assert document.read_fields(room.doc)["name"] == "second"


def test_garbage_update_raises_invalid_update_and_changes_nothing() -> None:
    """Bytes that are no update raise InvalidUpdate; the document is unchanged."""
    room = empty_room()
    before = room.doc.get_state()
    with pytest.raises(InvalidUpdate):
        room.apply_update(b"\xff\xff\xff")
    assert room.doc.get_state() == before


def test_edit_with_invalid_value_changes_nothing() -> None:
    """A server-side edit that raises writes nothing and reports no change."""
    room = empty_room(exists=True)
    with pytest.raises(document.InvalidFieldValue):
        room.edit(lambda doc: document.set_fields(doc, {"name": "ok", "email": "bad"}))
    assert document.read_fields(room.doc)["name"] is None
    assert room.edit(lambda doc: None) is None


async def test_concurrent_first_opens_load_once() -> None:
    """50 simultaneous opens of a not-yet-loaded document share one load."""
    loads = 0
    gate = asyncio.Event()

    async def loader(doc_id: str) -> tuple[list[bytes], int, bool]:
        nonlocal loads
        loads += 1
        await gate.wait()
        return [], 0, False

    registry = RoomRegistry(loader)
    tasks = [asyncio.create_task(registry.get("customer:x")) for _ in range(50)]
    await asyncio.sleep(0)
    gate.set()
    rooms = await asyncio.gather(*tasks)
    assert loads == 1 and len({id(r) for r in rooms}) == 1


async def test_failed_load_is_reported_to_every_waiter_and_retried() -> None:
    """A load that fails raises for all waiters; the next get() tries again."""
    calls = 0

    async def loader(doc_id: str) -> tuple[list[bytes], int, bool]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        if calls == 1:
            raise OSError("disk gone")
        return [], 0, False

    registry = RoomRegistry(loader)
    results = await asyncio.gather(*(registry.get("customer:y") for _ in range(3)),
                                   return_exceptions=True)
    assert all(isinstance(r, OSError) for r in results)
    assert isinstance(await registry.get("customer:y"), Room)
