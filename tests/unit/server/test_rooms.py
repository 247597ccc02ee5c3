"""Rooms: what an integrated update did, duplicates, gaps, and one load per document."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref
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


def test_field_values_and_title_stay_in_step_with_the_document() -> None:
    """The room's kept field values (directory rows) and title match a fresh read after
    edits, a deletion, a repaired odd value, a losing concurrent write and a server edit."""
    doc, updates = client_updates()
    room = empty_room()
    assert room.field_values()["name"] is None  # read once, kept in step from here
    fields = document.roots(doc).fields

    def check() -> None:
        assert dict(room.field_values()) == document.read_fields(room.doc)
        assert room.name == document.read_fields(room.doc)["name"]

    document.set_fields(doc, {"name": "Ann", "city": "Oslo"})
    room.apply_update(updates[-1])
    check()
    del fields["city"]
    room.apply_update(updates[-1])
    check()
    fields["zip"] = 12345.0  # not text: undone inside the change (a Yjs peer's repair)
    room.apply_update(updates[-1], repair=True)
    check()
    fields["name"] = 7.0  # not text, kept as it is without repair: read as its text
    room.apply_update(updates[-1])
    check()
    loser: Doc[Any] = Doc(client_id=1)  # a lower client id loses the concurrent write
    document.roots(loser).fields["name"] = "Loser"
    room.apply_update(loser.get_update(room.doc.get_state()))
    check()
    room.edit(lambda d: document.set_fields(d, {"name": "Bea"}))
    check()
    assert room.field_values()["name"] == "Bea"


def test_duplicate_update_changes_nothing() -> None:
    """Applying an update twice reports no change the second time."""
    doc, updates = client_updates()
    room = empty_room()
    document.set_fields(doc, {"name": "A"})
    assert room.apply_update(updates[-1]) is not None
    assert room.apply_update(updates[-1]) is None


def test_update_with_a_gap_raises_missing_dependencies_then_integrates() -> None:
    """An update past a gap is refused and not kept; once the gap is filled it is
    integrated when sent again (as a resyncing client does)."""
    doc, updates = client_updates()
    room = empty_room()
    document.set_fields(doc, {"name": "first"})
    document.set_fields(doc, {"name": "second"})
    with pytest.raises(MissingDependencies):
        room.apply_update(updates[1])
    change = room.apply_update(updates[0])
    assert change is not None
    assert document.read_fields(room.doc)["name"] == "first"  # the second was not kept
    assert room.apply_update(updates[1]) is not None
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


# --- eviction ------------------------------------------------------------------------------


class FakeSubscriber:
    """Stands for a connection in a room's subscriber dicts."""

    session_id = "s"
    username = "u"

    def post(self, frame: bytes) -> None:
        """Nothing to send to."""


def stored_loader(store: dict[str, list[bytes]]) -> Any:
    """A loader over an in-memory 'log': doc id → updates (seq = how many)."""
    async def loader(doc_id: str) -> tuple[list[bytes], int, bool]:
        parts = list(store.get(doc_id, []))
        return parts, len(parts), bool(parts)
    return loader


async def test_idle_rooms_are_evicted_busy_and_undurable_ones_kept() -> None:
    """Idle for the timeout and durable: evicted. Subscribers, Yjs connections, presence,
    or a change not yet durable keep a room loaded."""
    registry = RoomRegistry(stored_loader({}))
    rooms = [await registry.get(f"customer:{i}") for i in range(6)]
    rooms[0].subscribers["s"] = FakeSubscriber()
    rooms[1].yjs["y"] = FakeSubscriber()
    rooms[2].presence["s"] = ("u", {"field": "name"})
    rooms[3].seq = 7  # changed, not yet known durable
    now = rooms[5].last_used
    assert not registry.idle(now + 0.5, idle_after=1.0)
    assert registry.idle(now + 2.0, idle_after=1.0)
    assert registry.evict_idle(now + 2.0, idle_after=1.0) == 2  # rooms 4 and 5
    assert {r.doc_id for r in registry} == {f"customer:{i}" for i in range(4)}
    registry.durable_seq = 7
    rooms[0].subscribers.clear()  # the last subscriber leaves (last seen busy at +2.0)
    assert registry.evict_idle(now + 2.5, idle_after=1.0) == 1  # room 3, now durable
    assert registry.evict_idle(now + 2.9, idle_after=1.0) == 0
    assert registry.evict_idle(now + 3.1, idle_after=1.0) == 1  # room 0, idle a second
    assert {r.doc_id for r in registry} == {"customer:1", "customer:2"}


