"""The missing-dependency checks of updates (sync/server/update_deps.py), against pycrdt.

``integrate_state`` must say "something would stay pending" exactly when pycrdt would keep
part of the update pending in the document, ``left_pending`` must see it after the fact,
``one_contiguous_client`` must spot every gap, and Room.apply_update, which combines them,
must refuse exactly those updates while its memory stays the sum of the changes it reports.
The property tests build random multi-client histories (text with emoji, formats and
embeds, maps with nested values and shared types, arrays, XML), merged and diffed updates
(which carry Skip structs), and apply them to a fresh document in a random order.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import (
    Array,
    Decoder,
    Doc,
    Map,
    Text,
    XmlElement,
    XmlFragment,
    XmlText,
    get_update,
    merge_updates,
)

from sync.server.rooms import InvalidUpdate, MissingDependencies, Room
from sync.server.update_deps import (
    UpdateFormatError,
    _read_delete_set,
    _read_structs,
    _Reader,
    left_pending,
    missing_dependencies,
    one_contiguous_client,
    read_state_vector,
)

CLIENTS = (3, 1 << 33, 77)
ALPHABET = "ab é\u0301😀"


def recording(client_id: int) -> tuple[Doc[Any], list[bytes]]:
    doc: Doc[Any] = Doc(client_id=client_id)
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    return doc, updates


def boundaries(text: Text) -> list[int]:
    """Offsets between characters: pycrdt 0.14 counts text in UTF-8 bytes, and an offset
    inside a character yields updates even pycrdt cannot integrate whole."""
    offsets = [0]
    for char in str(text):
        offsets.append(offsets[-1] + len(char.encode()))
    return offsets


def random_edit(doc: Doc[Any], rng: random.Random) -> None:
    """One transaction of one to three random operations on the shared roots."""
    text = doc.get("notes", type=Text)
    fields = doc.get("fields", type=Map)
    tasks = doc.get("list", type=Array)  # not "tasks": a customer document's is a Map
    xml = doc.get("xml", type=XmlFragment)
    with doc.transaction():
        for _ in range(rng.randint(1, 3)):
            op = rng.randrange(9)
            cuts = boundaries(text)
            if op == 0 or len(cuts) < 2:
                words = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 6)))
                text.insert(rng.choice(cuts), words)
            elif op == 1:
                start = rng.randrange(len(cuts) - 1)
                del text[cuts[start]:cuts[min(len(cuts) - 1, start + rng.randint(1, 3))]]
            elif op == 2:
                start = rng.randrange(len(cuts) - 1)
                text.format(cuts[start], cuts[min(len(cuts) - 1, start + 2)],
                            {"bold": rng.random() < 0.5})
            elif op == 3:
                value = rng.choice([1, -(2**40), 2.5, "s😀", None, True, [1, {"k": [None]}],
                                    {"deep": {"er": [b"\x00\x01"]}}])
                fields[rng.choice("abc")] = value
            elif op == 4:
                fields[rng.choice("abc")] = rng.choice(
                    [Text("t😀"), Map({"x": 1}), Array([1, "two"])]
                )
            elif op == 5 and len(fields):
                del fields[rng.choice(list(fields.keys()))]
            elif op == 6:
                tasks.insert(rng.randint(0, len(tasks)), rng.choice(["x", 5, Map({"t": "y"})]))
            elif op == 7 and len(tasks):
                del tasks[rng.randrange(len(tasks))]
            else:
                element = xml.children.append(XmlElement("p", {"class": "c"}))
                element.children.append(XmlText("hi"))


def history(seed: int, steps: int) -> list[bytes]:
    """Updates of three clients that see each other's changes now and then, plus merged and
    diffed updates (these carry Skip structs and several clients at once)."""
    rng = random.Random(seed)
    peers = [recording(c) for c in CLIENTS]
    produced: list[bytes] = []
    for _ in range(steps):
        doc, updates = rng.choice(peers)
        random_edit(doc, rng)
        produced.extend(updates)
        updates.clear()
        if rng.random() < 0.6:  # another client receives everything so far
            other, other_updates = rng.choice(peers)
            other.apply_update(merge_updates(*produced))
            other_updates.clear()
    extra = []
    for _ in range(4):
        sample = rng.sample(produced, k=min(len(produced), rng.randint(2, 5)))
        extra.append(merge_updates(*sample))
        base: Doc[Any] = Doc()
        for update in rng.sample(produced, k=len(produced) // 2):
            base.apply_update(update)
        extra.append(get_update(merge_updates(*produced), base.get_state()))
    return produced + extra


def pycrdt_leaves_pending(target: Doc[Any], update: bytes) -> bool:
    """Apply to a copy of ``target`` and see whether pycrdt integrated all of it (and
    check that left_pending, the check after applying, says the same)."""
    copy: Doc[Any] = Doc()
    copy.apply_update(target.get_update())
    copy.apply_update(update)
    state = copy.get_state()
    structs_left = Decoder(get_update(update, state)).read_var_uint() != 0
    reader = _Reader(update)
    _read_structs(reader)
    final = read_state_vector(state)
    deletes_left = any(clock >= final.get(client, 0) or clock + length > final.get(client, 0)
                       for client, clock, length in _read_delete_set(reader))
    truth = structs_left or deletes_left
    assert left_pending(get_update(update, state), state) == truth
    return truth


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32), steps=st.integers(2, 14), order_seed=st.integers(0, 2**32))
def test_check_agrees_with_pycrdt_on_random_histories(seed: int, steps: int,
                                                      order_seed: int) -> None:
    """Any order of any updates: the check predicts exactly what pycrdt leaves pending."""
    updates = history(seed, steps)
    random.Random(order_seed).shuffle(updates)
    target: Doc[Any] = Doc()
    for _round in range(3):  # refused ones are tried again once more arrived
        for update in updates:
            predicted = missing_dependencies(update, read_state_vector(target.get_state()))
            assert predicted == pycrdt_leaves_pending(target, update), update.hex()
            if not predicted:
                target.apply_update(update)
    everything: Doc[Any] = Doc()
    everything.apply_update(merge_updates(*updates))
    assert target.get_state() == everything.get_state()


def test_gap_in_own_sequence_and_unknown_origin_are_missing() -> None:
    """A client's second update without its first; another client's edit on unseen text."""
    alice, alice_updates = recording(1)
    text = alice.get("notes", type=Text)
    text.insert(0, "hello")
    text.insert(5, " world")
    first, second = alice_updates
    assert missing_dependencies(second, {})
    assert not missing_dependencies(first, {})
    assert not missing_dependencies(second, {1: 5})
    bob, bob_updates = recording(2)
    bob.apply_update(first)
    bob.get("notes", type=Text).insert(2, "X")  # its origin is one of alice's characters
    assert missing_dependencies(bob_updates[-1], {})
    assert not missing_dependencies(bob_updates[-1], {1: 5})


def test_deleting_an_unknown_item_is_missing() -> None:
    """A delete set naming items past the document's clock would wait: refused."""
    alice, alice_updates = recording(1)
    text = alice.get("notes", type=Text)
    text.insert(0, "abc")
    del text[0:1]
    insert, delete = alice_updates
    assert missing_dependencies(delete, {})
    assert not missing_dependencies(delete, {1: 3})
    assert not missing_dependencies(merge_updates(insert, delete), {})


