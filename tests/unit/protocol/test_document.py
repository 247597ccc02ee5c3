"""The customer document: field rules, JSON shape, merge patch and CRDT merging."""

from __future__ import annotations

from typing import Any

import pytest
from pycrdt import Doc

from sync.protocol import document, schema
from sync.protocol.document import (
    MAX_COMMENT_LENGTH,
    add_comment,
    add_task,
    apply_merge_patch,
    fields_from_json,
    is_deleted,
    new_document,
    read_comments,
    read_fields,
    read_notes,
    read_tasks,
    roots,
    set_deleted,
    set_fields,
    to_json,
    validate_field,
)
from sync.protocol.errors import InvalidFieldValue

FIELDS = schema.field_names()
ADDRESS_FIELDS = tuple(f.name for f in schema.address_fields())

CUSTOMER = "0b7e4c1a-3f5d-4e2a-9c8b-1d2e3f4a5b6c"
SEED: dict[str, Any] = {
    "id": CUSTOMER,
    "name": "Sam Carter",
    "address": {
        "street1": "1 Main St",
        "street2": None,
        "city": "Springfield",
        "state": "IL",
        "zip": "62701",
    },
}


def sync(a: Doc[Any], b: Doc[Any]) -> None:
    """Exchange the missing updates both ways, as two replicas meeting through the server."""
    to_b = a.get_update(b.get_state())
    to_a = b.get_update(a.get_state())
    b.apply_update(to_b)
    a.apply_update(to_a)


def replica_of(doc: Doc[Any]) -> Doc[Any]:
    """A second replica starting from ``doc``'s current state."""
    other = new_document()
    other.apply_update(doc.get_update())
    return other


# --- field rules ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("name", "  Sam Carter \n", "Sam Carter"),
        ("name", "x" * 200, "x" * 200),
        ("email", "sam@example.com", "sam@example.com"),
        ("email", "", ""),
        ("phone", "+1 (555) 010-2030 x12", "+1 (555) 010-2030 x12"),
        ("street2", "  ", ""),
        ("city", "Zürich", "Zürich"),
        ("state", "s" * 64, "s" * 64),
        ("zip", "SW1A 1AA", "SW1A 1AA"),
        ("zip", "12345-6789", "12345-6789"),
        ("tier", "premium", "premium"),
    ],
)
def test_valid_values_are_normalised(field: str, value: str, expected: str) -> None:
    """Valid values pass, trimmed of surrounding whitespace."""
    assert validate_field(field, value) == expected


@pytest.mark.parametrize("field", list(FIELDS))
def test_null_is_a_value_for_every_field(field: str) -> None:
    """None is accepted by every field's rule and stays None."""
    assert validate_field(field, None) is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "x" * 201),
        ("email", "not-an-address"),
        ("email", "sam@example"),
        ("email", "two words@example.com"),
        ("email", "a" * 250 + "@x.io"),
        ("phone", "call me"),
        ("phone", "1" * 41),
        ("street1", "x" * 201),
        ("street2", "x" * 201),
        ("city", "x" * 101),
        ("state", "x" * 65),
        ("zip", "62701!"),
        ("zip", "1" * 17),
        ("tier", "gold"),
        ("tier", "Premium"),
    ],
)
def test_invalid_values_are_rejected(field: str, value: str) -> None:
    """Each field's length or format rule rejects a bad value, naming the field."""
    with pytest.raises(InvalidFieldValue) as info:
        validate_field(field, value)
    assert info.value.field == field


@pytest.mark.parametrize("value", [42, 1.5, True, ["Sam"], {"first": "Sam"}, b"Sam"])
def test_wrong_types_are_rejected(value: Any) -> None:
    """Non-text values (numbers, booleans, lists, maps, bytes) are rejected for text fields."""
    for field in FIELDS:
        with pytest.raises(InvalidFieldValue):
            validate_field(field, value)


def test_unknown_field_is_rejected() -> None:
    """A field not in the table is rejected with a message listing the known fields."""
    with pytest.raises(InvalidFieldValue, match="unknown field") as info:
        validate_field("nickname", "Sammy")
    assert info.value.field == "nickname"


def test_trimming_applies_before_the_length_limit() -> None:
    """A value over the limit only because of surrounding spaces is accepted, trimmed."""
    assert validate_field("state", "  " + "s" * 64 + "  ") == "s" * 64


# --- set_fields -------------------------------------------------------------------------


def test_set_fields_writes_normalised_values() -> None:
    """set_fields stores trimmed values and read_fields returns every field."""
    doc = new_document()
    assert set_fields(doc, {"name": " Sam ", "tier": None}) == {"name": "Sam", "tier": None}
    values = read_fields(doc)
    assert set(values) == set(FIELDS)
    assert values["name"] == "Sam"
    assert values["email"] is None


