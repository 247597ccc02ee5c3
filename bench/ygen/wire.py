"""The y-websocket wire format (y-protocols) and the bench's latency marker.

Each WebSocket binary message is ``varUint(messageType)`` + payload:

- ``messageSync`` (0): ``varUint(syncType)`` + ``varUint8Array(data)``; syncType 0 = step 1
  (a state vector), 1 = step 2 (an update answering a step 1), 2 = update.
- ``messageAwareness`` (1): ``varUint8Array(awareness update)``.
- ``messageAuth`` (2): ``varUint(0)`` (permission denied) + ``varString(reason)``.
- ``messageQueryAwareness`` (3): no payload.

Writers put a marker ``#e<n>#`` into every edit; readers find it in the frame bytes with a
regex (strings travel as plain UTF-8 in Yjs v1 updates), so no reader decodes a CRDT.
"""

from __future__ import annotations

import re
from typing import Final

MSG_SYNC: Final = 0
MSG_AWARENESS: Final = 1
MSG_AUTH: Final = 2
MSG_QUERY_AWARENESS: Final = 3

SYNC_STEP1: Final = 0
SYNC_STEP2: Final = 1
SYNC_UPDATE: Final = 2

#: A v1 update with no structs and an empty delete set.
EMPTY_UPDATE: Final = b"\x00\x00"
#: The state vector of an empty document.
EMPTY_STATE_VECTOR: Final = b"\x00"

#: An awareness message with no entries (the answer of a client without awareness state
#: to a query-awareness; it tells a server that probes silent connections we are alive).
EMPTY_AWARENESS: Final = b"\x01\x01\x00"

MARKER: Final = re.compile(rb"#e(\d+)#")


def marker(n: int) -> str:
    """The text a writer inserts for edit number ``n``."""
    return f"#e{n}#"


def var_uint(value: int) -> bytes:
    """lib0 variable-length unsigned integer."""
    out = bytearray()
    while value > 0x7F:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


def read_var_uint(data: bytes, pos: int) -> tuple[int, int]:
    """Decode a varUint at ``pos``; returns (value, next position)."""
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def sync_message(sync_type: int, payload: bytes) -> bytes:
    """A messageSync frame: step 1 (state vector), step 2 or update."""
    return bytes((MSG_SYNC, sync_type)) + var_uint(len(payload)) + payload


def sync_payload(frame: bytes) -> bytes:
    """The data of a messageSync frame (after type, sync type and length)."""
    length, pos = read_var_uint(frame, 2)
    return frame[pos:pos + length]


def auth_reason(frame: bytes) -> str:
    """The reason of a messageAuth permission-denied frame."""
    try:
        length, pos = read_var_uint(frame, 2)
        return frame[pos:pos + length].decode("utf-8", "replace")
    except IndexError:
        return "permission denied"
