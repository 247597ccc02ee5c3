"""Would an update integrate fully into a document, or would part of it wait there?

yrs (pycrdt 0.14, yrs 0.28) integrates what it can of an update and keeps the rest *pending
inside the document* when it builds on changes the document lacks: structs that continue a
client's sequence past a gap, or whose origin, right origin or parent is unknown (of any
client, its own included), and deletions of unknown items. They stay in memory until the
missing changes arrive, possibly never: measured, 20,000 such 1 KiB updates grew a process
by 145 MiB, and ``get_update()`` does not show them. Worse, past a gap in a client's own
sequence (a Skip struct of a merged update, or a first struct beyond the document's clock)
yrs may integrate structs that its state vector does not count, visibly.

:class:`sync.server.rooms.Room` uses three checks from here:

- :func:`one_contiguous_client`: one client's structs, in one unbroken run starting within
  the document's clock. A few microseconds, by pycrdt. Such an update (a live edit, the
  usual case) is applied, then
- :func:`left_pending` asks, also through pycrdt, whether anything was kept pending; the
  room then rebuilds its document without it.
- :func:`integrate_state` for everything else: it reads the update (v1 encoding, lib0
  variable-length integers; every length bounded by the bytes present, no recursion) and
  replays yrs's integration order (``integrateStructs``: a struct whose dependency is in the
  update waits for it; a gap in its own client's sequence, or a dependency neither in the
  document nor in the update, is a dead end), then the delete set's rule against the
  resulting state, so that such an update is refused before anything of it is applied.
  Linear in the update's size, but Python: about 30 microseconds for a field edit.

``tests/unit/server/test_update_deps.py`` checks all three against pycrdt itself, on random
multi-client histories applied in random orders.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import NamedTuple

from pycrdt import get_state, get_update, merge_updates, write_var_uint

__all__ = [
    "UpdateFormatError", "integrate_state", "left_pending", "missing_dependencies",
    "one_contiguous_client", "read_state_vector",
]

# Struct and content references of the update v1 format (Yjs ``readItemContent``).
_GC = 0
_DELETED = 1
_JSON = 2
_BINARY = 3
_STRING = 4
_EMBED = 5
_FORMAT = 6
_TYPE = 7
_ANY = 8
_DOC = 9
_SKIP = 10
#: Type references that carry a name (Yjs YXmlElement, YXmlHook); 0-6 are the shared types.
_NAMED_TYPES = frozenset({3, 5})
_MAX_TYPE_REF = 6
# lib0 ``writeAny`` tags.
_ANY_NO_DATA = frozenset({127, 126, 121, 120})  # undefined, null, false, true
_ANY_VAR_INT = 125
_ANY_FLOAT32 = 124
_ANY_FLOAT64 = 123
_ANY_BIGINT = 122
_ANY_STRING = 119
_ANY_OBJECT = 118
_ANY_ARRAY = 117
_ANY_BYTES = 116


#: A multi-byte lib0 variable-length unsigned integer: up to 10 bytes (70 bits).
_VAR_UINT = re.compile(rb"[\x80-\xff]{1,9}[\x00-\x7f]")
#: Multi-byte values decoded so far, by their bytes (mostly client ids; bounded).
_decoded: dict[bytes, int] = {}
_DECODED_MAX = 4096


class UpdateFormatError(ValueError):
    """The bytes are not an update (v1) this checker can read."""


class _Struct(NamedTuple):
    client: int
    clock: int
    length: int
    #: Ids this struct needs (origin, right origin, parent item). Unlike Yjs, yrs also
    #: waits for ids of the struct's own client (measured: pycrdt 0.14 / yrs 0.28).
    needs: tuple[tuple[int, int], ...]
    skip: bool = False


class _Reader:
    """lib0 decoding over bytes; raises UpdateFormatError past the end."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def u8(self) -> int:
        pos = self.pos
        try:
            value = self.data[pos]
        except IndexError:
            raise UpdateFormatError("unexpected end of update") from None
        self.pos = pos + 1
        return value

    def var_uint(self) -> int:
        # Client ids take 7-8 bytes and recur in every id: see _long_uint.
        data, pos = self.data, self.pos
        try:
            byte = data[pos]
        except IndexError:
            raise UpdateFormatError("unexpected end of update") from None
        if byte < 0x80:
            self.pos = pos + 1
            return byte
        value, self.pos = _long_uint(data, pos)
        return value

    def skip_var_int(self) -> None:
        while self.u8() >= 0x80:
            pass

    def skip(self, count: int) -> None:
        if count > len(self.data) - self.pos:
            raise UpdateFormatError("unexpected end of update")
        self.pos += count

    def skip_buf(self) -> None:
        self.skip(self.var_uint())

    def utf16_length(self) -> int:
        """Read a string; its length in UTF-16 code units (the clock length of a string)."""
        size = self.var_uint()
        start = self.pos
        self.skip(size)
        try:
            text = self.data[start:self.pos].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UpdateFormatError("a string is not UTF-8") from exc
        return len(text.encode("utf-16-le")) // 2

    def skip_any(self) -> None:
        """Skip one lib0 ``Any`` value, however deeply nested (iteratively)."""
        tag = self.data[self.pos] if self.pos < len(self.data) else None
        if tag in _ANY_NO_DATA:  # the common scalars without a stack
            self.pos += 1
            return
        if tag in (_ANY_STRING, _ANY_BYTES):
            self.pos += 1
            self.skip_buf()
            return
        # Each entry: [values left to read, True for an object (key before each value)].
        stack: list[list[int | bool]] = [[1, False]]
        while stack:
            top = stack[-1]
            if top[0] == 0:
                stack.pop()
                continue
            top[0] = int(top[0]) - 1
            if top[1]:
                self.skip_buf()  # the key
            tag = self.u8()
            if tag in _ANY_NO_DATA:
                continue
            if tag == _ANY_VAR_INT:
                self.skip_var_int()
            elif tag in (_ANY_FLOAT64, _ANY_BIGINT):
                self.skip(8)
            elif tag == _ANY_FLOAT32:
                self.skip(4)
            elif tag in (_ANY_STRING, _ANY_BYTES):
                self.skip_buf()
            elif tag in (_ANY_OBJECT, _ANY_ARRAY):
                count = self.var_uint()
                if count:
                    stack.append([count, tag == _ANY_OBJECT])
            else:
                raise UpdateFormatError(f"unknown value tag {tag}")


