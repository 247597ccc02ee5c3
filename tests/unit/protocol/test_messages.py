"""Encoding and decoding of wire messages (docs/protocol.md §2, §4)."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.protocol import messages, schema
from sync.protocol.errors import ErrorCode, MalformedMessage
from sync.protocol.messages import (
    DIRECTORY_FEED,
    MAX_MESSAGE_SIZE,
    PROTOCOL_VERSION,
    Authenticate,
    DirectoryChanges,
    DirectoryEntry,
    Error,
    Heartbeat,
    Message,
    MessageKind,
    Notifications,
    Presence,
    SyncStep1,
    Welcome,
    customer_doc_id,
    customer_id_of,
    decode,
    encode,
    is_doc_id,
)

from .strategies import MESSAGES, any_message, by_kind, directory_entries

PROFILE = settings.get_profile("protocol")
DOC = "customer:0b7e4c1a-3f5d-4e2a-9c8b-1d2e3f4a5b6c"
UUID = "0b7e4c1a-3f5d-4e2a-9c8b-1d2e3f4a5b6c"


def pack(value: Any) -> bytes:
    """Raw MessagePack bytes, bypassing the encoder (to build bad messages)."""
    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


def assert_malformed(data: bytes, max_size: int = MAX_MESSAGE_SIZE) -> None:
    """``decode`` rejects ``data`` with MalformedMessage (and pytest.raises checks the type)."""
    with pytest.raises(MalformedMessage):
        decode(data, max_size)


# --- round trips ------------------------------------------------------------------------


def test_strategies_cover_every_registered_message() -> None:
    """Every class the decoder can produce has a round-trip strategy, and no other class."""
    assert set(MESSAGES) == set(messages._BY_KIND.values())


def test_every_message_kind_is_registered_once() -> None:
    """Each MessageKind decodes to exactly one class whose KIND is that kind."""
    assert set(messages._BY_KIND) == set(MessageKind)
    for kind, cls in messages._BY_KIND.items():
        assert kind == cls.KIND


@pytest.mark.parametrize("cls", by_kind(MESSAGES), ids=lambda c: c.__name__)
@PROFILE
@given(data=st.data())
def test_round_trip(cls: type[Message], data: st.DataObject) -> None:
    """decode(encode(m)) == m, with the same class, for every message class."""
    message = data.draw(MESSAGES[cls])
    decoded = decode(encode(message))
    assert type(decoded) is cls
    assert decoded == message


@PROFILE
@given(entries=st.lists(directory_entries, min_size=1, max_size=3).map(tuple))
def test_directory_entries_round_trip_inside_changes(entries: tuple[DirectoryEntry, ...]) -> None:
    """DirectoryEntry records (never sent alone) survive a DirectoryChanges round trip."""
    decoded = decode(encode(DirectoryChanges(entries, 7, more=True)))
    assert isinstance(decoded, DirectoryChanges)
    assert decoded.entries == entries
    assert all(type(e) is DirectoryEntry for e in decoded.entries)


def test_encoding_is_an_array_of_kind_then_fields() -> None:
    """The frame is one MessagePack array [kind, field1, …] with bytes as bin (§2)."""
    raw = msgpack.unpackb(encode(SyncStep1(DOC, b"\x00\x01")), raw=False)
    assert raw == [MessageKind.SYNC_STEP1, DOC, b"\x00\x01"]


def test_doc_id_helpers() -> None:
    """customer_doc_id/customer_id_of invert each other; is_doc_id wants a lowercase uuid."""
    assert customer_doc_id(UUID) == DOC
    assert customer_id_of(DOC) == UUID
    assert is_doc_id(DOC)
    assert not is_doc_id(DOC.upper().replace("CUSTOMER", "customer"))
    assert not is_doc_id(f"invoice:{UUID}")
    assert not is_doc_id(DOC + "\n")
    assert not is_doc_id(DIRECTORY_FEED)


# --- bounds -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "limit"),
    [
        (lambda n: Authenticate((PROTOCOL_VERSION,), "t" * n, "session1"), 8192),
        (lambda n: Authenticate((PROTOCOL_VERSION,), "t", "s" * n), 64),
        (lambda n: Error(ErrorCode.BAD_MESSAGE, "m" * n), 1000),
        (lambda n: Presence(DOC, {"k" * n: 1}), 64),
        (lambda n: Presence(DOC, {"k": "v" * n}), 256),
        (lambda n: Presence(DOC, {str(i): i for i in range(n)}), 16),
        (lambda n: Authenticate((PROTOCOL_VERSION,) * n, "t", "session1"), 16),
    ],
    ids=["token", "session_id", "error_text", "presence_key", "presence_text", "presence_keys",
         "versions"],
)
def test_length_limits_are_inclusive(build: Any, limit: int) -> None:
    """A value exactly at its documented limit decodes; one longer is MalformedMessage."""
    assert decode(encode(build(limit))) == build(limit)
    assert_malformed(encode(build(limit + 1)))


@pytest.mark.parametrize(
    "raw",
    [
        [MessageKind.AUTHENTICATE, [1], "t", "short", ""],
        [MessageKind.AUTHENTICATE, [1], "t", "bad session!", ""],
        [MessageKind.AUTHENTICATE, [1], "t", "session1\n", ""],
        [MessageKind.AUTHENTICATE, [0], "t", "session1", ""],
        [MessageKind.AUTHENTICATE, [65536], "t", "session1", ""],
        [MessageKind.SYNC_STEP1, DOC + "\n", b""],
        [MessageKind.SYNC_STEP1, DOC.upper(), b""],
        [MessageKind.SYNC_STEP1, DIRECTORY_FEED, b""],
        [MessageKind.SUBSCRIBE, ["customer:not-a-uuid"]],
        [MessageKind.SUBSCRIBE, [DOC] * 1001],
        [MessageKind.READ_NOTIFICATIONS, 0, 0],
        [MessageKind.READ_NOTIFICATIONS, 0, 5001],
        [MessageKind.HEARTBEAT, -1],
        [MessageKind.NOTIFICATION, 1, DOC, "exploded", "a", 0.0, [], None],
        [MessageKind.ERROR, "no_such_code", "m", None, None, None],
    ],
)
def test_out_of_bounds_values_are_malformed(raw: list[Any]) -> None:
    """Values of the right type but outside the field's domain are rejected."""
    assert_malformed(pack(raw))


