"""The customer field table: every fact about a customer field, written once.

Every face derives what it needs from :func:`fields` (DESIGN.md, "The customer document";
CONVENTIONS.md, "One table for a fact"): the wire ``DirectoryEntry``, the server's
directory table, full-text index and HTTP models, the importer's validation, the client
replica's directory and search, the CLI's card and columns, the desktop form, the history
dialog, notifications and the directory view. A new field is one row here (plus, where a
database needs it, the column that the derived migration adds by itself).

Read the table through :func:`fields` / :func:`get` at the time you build something, not
once at import: a test extends the table with :func:`extended` and every face must see the
extra row.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .errors import InvalidFieldValue

__all__ = [
    "TIERS",
    "Field",
    "Role",
    "address_fields",
    "directory_fields",
    "extended",
    "field_names",
    "fields",
    "get",
    "label",
    "searchable_fields",
    "validate",
    "writable_by",
    "writable_roots",
]


class Role(StrEnum):
    """Who a signed-in user is: a help-desk rep (every customer) or a customer (its own)."""

    REP = "rep"
    CUSTOMER = "customer"


#: A value rule: ``rule(field_name, value)`` returns the value normalised, or raises
#: :class:`~sync.protocol.errors.InvalidFieldValue` with a message a person can act on.
Rule = Callable[[str, Any], "str | None"]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^[0-9+()./x -]*$")
_ZIP = re.compile(r"^[A-Za-z0-9 -]*$")
TIERS = ("basic", "plus", "premium")


def text_rule(max_len: int, pattern: re.Pattern[str] | None = None, what: str = "") -> Rule:
    """Text or null, stripped, at most ``max_len`` characters, matching ``pattern``."""

    def check(field: str, value: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise InvalidFieldValue(field, f"must be text or null, not {type(value).__name__}")
        text: str = value.strip()
        if len(text) > max_len:
            raise InvalidFieldValue(field, f"must be at most {max_len} characters")
        if text and pattern is not None and not pattern.match(text):
            raise InvalidFieldValue(field, f"must be {what}")
        return text

    return check


def choice_rule(choices: tuple[str, ...]) -> Rule:
    """One of ``choices``, or null."""

    def check(field: str, value: Any) -> str | None:
        if value is None or value in choices:
            return value  # type: ignore[no-any-return]
        raise InvalidFieldValue(field, f"must be one of {', '.join(choices)} or null")

    return check


@dataclass(frozen=True, slots=True)
class Field:
    """One customer field and everything every face needs to know about it."""

    #: Key in the document's ``fields`` map, the JSON, the databases and the wire.
    name: str
    #: What people see: form label, history, notifications, CLI, column header.
    label: str
    #: Value rule (validation and normalisation), the same on every route.
    rule: Rule
    #: Form section the field sits in ("Contact", "Address", "Account"); order is table order.
    group: str
    #: A column of the directory (server and replica) and of ``DirectoryEntry``.
    directory: bool = False
    #: Part of the full-text index (server and replica); implies ``directory``.
    searchable: bool = False
    #: Roles that may change it, on every route (HTTP, /ws, /yjs). Reps write everything.
    writers: frozenset[Role] = frozenset({Role.REP})
    #: Nested under ``address`` in the seed-000 JSON shape.
    address: bool = False
    #: Search matches its digits whatever the punctuation (phone numbers).
    digits_search: bool = False
    #: Allowed values, shown as a choice list (None: free text).
    choices: tuple[str, ...] | None = None
    #: Longest value, for input widgets.
    max_length: int = 200

    def __post_init__(self) -> None:
        if self.searchable and not self.directory:
            raise ValueError(f"field {self.name!r}: searchable fields are directory columns")
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,30}", self.name):
            raise ValueError(f"field {self.name!r}: names are lower-case identifiers")


_BOTH = frozenset({Role.REP, Role.CUSTOMER})

#: The table. Order is the order forms, cards and exports show the fields in.
_FIELDS: tuple[Field, ...] = (
    Field("name", "Name", text_rule(200), "Contact", directory=True, searchable=True),
    Field("email", "E-mail", text_rule(254, _EMAIL, "an e-mail address like sam@example.com"),
          "Contact", directory=True, searchable=True, writers=_BOTH, max_length=254),
    Field("phone", "Phone", text_rule(40, _PHONE, "a phone number (digits, spaces, + ( ) - . x)"),
          "Contact", directory=True, searchable=True, writers=_BOTH, digits_search=True,
          max_length=40),
    Field("street1", "Street", text_rule(200), "Address", writers=_BOTH, address=True),
    Field("street2", "Street (line 2)", text_rule(200), "Address", writers=_BOTH,
          address=True),
    Field("city", "City", text_rule(100), "Address", directory=True, searchable=True,
          writers=_BOTH, address=True, max_length=100),
    Field("state", "State", text_rule(64), "Address", directory=True, writers=_BOTH,
          address=True, max_length=64),
    Field("zip", "Zip", text_rule(16, _ZIP, "a postal code (letters, digits, spaces, -)"),
          "Address", directory=True, searchable=True, writers=_BOTH, address=True,
          max_length=16),
    Field("tier", "Tier", choice_rule(TIERS), "Account", choices=TIERS, max_length=16),
)

_current: list[tuple[Field, ...]] = [_FIELDS]


def fields() -> tuple[Field, ...]:
    """Every customer field, in display order (call at build time, do not cache)."""
    return _current[-1]


def field_names() -> tuple[str, ...]:
    """The names of every field, in display order."""
    return tuple(f.name for f in fields())


def get(name: str) -> Field:
    """The field called ``name``; raises InvalidFieldValue naming the known fields."""
    for f in fields():
        if f.name == name:
            return f
    raise InvalidFieldValue(name, f"unknown field; known fields: {', '.join(field_names())}")


def label(name: str) -> str:
    """What people call the field (its name, capitalised, for one no longer in the table)."""
    for f in fields():
        if f.name == name:
            return f.label
    return name.replace("_", " ").capitalize()


def directory_fields() -> tuple[Field, ...]:
    """The directory's columns (server, replica, ``DirectoryEntry``), in table order."""
    return tuple(f for f in fields() if f.directory)