def test_duplicates_and_empty_updates_are_not_missing() -> None:
    """An update already integrated, and the empty update, need nothing."""
    alice, alice_updates = recording(1)
    alice.get("fields", type=Map)["name"] = "A"
    assert not missing_dependencies(alice_updates[0], {1: 1})
    assert not missing_dependencies(b"\x00\x00", {})


@pytest.mark.parametrize("garbage", [
    b"", b"\xff\xff\xff", b"\x01\x01\x05\x00\x0b", b"\x01\x01\x05\x00\x08\x01\x01",
    b"\x01\x02\x05\x00" + b"\xff" * 20,
])
def test_unreadable_bytes_raise_update_format_error(garbage: bytes) -> None:
    """Truncated, unknown content types, runaway integers: UpdateFormatError only."""
    with pytest.raises(UpdateFormatError):
        missing_dependencies(garbage, {})


def test_deep_nesting_is_read_without_recursion() -> None:
    """A value nested 200,000 arrays deep is skipped iteratively (no RecursionError)."""
    depth = 200_000
    value = b"\x75\x01" * depth + b"\x7e"  # [[[[ … null … ]]]]
    root = b"\x01" + bytes([len("fields")]) + b"fields"
    update = b"\x01\x01\x09\x00\x08" + root + b"\x01" + value + b"\x00"
    assert not missing_dependencies(update, {})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32), steps=st.integers(2, 14), order_seed=st.integers(0, 2**32))