def _content_length(reader: _Reader, ref: int) -> int:
    """Skip an item's content; its length in clock units."""
    if ref == _ANY:  # map values and array elements: the most common content
        count = reader.var_uint()
        for _ in range(count):
            reader.skip_any()
        return count
    if ref == _DELETED:
        return reader.var_uint()
    if ref == _JSON:
        count = reader.var_uint()
        for _ in range(count):
            reader.skip_buf()
        return count
    if ref == _STRING:
        return reader.utf16_length()
    if ref in (_BINARY, _EMBED):
        reader.skip_buf()
        return 1
    if ref == _FORMAT:
        reader.skip_buf()
        reader.skip_buf()
        return 1
    if ref == _TYPE:
        type_ref = reader.var_uint()
        if type_ref > _MAX_TYPE_REF:
            raise UpdateFormatError(f"unknown shared type {type_ref}")
        if type_ref in _NAMED_TYPES:
            reader.skip_buf()
        return 1
    if ref == _DOC:
        reader.skip_buf()
        reader.skip_any()
        return 1
    raise UpdateFormatError(f"unknown content type {ref}")


def _long_uint(data: bytes, pos: int) -> tuple[int, int]:
    """A multi-byte variable-length unsigned integer at ``pos``: (value, next position)."""
    match = _VAR_UINT.match(data, pos)
    if match is None:
        raise UpdateFormatError("variable-length integer too long, or cut off")
    raw = match.group()
    value = _decoded.get(raw)
    if value is None:
        value = 0
        for shift, part in enumerate(raw):
            value |= (part & 0x7F) << (7 * shift)
        if len(_decoded) >= _DECODED_MAX:
            _decoded.clear()
        _decoded[raw] = value
    return value, match.end()