def searchable_fields() -> tuple[Field, ...]:
    """The fields in the full-text index, in table order."""
    return tuple(f for f in fields() if f.searchable)


def address_fields() -> tuple[Field, ...]:
    """The fields the seed-000 JSON shape nests under ``address``."""
    return tuple(f for f in fields() if f.address)


def writable_by(role: Role | str) -> frozenset[str]:
    """Names of the fields ``role`` may change."""
    role = Role(role)
    return frozenset(f.name for f in fields() if role in f.writers)


#: Who may change the document's other parts (DESIGN.md, "The customer document"), on every
#: route. A customer changes only the fields it may write: not the case notes, tasks or
#: comments (the reps' working space) and not the tombstone (delete/restore).
_ROOT_WRITERS: dict[str, frozenset[Role]] = {
    "notes": frozenset({Role.REP}),
    "tasks": frozenset({Role.REP}),
    "comments": frozenset({Role.REP}),
    "meta": frozenset({Role.REP}),
}


def writable_roots(role: Role | str) -> frozenset[str]:
    """The document parts besides ``fields`` (notes, tasks, comments, meta) ``role`` may
    change."""
    role = Role(role)
    return frozenset(root for root, writers in _ROOT_WRITERS.items() if role in writers)


def validate(name: str, value: Any) -> str | None:
    """Check one value and return it normalised; raises InvalidFieldValue."""
    return get(name).rule(name, value)


@contextmanager
def extended(*extra: Field) -> Iterator[tuple[Field, ...]]:
    """Tests only: the table with ``extra`` rows appended, for the block's duration.

    It shows that a field added to the table alone reaches every face. Faces built inside
    the block (a server app, a replica, a form) see the extra rows.
    """
    names = set(field_names())
    for f in extra:
        if f.name in names:
            raise ValueError(f"field {f.name!r} is already in the table")
    _current.append((*fields(), *extra))
    try:
        yield fields()
    finally:
        _current.pop()