def test_a_room_refuses_exactly_what_pycrdt_would_keep_pending(seed: int, steps: int,
                                                              order_seed: int) -> None:
    """Room.apply_update, both paths (a live edit applied then checked; anything else, or
    any update to a strict room, checked first): refused exactly when pycrdt would keep
    something pending, and the document in memory is always the sum of the changes it
    reported (what the server logs and fans out)."""
    updates = history(seed, steps)
    random.Random(order_seed).shuffle(updates)
    room = Room("customer:00000000-0000-4000-8000-000000000000", Doc(), 0, False)
    logged: Doc[Any] = Doc()
    for _round in range(3):
        for update in updates:
            expected = pycrdt_leaves_pending(room.doc, update)
            try:
                change, refused = room.apply_update(update), False
            except MissingDependencies as exc:
                change, refused = exc.partial, True
            except InvalidUpdate:  # pragma: no cover - a failure of the test's own data
                pytest.fail(f"pycrdt refused a history update: {update.hex()}")
            assert refused == expected
            if change is not None:
                logged.apply_update(change.update)
            assert known(logged) == known(room.doc)
            assert content(logged) == content(room.doc)


def known(doc: Doc[Any]) -> dict[int, int]:
    """A document's state vector without empty entries (a purged copy may have some)."""
    return {c: k for c, k in read_state_vector(doc.get_state()).items() if k}


def content(doc: Doc[Any]) -> tuple[Any, ...]:
    """What the history's roots hold, deletions included."""
    copy: Doc[Any] = Doc()
    copy.apply_update(doc.get_update())
    return (str(copy.get("notes", type=Text)), copy.get("fields", type=Map).to_py(),
            copy.get("list", type=Array).to_py(), str(copy.get("xml", type=XmlFragment)))


def test_one_contiguous_client_spots_gaps_before_and_inside() -> None:
    """The cheap check of a live edit: one client, no gap before it, no Skip inside it."""
    alice, alice_updates = recording(1)
    text = alice.get("notes", type=Text)
    for word in ("one ", "two ", "three "):
        text.insert(len(str(text)), word)
    first, second, third = alice_updates
    empty = Doc().get_state()
    assert one_contiguous_client(first, empty)
    assert not one_contiguous_client(second, empty)  # starts past the document's clock
    known: Doc[Any] = Doc()
    known.apply_update(first)
    assert one_contiguous_client(second, known.get_state())
    assert one_contiguous_client(merge_updates(first, second), empty)
    holey = merge_updates(first, third)  # a Skip struct where "two " was
    assert not one_contiguous_client(holey, empty)
    bob, bob_updates = recording(2)
    bob.apply_update(first)
    bob.get("notes", type=Text).insert(0, "bob ")
    assert not one_contiguous_client(merge_updates(first, bob_updates[-1]), empty)
    assert not one_contiguous_client(b"\xff\xff", empty)