# --- malformed input --------------------------------------------------------------------


@PROFILE
@given(data=st.binary(max_size=512))
def test_fuzz_decode_raises_only_malformed(data: bytes) -> None:
    """Any bytes decode to a Message or raise MalformedMessage, nothing else."""
    try:
        result = decode(data)
    except MalformedMessage:
        return
    assert isinstance(result, Message)


msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats()
    | st.text(max_size=20) | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=5) | st.binary(max_size=5), inner, max_size=3),
    max_leaves=12,
)


@PROFILE
@given(kind=st.sampled_from(MessageKind), values=st.lists(msgpack_values, max_size=13))
def test_fuzz_structured_fields_raise_only_malformed(kind: MessageKind, values: list[Any]) -> None:
    """A known kind with arbitrary MessagePack fields decodes or raises MalformedMessage."""
    try:
        result = decode(pack([kind, *values]))
    except MalformedMessage:
        return
    assert kind == result.KIND or isinstance(result, DirectoryChanges)


@PROFILE
@given(message=any_message, data=st.data())
def test_fuzz_mutated_encodings_raise_only_malformed(message: Message, data: st.DataObject) -> None:
    """Valid encodings with bytes overwritten decode or raise MalformedMessage only."""
    frame = bytearray(encode(message))
    for _ in range(data.draw(st.integers(1, 4))):
        frame[data.draw(st.integers(0, len(frame) - 1))] = data.draw(st.integers(0, 255))
    try:
        result = decode(bytes(frame))
    except MalformedMessage:
        return
    assert isinstance(result, Message)


@PROFILE
@given(message=any_message)
def test_every_truncation_is_malformed(message: Message) -> None:
    """Every proper prefix of a valid encoding (including empty) raises MalformedMessage."""
    frame = encode(message)
    for end in range(len(frame)):
        assert_malformed(frame[:end])


@PROFILE
@given(message=any_message, extra=st.binary(min_size=1, max_size=8))
def test_trailing_bytes_are_malformed(message: Message, extra: bytes) -> None:
    """A valid message followed by anything is not one message: MalformedMessage."""
    assert_malformed(encode(message) + extra)


@PROFILE
@given(message=any_message)
def test_wrong_arity_is_malformed(message: Message) -> None:
    """One field too many or too few raises MalformedMessage for every message class."""
    raw = msgpack.unpackb(encode(message), raw=False)
    assert_malformed(pack([*raw, None]))
    assert_malformed(pack(raw[:-1]))