def _read_structs(reader: _Reader) -> dict[int, list[_Struct]]:
    """The structs of each client. The hot loop of the check: integers are read inline
    (one byte is the common case), the rest through the reader."""
    data = reader.data
    groups: dict[int, list[_Struct]] = {}
    for _ in range(reader.var_uint()):
        count = reader.var_uint()
        client = reader.var_uint()
        clock = reader.var_uint()
        if client in groups:
            raise UpdateFormatError(f"client {client} appears twice")
        structs: list[_Struct] = []
        groups[client] = structs
        for _ in range(count):
            info = reader.u8()
            ref = info & 0x1F
            if ref in (_GC, _SKIP):
                length = reader.var_uint()
                structs.append(_Struct(client, clock, length, (), ref == _SKIP))
                clock += length
                continue
            pos = reader.pos
            needs: list[tuple[int, int]] = []
            try:
                # Origin, right origin, or else the parent: ids are (client, clock) pairs.
                ids = (info >> 7) + ((info >> 6) & 1)
                if not ids:
                    byte = data[pos]
                    if byte < 0x80:
                        parent_info, pos = byte, pos + 1
                    else:
                        parent_info, pos = _long_uint(data, pos)
                    if parent_info == 1:  # a root type's name
                        byte = data[pos]
                        size, pos = (byte, pos + 1) if byte < 0x80 else _long_uint(data, pos)
                        pos += size
                    else:  # a parent item
                        ids = 1
                for _ in range(ids):
                    byte = data[pos]
                    other, pos = (byte, pos + 1) if byte < 0x80 else _long_uint(data, pos)
                    byte = data[pos]
                    at, pos = (byte, pos + 1) if byte < 0x80 else _long_uint(data, pos)
                    needs.append((other, at))
                if not info & 0xC0 and info & 0x20:  # the map key
                    byte = data[pos]
                    size, pos = (byte, pos + 1) if byte < 0x80 else _long_uint(data, pos)
                    pos += size
            except IndexError:
                raise UpdateFormatError("unexpected end of update") from None
            if pos > len(data):
                raise UpdateFormatError("unexpected end of update")
            reader.pos = pos
            length = _content_length(reader, ref)
            structs.append(_Struct(client, clock, length, tuple(needs)))
            clock += length
    return groups


def _read_delete_set(reader: _Reader) -> list[tuple[int, int, int]]:
    ranges: list[tuple[int, int, int]] = []
    for _ in range(reader.var_uint()):
        client = reader.var_uint()
        for _ in range(reader.var_uint()):
            clock = reader.var_uint()
            ranges.append((client, clock, reader.var_uint()))
    return ranges


def read_state_vector(state_vector: bytes) -> dict[int, int]:
    """Decode an encoded state vector (``Doc.get_state()``): client id → next clock."""
    reader = _Reader(state_vector)
    state: dict[int, int] = {}
    for _ in range(reader.var_uint()):
        client = reader.var_uint()
        state[client] = reader.var_uint()
    return state


def _integrates(groups: dict[int, list[_Struct]], state: Mapping[int, int],
                changes: dict[int, int]) -> bool:
    """Replay Yjs/yrs ``integrateStructs``; True when no struct would be left pending.

    The state advances as structs integrate: ``changes`` records the new clocks over
    ``state`` (left as it is). A struct whose dependency is another client's struct in
    this update waits on a stack while that client's next struct is tried.
    """
    position = dict.fromkeys(groups, 0)

    def clock_of(client: int) -> int:
        found = changes.get(client)
        return state.get(client, 0) if found is None else found

    def take(client: int) -> _Struct | None:
        structs = groups.get(client)
        if structs is None or position[client] >= len(structs):
            return None
        position[client] += 1
        return structs[position[client] - 1]

    for target in sorted(groups, reverse=True):
        while (head := take(target)) is not None:
            waiting: list[_Struct] = []
            while head is not None:
                if not head.skip:
                    local = clock_of(head.client)
                    if local < head.clock:
                        return False  # a gap in its own client's sequence
                    need = next((c for c, k in head.needs if k >= clock_of(c)), None)
                    if need is not None:
                        waiting.append(head)
                        head = take(need)
                        if head is None:
                            return False  # neither in the document nor in this update
                        continue
                    end = head.clock + head.length
                    if end > local:
                        changes[head.client] = end
                head = waiting.pop() if waiting else None
    return True