def test_set_fields_writes_nothing_when_any_value_is_invalid() -> None:
    """One invalid value among valid ones: InvalidFieldValue and the document is untouched."""
    doc = new_document()
    set_fields(doc, {"name": "Sam"})
    before = doc.get_update()
    with pytest.raises(InvalidFieldValue):
        set_fields(doc, {"name": "Alex", "city": "Paris", "email": "nope"})
    assert doc.get_update() == before
    assert read_fields(doc)["name"] == "Sam"
    assert read_fields(doc)["city"] is None


def test_set_fields_with_same_values_produces_no_update() -> None:
    """Writing a field's current value again changes nothing in the CRDT state."""
    doc = new_document()
    set_fields(doc, {"name": "Sam", "city": None})
    state = doc.get_state()
    set_fields(doc, {"name": "  Sam ", "city": None})
    assert doc.get_state() == state


def test_read_fields_reads_wrong_types_as_text() -> None:
    """A non-text value written by a misbehaving peer reads as its text."""
    doc = new_document()
    roots(doc).fields["zip"] = 62701  # pycrdt stores numbers as floats (JavaScript numbers)
    roots(doc).fields["tier"] = True
    assert read_fields(doc)["zip"] in {"62701", "62701.0"}
    assert read_fields(doc)["tier"] == "True"


# --- JSON shape and merge patch ---------------------------------------------------------


def test_to_json_has_the_seed_shape() -> None:
    """to_json nests the address fields, keeps the others flat and adds id and deleted."""
    doc = new_document()
    set_fields(doc, fields_from_json(SEED, partial=False))
    data = to_json(CUSTOMER, doc)
    assert set(data) == {"id", "deleted", "address"} | (set(FIELDS) - set(ADDRESS_FIELDS))
    assert data["id"] == CUSTOMER
    assert data["address"] == SEED["address"]
    assert data["name"] == "Sam Carter"
    assert data["tier"] is None
    assert data["deleted"] is False


def test_tombstone_shows_in_json_and_can_be_cleared() -> None:
    """set_deleted sets and clears the tombstone that is_deleted and to_json report."""
    doc = new_document()
    set_deleted(doc, True)
    assert is_deleted(doc)
    assert to_json(CUSTOMER, doc)["deleted"] is True
    set_deleted(doc, False)
    assert not is_deleted(doc)


def test_fields_from_json_full_fills_missing_fields_with_null() -> None:
    """A full (non-partial) object yields every field; id and deleted are ignored."""
    values = fields_from_json({**SEED, "deleted": True}, partial=False)
    assert set(values) == set(FIELDS)
    assert values["city"] == "Springfield"
    assert values["email"] is None


def test_fields_from_json_partial_keeps_only_present_keys() -> None:
    """A partial object yields only the keys it names (flattened from address)."""
    assert fields_from_json({"address": {"zip": " 10001 "}}, partial=True) == {"zip": "10001"}


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"nickname": "Sammy"}, "nickname"),
        ({"address": {"country": "FR"}}, "address.country"),
        ({"address": "1 Main St"}, "address"),
        ({"address": ["1 Main St"]}, "address"),
        ({"city": "Paris"}, "city"),
        ({"email": "nope"}, "email"),
    ],
)
def test_fields_from_json_rejects_bad_keys_and_values(patch: dict[str, Any], field: str) -> None:
    """Unknown keys, a non-object address, flat address fields and bad values are rejected."""
    with pytest.raises(InvalidFieldValue) as info:
        fields_from_json(patch, partial=True)
    assert info.value.field == field


def seeded() -> Doc[Any]:
    """A document holding the seed-000 customer."""
    doc = new_document()
    set_fields(doc, fields_from_json(SEED, partial=False))
    return doc


def test_merge_patch_merges_nested_address() -> None:
    """RFC 7396: a patch naming address.city changes only city; other fields stay."""
    doc = seeded()
    assert apply_merge_patch(doc, {"address": {"city": "Paris"}}) == {"city": "Paris"}
    data = to_json(CUSTOMER, doc)
    assert data["address"] == {**SEED["address"], "city": "Paris"}
    assert data["name"] == "Sam Carter"


def test_merge_patch_null_sets_null() -> None:
    """A null member sets the field to null (null is a value here, not a removal)."""
    doc = seeded()
    apply_merge_patch(doc, {"name": None, "address": {"street1": None}})
    data = to_json(CUSTOMER, doc)
    assert data["name"] is None
    assert data["address"]["street1"] is None
    assert data["address"]["city"] == "Springfield"