@PROFILE
@given(message=any_message, data=st.data())
def test_a_value_no_field_accepts_is_malformed(message: Message, data: st.DataObject) -> None:
    """Putting a list-of-map value into any field of any message raises MalformedMessage."""
    raw = msgpack.unpackb(encode(message), raw=False)
    index = data.draw(st.integers(1, len(raw) - 1))
    raw[index] = [{"x": [1]}]
    assert_malformed(pack(raw))


def test_oversized_message_is_malformed() -> None:
    """A frame over max_size is rejected before parsing; exactly max_size is accepted."""
    frame = encode(SyncStep1(DOC, b"\x00" * 100))
    assert decode(frame, max_size=len(frame)) == SyncStep1(DOC, b"\x00" * 100)
    assert_malformed(frame, max_size=len(frame) - 1)
    assert_malformed(encode(SyncStep1(DOC, b"\x00" * MAX_MESSAGE_SIZE)))


@pytest.mark.parametrize(
    "raw",
    [
        [0],
        [99],
        [-1],
        [2**64 - 1],
        ["1"],
        [None],
        [1.0],
        [b"\x01"],
        [True, [1], "t", "session1", ""],  # True == 1 == AUTHENTICATE in Python
        [],
        {"kind": 1},
        5,
        "Authenticate",
    ],
)
def test_unknown_kind_or_not_an_array_is_malformed(raw: Any) -> None:
    """The first element must be a registered integer kind inside a non-empty array."""
    assert_malformed(pack(raw))


@pytest.mark.parametrize(
    "raw",
    [
        [MessageKind.HEARTBEAT, True],
        [MessageKind.HEARTBEAT, 1.0],
        [MessageKind.HEARTBEAT, "1"],
        [MessageKind.HEARTBEAT, None],
        [MessageKind.ACK, DOC, False, 1],
        [MessageKind.TOKEN_RENEWED, True],
        [MessageKind.TOKEN_RENEWED, "1.5"],
        [MessageKind.SYNC_STEP1, DOC, "not bytes"],
        [MessageKind.SYNC_STEP1, DOC, [1, 2]],
        [MessageKind.SYNC_STEP1, b"customer:" + UUID.encode(), b""],
        [MessageKind.SUBSCRIBE, DOC],
        [MessageKind.WELCOME, 1, "session1", "u", "rep", None, 1, [], 0.0, 15.0, 1, 1, 0.0],
        [MessageKind.NOTIFICATIONS, [[1, DOC]], 1, False],
        [MessageKind.DIRECTORY_CHANGES, [{"customer_id": UUID}], 1, False],
        [MessageKind.PRESENCE, DOC, {"k": [1]}],
        [MessageKind.PRESENCE, DOC, {"k": {"nested": 1}}],
        [MessageKind.PRESENCE, DOC, {"k": b"bytes"}],
        [MessageKind.PRESENCE, DOC, {"k": 2**64 - 1}],
        [MessageKind.PRESENCE, DOC, ["k", 1]],
    ],
)
def test_wrong_field_types_are_malformed(raw: list[Any]) -> None:
    """A field of the wrong type (bool for int, str for bytes, …) raises MalformedMessage."""
    assert_malformed(pack(raw))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_floats_are_malformed(bad: float) -> None:
    """NaN and infinities are rejected in float fields, int fields and presence values."""
    assert_malformed(pack([MessageKind.TOKEN_RENEWED, bad]))
    assert_malformed(pack([MessageKind.HEARTBEAT, bad]))
    assert_malformed(pack([MessageKind.PRESENCE, DOC, {"x": bad}]))
    assert_malformed(pack([MessageKind.ERROR, "bad_message", "m", None, None, bad]))


def test_invalid_utf8_is_malformed() -> None:
    """A MessagePack str whose bytes are not UTF-8 raises MalformedMessage."""
    kind = pack(MessageKind.RENEW_TOKEN)
    assert_malformed(b"\x92" + kind + b"\xa2\xff\xfe")
    assert_malformed(b"\x92" + kind + b"\xa1\xed")  # truncated multi-byte sequence


@pytest.mark.parametrize("depth", [200, 100_000])
def test_deep_nesting_is_malformed(depth: int) -> None:
    """Deeply nested arrays or maps raise MalformedMessage (no RecursionError, no crash)."""
    assert_malformed(b"\x91" * depth + b"\xc0")
    assert_malformed(b"\x81\xa1k" * depth + b"\xc0")
    prefix = b"\x93" + pack(MessageKind.PRESENCE) + pack(DOC)
    assert_malformed(prefix + b"\x81\xa1k" * depth + b"\xc0")


