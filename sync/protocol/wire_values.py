"""Values on the wire: customer ids, and the validators that check every message field.

Each validator takes the raw decoded value and returns the checked (possibly converted)
value, or raises :class:`_Invalid`; :func:`sync.protocol.messages.decode` turns that into
``MalformedMessage``. Together they are the documentation of every field's domain
(docs/protocol.md §2, §4).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any, TypeAlias

from . import schema

__all__ = [
    "DIRECTORY_FEED",
    "PresenceState",
    "PresenceValue",
    "Validator",
    "customer_doc_id",
    "customer_id_of",
    "is_doc_id",
]

#: Pseudo document id naming the customer directory feed in Subscribe/Unsubscribe.
DIRECTORY_FEED = "directory"

_MAX_LIST = 10_000
_MAX_STR = 65_536
_MAX_ID = 128
_MAX_PRESENCE_KEYS = 16
_INT64 = 2**63 - 1
_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_SESSION_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")

PresenceValue: TypeAlias = str | int | float | bool | None
PresenceState: TypeAlias = Mapping[str, PresenceValue]


def customer_doc_id(customer_id: str) -> str:
    """The document id of a customer: ``customer:<uuid>``, the uuid in lower case (the
    canonical form: any letter case names the same customer, docs/protocol.md §4)."""
    return f"customer:{customer_id.lower()}"


def customer_id_of(doc_id: str) -> str:
    """The customer uuid inside a customer document id."""
    return doc_id.partition(":")[2]


def is_doc_id(value: str) -> bool:
    """True for a well-formed customer document id."""
    kind, _, rest = value.partition(":")
    return kind == "customer" and _UUID_RE.fullmatch(rest) is not None


Validator: TypeAlias = Callable[[Any], Any]


class _Invalid(Exception):
    pass


def _str(max_len: int = _MAX_STR, pattern: re.Pattern[str] | None = None) -> Validator:
    def check(v: Any) -> str:
        if not isinstance(v, str) or len(v) > max_len:
            raise _Invalid(f"expected a string of at most {max_len} characters")
        if pattern is not None and not pattern.fullmatch(v):
            raise _Invalid("string has the wrong format")
        return v

    return check


def _int(lo: int = 0, hi: int = _INT64) -> Validator:
    def check(v: Any) -> int:
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
            raise _Invalid(f"expected an integer from {lo} to {hi}")
        return v

    return check


def _float(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise _Invalid("expected a finite number")
    return float(v)


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise _Invalid("expected a boolean")
    return v


def _bytes(max_len: int | None = None) -> Validator:
    """Binary field; without ``max_len`` only the message size limit (decode's max_size)
    bounds it, so a server configured for larger messages can carry larger updates."""

    def check(v: Any) -> bytes:
        if not isinstance(v, bytes) or (max_len is not None and len(v) > max_len):
            raise _Invalid(f"expected at most {max_len} bytes" if max_len else "expected bytes")
        return v

    return check


#: Document ids already checked, with their canonical form: the same few ids arrive in
#: nearly every message (a pure function of the text; bounded, cleared when full).
_checked_ids: dict[str, str] = {}
_CHECKED_IDS_MAX = 65_536


def _doc_id(v: Any) -> str:
    """A customer document id in any letter case, returned canonical (lower case, §4)."""
    if type(v) is str:
        known = _checked_ids.get(v)
        if known is not None:
            return known
    if isinstance(v, str) and len(v) <= _MAX_ID:
        canonical = customer_doc_id(customer_id_of(v)) if v.startswith("customer:") else v
        if is_doc_id(canonical):
            if len(_checked_ids) >= _CHECKED_IDS_MAX:
                _checked_ids.clear()
            _checked_ids[v] = canonical
            return canonical
    raise _Invalid("expected a document id 'customer:<uuid>'")


def _uuid(v: Any) -> str:
    """A customer uuid in any letter case, returned canonical (lower case, §4)."""
    if isinstance(v, str) and len(v) <= 64 and _UUID_RE.fullmatch(v.lower()):
        return v.lower()
    raise _Invalid("expected a customer uuid")


def _sub_id(v: Any) -> str:
    if v == DIRECTORY_FEED:
        return DIRECTORY_FEED
    return _doc_id(v)


def _opt(inner: Validator) -> Validator:
    def check(v: Any) -> Any:
        return None if v is None else inner(v)

    return check


def _list(inner: Validator, max_len: int = _MAX_LIST) -> Validator:
    def check(v: Any) -> tuple[Any, ...]:
        if not isinstance(v, list | tuple) or len(v) > max_len:
            raise _Invalid(f"expected a list of at most {max_len} items")
        return tuple(inner(item) for item in v)

    return check


def _enum(enum: type[StrEnum]) -> Validator:
    def check(v: Any) -> Any:
        try:
            return enum(v)
        except ValueError as exc:
            raise _Invalid(f"expected one of {', '.join(e.value for e in enum)}") from exc

    return check


def _presence_state(v: Any) -> dict[str, PresenceValue]:
    if not isinstance(v, dict) or len(v) > _MAX_PRESENCE_KEYS:
        raise _Invalid(f"expected a map of at most {_MAX_PRESENCE_KEYS} entries")
    out: dict[str, PresenceValue] = {}
    for key, value in v.items():
        if not isinstance(key, str) or len(key) > 64:
            raise _Invalid("presence keys are strings of at most 64 characters")
        if isinstance(value, str) and len(value) > 256:
            raise _Invalid("presence strings are at most 256 characters")
        if isinstance(value, float) and not math.isfinite(value):
            raise _Invalid("presence numbers are finite")
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _INT64:
            raise _Invalid("presence integers fit in 64 bits")
        if value is not None and not isinstance(value, str | int | float | bool):
            raise _Invalid("presence values are scalars")
        out[key] = value
    return out


_MAX_DIRECTORY_COLUMNS = 64
_MAX_DIRECTORY_TEXT = 1024


def _directory_fields(v: Any) -> dict[str, str | None]:
    """A DirectoryEntry's columns: a map of column name → text or null (§4).

    Read against the receiver's field table (:func:`schema.directory_fields`), so peers
    with different tables still understand each other: a column the receiver's table
    lacks is ignored, one the sender did not send is null. The result is in table order.
    """
    if not isinstance(v, dict) or len(v) > _MAX_DIRECTORY_COLUMNS:
        raise _Invalid(f"expected a map of at most {_MAX_DIRECTORY_COLUMNS} columns")
    for key, value in v.items():
        if not isinstance(key, str) or len(key) > 64:
            raise _Invalid("directory column names are strings of at most 64 characters")
        if value is not None and (
            not isinstance(value, str) or len(value) > _MAX_DIRECTORY_TEXT
        ):
            raise _Invalid(
                f"directory values are null or strings of at most {_MAX_DIRECTORY_TEXT} "
                "characters"
            )
    return {f.name: v.get(f.name) for f in schema.directory_fields()}


_SESSION = _str(64, _SESSION_RE)
_NAME = _str(_MAX_ID)
_SEQ = _int()