async def test_cap_evicts_the_least_recently_used_idle_rooms_first() -> None:
    """Past max_rooms a load evicts the least recently used evictable rooms at once; a room
    in use is never evicted, so the cap yields to it."""
    registry = RoomRegistry(stored_loader({}), max_rooms=3)
    a = await registry.get("customer:a")
    a.subscribers["s"] = FakeSubscriber()
    await registry.get("customer:b")
    await registry.get("customer:c")
    await registry.get("customer:b")  # used again: c is now the least recently used idle
    await registry.get("customer:d")
    assert [r.doc_id for r in registry] == ["customer:a", "customer:b", "customer:d"]
    b = await registry.get("customer:b")
    b.subscribers["s"] = FakeSubscriber()
    d = await registry.get("customer:d")
    d.presence["s"] = ("u", {})
    await registry.get("customer:e")  # nothing evictable: four loaded, over the cap
    assert len(registry) == 4
    d.presence.clear()
    assert registry.evict_idle(d.last_used, idle_after=3600) == 1  # back to the cap
    assert [r.doc_id for r in registry] == ["customer:a", "customer:b", "customer:e"]


async def test_an_evicted_room_still_referred_to_is_handed_out_again() -> None:
    """A request holding a room across its eviction edits the copy everyone gets next:
    never two live copies of a document, no edit lost from memory."""
    log: dict[str, list[bytes]] = {}
    registry = RoomRegistry(stored_loader(log))
    held = await registry.get("customer:h")
    assert registry.evict_idle(held.last_used + 10, idle_after=1.0) == 1
    change = held.edit(lambda doc: document.set_fields(doc, {"name": "Late"}))
    assert change is not None and change.fields == ("name",)  # still tracked after release
    again = await registry.get("customer:h")
    assert again is held and document.read_fields(again.doc)["name"] == "Late"


async def test_an_evicted_room_is_freed_and_its_state_forgotten() -> None:
    """Once nothing refers to it the room is freed (pycrdt's observer cycle is broken by
    release()), on_gone fires, and the next use loads it from storage again."""
    log: dict[str, list[bytes]] = {}
    gone: list[str] = []
    registry = RoomRegistry(stored_loader(log), on_gone=gone.append)
    room = await registry.get("customer:f")
    change = room.edit(lambda doc: document.set_fields(doc, {"name": "Stored"}))
    assert change is not None
    log["customer:f"] = [change.update]
    registry.durable_seq = room.seq = 1
    alive = weakref.ref(room)
    del room, change
    assert registry.evict_idle(time.monotonic() + 10, idle_after=1.0) == 1
    gc.collect()
    assert alive() is None and gone == ["customer:f"]
    reloaded = await registry.get("customer:f")
    assert document.read_fields(reloaded.doc)["name"] == "Stored" and reloaded.seq == 1


def test_released_rooms_do_not_pile_up_in_memory() -> None:
    """Without release() the document of every room that ever observed it stays in memory
    (a cycle through pycrdt's Rust side that Python's collector cannot see)."""
    def make(release: bool) -> weakref.ref[Any]:
        room = empty_room(exists=True)
        room.edit(lambda doc: document.set_fields(doc, {"name": "x"}))
        if release:
            room.release()
        return weakref.ref(room.doc)

    kept, released = make(False), make(True)
    gc.collect()
    assert kept() is not None
    assert released() is None


async def test_a_room_handed_out_again_after_eviction_is_announced() -> None:
    """on_back fires when an evicted room comes back (the hub has it catch up with other
    nodes' changes, integrated nowhere while it was evicted); not on a plain load."""
    log: dict[str, list[bytes]] = {}
    back: list[str] = []
    registry = RoomRegistry(stored_loader(log), on_back=back.append)
    held = await registry.get("customer:k")
    assert back == []
    assert registry.evict_idle(held.last_used + 10, idle_after=1.0) == 1
    assert await registry.get("customer:k") is held
    assert back == ["customer:k"]