def test_merge_patch_null_address_clears_every_address_field() -> None:
    """``"address": null`` sets all five address fields to null."""
    doc = seeded()
    apply_merge_patch(doc, {"address": None})
    assert to_json(CUSTOMER, doc)["address"] == dict.fromkeys(ADDRESS_FIELDS)
    assert read_fields(doc)["name"] == "Sam Carter"


def test_merge_patch_with_unknown_key_changes_nothing() -> None:
    """A patch with one unknown key is rejected whole: the valid members are not applied."""
    doc = seeded()
    before = doc.get_update()
    with pytest.raises(InvalidFieldValue):
        apply_merge_patch(doc, {"name": "Alex", "favourite_colour": "blue"})
    assert doc.get_update() == before


def test_empty_merge_patch_changes_nothing() -> None:
    """The empty patch {} writes nothing."""
    doc = seeded()
    state = doc.get_state()
    assert apply_merge_patch(doc, {}) == {}
    assert doc.get_state() == state


# --- tasks ------------------------------------------------------------------------------


def test_tasks_are_appended_in_order() -> None:
    """add_task puts each new task after the last; read_tasks returns them in order."""
    doc = new_document()
    ids = [add_task(doc, title) for title in ("call back", " send invoice ", "close case")]
    tasks = read_tasks(doc)
    assert [t.id for t in tasks] == ids
    assert [t.title for t in tasks] == ["call back", "send invoice", "close case"]
    assert [t.order for t in tasks] == [1.0, 2.0, 3.0]
    assert not any(t.done for t in tasks)


@pytest.mark.parametrize("title", ["", "   ", "x" * 501, None])
def test_task_title_is_checked(title: Any) -> None:
    """A task needs a non-blank title of at most 500 characters; nothing is added otherwise."""
    doc = new_document()
    with pytest.raises(InvalidFieldValue):
        add_task(doc, title)
    assert read_tasks(doc) == []


def test_concurrent_task_adds_get_the_same_order_everywhere() -> None:
    """Two replicas adding a task at the same order show both in one order (ties by id)."""
    a = new_document()
    b = replica_of(a)
    add_task(a, "from a", task_id="bbbb")
    add_task(b, "from b", task_id="aaaa")
    sync(a, b)
    assert read_tasks(a) == read_tasks(b)
    assert [t.id for t in read_tasks(a)] == ["aaaa", "bbbb"]


def test_equal_orders_break_ties_by_task_id() -> None:
    """Tasks with the same order are listed by id, whatever the map's iteration order."""
    doc = new_document()
    ids = [f"task-{i:02d}" for i in range(20)]
    for task_id in reversed(ids):
        add_task(doc, "same place", task_id=task_id)
        roots(doc).tasks[task_id]["order"] = 1.0
    assert [t.id for t in read_tasks(doc)] == ids


def test_concurrent_reorder_of_one_task_converges_without_duplicates() -> None:
    """Moving the same task to different places on two replicas: one position, no copies."""
    a = new_document()
    first, second, third = (add_task(a, t) for t in ("one", "two", "three"))
    b = replica_of(a)
    roots(a).tasks[first]["order"] = 2.5  # a moves "one" between "two" and "three"
    roots(b).tasks[first]["order"] = 4.0  # b moves "one" to the end
    sync(a, b)
    tasks_a, tasks_b = read_tasks(a), read_tasks(b)
    assert tasks_a == tasks_b
    assert sorted(t.id for t in tasks_a) == sorted([first, second, third])
    winner = next(t.order for t in tasks_a if t.id == first)
    expected = {2.5: [second, first, third], 4.0: [second, third, first]}
    assert [t.id for t in tasks_a] == expected[winner]


def test_concurrent_reorder_and_toggle_of_one_task_keep_both_changes() -> None:
    """A reorder on one replica and a toggle on another both survive the merge."""
    a = new_document()
    first = add_task(a, "one")
    add_task(a, "two")
    b = replica_of(a)
    roots(a).tasks[first]["order"] = 3.0
    roots(b).tasks[first]["done"] = True
    sync(a, b)
    assert read_tasks(a) == read_tasks(b)
    moved = read_tasks(a)[-1]
    assert (moved.id, moved.order, moved.done) == (first, 3.0, True)


# --- comments and notes -----------------------------------------------------------------


def test_comments_from_two_replicas_are_both_kept() -> None:
    """Comments appended concurrently on two replicas merge into one thread with both."""
    a = new_document()
    add_comment(a, "alice", "first", 1.0)
    b = replica_of(a)
    add_comment(a, "alice", "from alice", 2.0)
    add_comment(b, "bob", "from bob", 2.5)
    sync(a, b)
    assert read_comments(a) == read_comments(b)
    assert read_comments(a)[0].text == "first"
    assert sorted(c.text for c in read_comments(a)) == ["first", "from alice", "from bob"]
    assert len({c.id for c in read_comments(a)}) == 3


