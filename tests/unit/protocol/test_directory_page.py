"""DirectoryPage (§4, §6): the directory pass as column arrays, checked as a whole."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from sync.protocol.errors import MalformedMessage
from sync.protocol.messages import (
    DirectoryEntry,
    DirectoryPage,
    DirectoryRows,
    MessageKind,
    decode,
    encode,
)

UUID = "0b7e4c1a-3f5d-4e2a-9c8b-1d2e3f4a5b6c"
UUID2 = "1b7e4c1a-3f5d-4e2a-9c8b-1d2e3f4a5b6c"


def page(ids: Any, columns: Any, updated: Any, deleted: Any, cursors: Any) -> bytes:
    """Raw DirectoryPage bytes, bypassing the encoder."""
    raw = [MessageKind.DIRECTORY_PAGE, [ids, columns, updated, deleted, cursors], 9, False]
    return msgpack.packb(raw, use_bin_type=True)  # type: ignore[no-any-return]


def test_a_page_round_trips_to_the_same_entries() -> None:
    """Entries → column arrays → bytes → the same entries; a column the sender lacks is
    null and one the receiver lacks is dropped."""
    entries = (
        DirectoryEntry(UUID, {"name": "Ada", "email": None, "phone": "(823) 497-3210",
                              "city": "Paris", "state": None, "zip": "75001"}, 1.5, False, 7),
        DirectoryEntry(UUID2, {"name": "Bob", "email": "b@x.org", "phone": None,
                               "city": None, "state": "CA", "zip": None}, 2.0, True, 9),
    )
    decoded = decode(encode(DirectoryPage(DirectoryRows.of(entries), 9, True)))
    assert isinstance(decoded, DirectoryPage)
    assert decoded.entries() == entries
    assert (decoded.cursor, decoded.more) == (9, True)
    other = decode(page([UUID], {"name": ["Ada"], "colour": ["red"]}, [1.0], [False], [3]))
    assert isinstance(other, DirectoryPage)
    [entry] = other.entries()
    assert entry.fields["name"] == "Ada" and entry.fields["email"] is None
    assert "colour" not in entry.fields


@pytest.mark.parametrize("data", [
    page([UUID, UUID2], {"name": ["Ada"]}, [1.0, 1.0], [False, False], [1, 2]),
    page([UUID], {"name": ["Ada"]}, [1.0, 2.0], [False], [1]),
    page([UUID], {"name": ["Ada"]}, [1.0], [False], [1, 2]),
    page([UUID], {"name": ["Ada"]}, [1.0], [0], [1]),
    page([UUID], {"name": ["Ada"]}, [1.0], [False], [-1]),
    page([UUID], {"name": [7]}, [1.0], [False], [1]),
    page([UUID], {"name": ["x" * 1025]}, [1.0], [False], [1]),
    page(["not-a-uuid"], {"name": ["Ada"]}, [1.0], [False], [1]),
    page([UUID], {"name": ["Ada"]}, [float("nan")], [False], [1]),
    page([UUID] * 5001, {}, [1.0] * 5001, [False] * 5001, [1] * 5001),
])
def test_a_malformed_page_is_refused(data: bytes) -> None:
    """Arrays of different lengths, bad values, too many rows: MalformedMessage."""
    with pytest.raises(MalformedMessage):
        decode(data)