def integrate_state(update: bytes, state: Mapping[int, int]) -> dict[int, int] | None:
    """The state-vector entries that applying ``update`` to a document whose state vector
    is ``state`` changes (client id → new clock), or None when part of it would be left
    pending (structs or deletions that need changes the document lacks).

    Raises UpdateFormatError for bytes that are not a readable update.
    """
    reader = _Reader(update)
    groups = _read_structs(reader)
    ranges = _read_delete_set(reader)
    changes: dict[int, int] = {}
    if not _integrates(groups, state, changes):
        return None
    for client, clock, length in ranges:
        # Deletions are applied up to the client's clock; any part past it would wait.
        current = changes.get(client, state.get(client, 0))
        if clock >= current or clock + length > current:
            return None
    return changes


def missing_dependencies(update: bytes, state: Mapping[int, int]) -> bool:
    """True when applying ``update`` to a document whose state vector is ``state`` would
    leave part of it pending (see integrate_state)."""
    return integrate_state(update, state) is None


def one_contiguous_client(update: bytes, state_vector: bytes) -> bool:
    """True when ``update`` holds the structs of one client only, in one unbroken run that
    starts at or before that client's clock in ``state_vector``: no gap in its sequence,
    neither before it nor inside it (a Skip struct, as merged updates carry).

    pycrdt does the work, whatever the update's length: a probe (a GC struct from clock 0
    to the start) is trimmed to nothing when the state covers the start; merged with the
    update, its state vector (which stops at the first gap, as Yjs's does) says where the
    unbroken run ends, and nothing of the update may lie past that. A few microseconds:
    the check of a live edit, the common case. False means "check it in full".
    """
    reader = _Reader(update)
    try:
        if reader.var_uint() != 1:
            return False
        reader.var_uint()  # number of structs
        at = reader.pos
        reader.var_uint()  # the client id: its bytes are reused as they are
        client = update[at:reader.pos]
        at = reader.pos
        start = reader.var_uint()
        start_bytes = update[at:reader.pos]
    except UpdateFormatError:
        return False
    try:
        whole = update
        if start:
            probe = b"".join((b"\x01\x01", client, b"\x00\x00", start_bytes, b"\x00"))
            # An update whose first number (client groups) is not 0: something is left.
            if not get_update(probe, state_vector).startswith(b"\x00"):
                return False  # a gap before the update
            whole = merge_updates(probe, update)
        # ``whole`` holds this client's structs only: its state vector is the one entry
        # (client, end of the unbroken run). Anything else (no run, or a client id not
        # encoded as pycrdt does) is left to the full check.
        until = get_state(whole)
        if not until.startswith(b"\x01" + client):
            return False
        return get_update(update, until).startswith(b"\x00")
    except (ValueError, UpdateFormatError):
        return False  # unreadable for pycrdt too: the full check says so


def left_pending(rest: bytes, state_vector: bytes) -> bool:
    """After an update was applied: did pycrdt keep part of it pending?

    ``rest`` is ``get_update(update, state_vector)`` taken after applying it, with the
    document's encoded state vector: the structs the document still lacks (any means some
    wait) and the update's delete set, whose ranges past the state wait too. pycrdt does
    the work on the state vector as well (it is not decoded here: a document edited from
    many replicas has a long one): the ranges become a probe update of GC structs, which
    ``get_update`` trims to nothing exactly when the document covers them. A few
    microseconds, the check of the common path (rooms.py).
    """
    reader = _Reader(rest)
    if reader.var_uint():
        return True
    needs: dict[int, int] = {}
    for client, clock, length in _read_delete_set(reader):
        # Pending when clock >= state or clock + length > state, i.e. state < need.
        need = clock + max(length, 1)
        if need > needs.get(client, 0):
            needs[client] = need
    if not needs:
        return False
    probe = [write_var_uint(len(needs))]
    for client, need in needs.items():
        # One struct of this client from clock 0: a GC of length ``need``.
        probe += [b"\x01", write_var_uint(client), b"\x00\x00", write_var_uint(need)]
    probe.append(b"\x00")  # no delete set
    return _Reader(get_update(b"".join(probe), state_vector)).var_uint() != 0