@pytest.mark.parametrize("text", ["", "  ", "x" * (MAX_COMMENT_LENGTH + 1)])
def test_comment_text_is_checked(text: str) -> None:
    """Blank or over-long comments are rejected and not appended."""
    doc = new_document()
    with pytest.raises(InvalidFieldValue):
        add_comment(doc, "alice", text, 1.0)
    assert read_comments(doc) == []


def test_concurrent_note_inserts_merge() -> None:
    """Two reps typing in the notes at once: both insertions survive, same text everywhere."""
    a = new_document()
    roots(a).notes.insert(0, "Customer called.")
    b = replica_of(a)
    roots(a).notes.insert(0, "[A] ")
    notes_b = roots(b).notes
    notes_b.insert(len(notes_b), " [B]")
    sync(a, b)
    assert read_notes(a) == read_notes(b) == "[A] Customer called. [B]"


def test_concurrent_field_edits_converge() -> None:
    """Two replicas setting the same field concurrently end with the same single value."""
    a = seeded()
    b = replica_of(a)
    set_fields(a, {"city": "Paris"})
    set_fields(b, {"city": "Lyon", "name": "Sam C."})
    sync(a, b)
    assert read_fields(a) == read_fields(b)
    assert read_fields(a)["city"] in {"Paris", "Lyon"}
    assert read_fields(a)["name"] == "Sam C."


def test_repair_fields_undoes_values_that_break_the_rules() -> None:
    doc = document.new_document()
    tracker = document.ChangeTracker(doc)
    document.set_fields(doc, {"email": "ann@example.com", "name": "Ann"})
    fields = document.roots(doc).fields
    with tracker.tracking():
        with doc.transaction():  # what a peer that checks nothing can write
            fields["email"] = 42.0
            fields["zip"] = "not a zip!!"
            fields["evil"] = "x"
            fields["name"] = "Bob"
        repaired = document.repair_fields(doc, tracker.fields)
    assert set(repaired) == {"email", "zip", "evil"}
    assert "postal code" in repaired["zip"]
    assert fields.to_py() == {"email": "ann@example.com", "name": "Bob"}
    assert document.repair_fields(doc, {"name": {"newValue": "Bob"}}) == {}


def test_notes_edits_use_character_positions_in_non_ascii_text() -> None:
    doc = document.new_document()
    document.insert_notes(doc, 0, "José 😀 ok")
    document.insert_notes(doc, 4, "!")  # after "José" (pycrdt counts UTF-8 bytes)
    assert document.read_notes(doc) == "José! 😀 ok"
    document.delete_notes(doc, 6, 1)  # the emoji, one character
    assert document.read_notes(doc) == "José!  ok"
    document.insert_notes(doc, 99, "?")  # clamped to the end
    assert document.read_notes(doc) == "José!  ok?"
    document.replace_notes(doc, "ñandú")
    assert document.read_notes(doc) == "ñandú"


def test_a_field_added_to_the_table_reaches_the_document_functions() -> None:
    """schema.extended: read_fields, to_json, fields_from_json and validation see the row."""
    extra = schema.Field("phone2", "Phone 2", schema.text_rule(40), "Contact")
    with schema.extended(extra):
        doc = new_document()
        assert fields_from_json({"phone2": " 555 "}, partial=True) == {"phone2": "555"}
        apply_merge_patch(doc, {"phone2": "555-0199"})
        assert read_fields(doc)["phone2"] == "555-0199"
        assert to_json(CUSTOMER, doc)["phone2"] == "555-0199"
        assert fields_from_json({}, partial=False)["phone2"] is None
    with pytest.raises(InvalidFieldValue):
        validate_field("phone2", "x")


def test_repair_fields_undoes_what_the_writer_role_may_not_write() -> None:
    """A customer's change of tier is undone; its change of city is kept."""
    doc = new_document()
    set_fields(doc, {"tier": "basic", "city": "Oslo"})
    tracker = document.ChangeTracker(doc)
    with tracker.tracking():
        roots(doc).fields["tier"] = "premium"
        roots(doc).fields["city"] = "Bergen"
        repaired = document.repair_fields(doc, tracker.fields, writer=schema.Role.CUSTOMER)
    tracker.close()
    assert set(repaired) == {"tier"}
    assert read_fields(doc)["tier"] == "basic"
    assert read_fields(doc)["city"] == "Bergen"
    assert document.forbidden_fields(["tier", "city", "name"], "customer") == ("name", "tier")
    assert document.forbidden_fields(["tier"], None) == ()