def test_non_string_map_keys_are_malformed() -> None:
    """Presence maps with int, bytes, float or nil keys raise MalformedMessage."""
    for key in (1, b"k", 1.5, None):
        assert_malformed(pack([MessageKind.PRESENCE, DOC, {key: 1}]))


@pytest.mark.parametrize(
    "ext",
    [
        pack(msgpack.ExtType(5, b"abc")),
        pack(msgpack.Timestamp(1)),
        b"\xd6\xff\x00\x00\x00\x01",  # fixext 4, type -1: a timestamp written by hand
        b"\xc7\x00\x05",  # ext 8 with an empty payload
    ],
    ids=["ext5", "timestamp", "raw-timestamp", "empty-ext"],
)
def test_ext_types_are_malformed(ext: bytes) -> None:
    """MessagePack extension types (including timestamps) are never accepted."""
    assert_malformed(b"\x92" + pack(MessageKind.HEARTBEAT) + ext)
    assert_malformed(b"\x93" + pack(MessageKind.PRESENCE) + pack(DOC) + b"\x81\xa1k" + ext)


def test_non_bytes_input_is_malformed() -> None:
    """decode() given a str or None raises MalformedMessage, not TypeError."""
    for value in ("\x91\x46", None, 70):
        with pytest.raises(MalformedMessage):
            decode(value)  # type: ignore[arg-type]


def test_unknown_kind_error_text_is_bounded() -> None:
    """A huge unknown kind is not echoed in full: the error text stays short."""
    with pytest.raises(MalformedMessage) as info:
        decode(pack(["x" * 100_000]))
    assert len(str(info.value)) < 200


def test_nested_records_are_checked() -> None:
    """A bad record inside Notifications or DirectoryChanges makes the whole frame malformed."""
    good = [1, DOC, "updated", "alice", 0.0, ["name"], None]
    assert isinstance(decode(pack([MessageKind.NOTIFICATIONS, [good], 1, False])), Notifications)
    assert_malformed(pack([MessageKind.NOTIFICATIONS, [[*good[:2], "nope", *good[3:]]], 1, False]))
    entry = [UUID, {"name": "Ada"}, 0.0, False, 1]
    columns = {f.name: None for f in schema.directory_fields()} | {"name": "Ada"}
    assert decode(pack([MessageKind.DIRECTORY_CHANGES, [entry], 1, False])) == DirectoryChanges(
        (DirectoryEntry(UUID, columns, 0.0, False, 1),), 1, False
    )
    assert_malformed(pack([MessageKind.DIRECTORY_CHANGES, [[DOC, *entry[1:]]], 1, False]))
    assert_malformed(pack([MessageKind.DIRECTORY_CHANGES, [[UUID, {"name": 5}, 0.0, False, 1]],
                           1, False]))


def test_directory_entry_columns_follow_the_receivers_table() -> None:
    """A column the receiver's table lacks is ignored; one the sender lacks is null (§4)."""
    sent = [UUID, {"name": "Ada", "phone2": "555", "city": "Paris"}, 0.0, False, 1]
    decoded = decode(pack([MessageKind.DIRECTORY_CHANGES, [sent], 1, False]))
    assert isinstance(decoded, DirectoryChanges)
    entry = decoded.entries[0]
    assert list(entry.fields) == [f.name for f in schema.directory_fields()]
    assert entry.value("name") == "Ada" and entry.value("city") == "Paris"
    assert entry.value("email") is None and "phone2" not in entry.fields
    with schema.extended(schema.Field("phone2", "Phone 2", schema.text_rule(40), "Contact",
                                      directory=True)):
        decoded = decode(pack([MessageKind.DIRECTORY_CHANGES, [sent], 1, False]))
        assert isinstance(decoded, DirectoryChanges)
        assert decoded.entries[0].value("phone2") == "555"


def test_int_in_float_field_decodes_as_float() -> None:
    """An integer where a float is expected is accepted and returned as a float."""
    welcome = decode(
        pack([MessageKind.WELCOME, 1, "session1", "u", "rep", None, False, [], 5, 15, 1, 1, 0])
    )
    assert isinstance(welcome, Welcome)
    assert type(welcome.token_expires_at) is float
    assert welcome.heartbeat_interval == 15.0


def test_defaults_round_trip() -> None:
    """Optional fields left at their defaults are encoded and come back equal."""
    for message in (Error(ErrorCode.FORBIDDEN, "no"),
                    Authenticate((PROTOCOL_VERSION,), "t", "session1"), Heartbeat(0)):
        assert decode(encode(message)) == message
