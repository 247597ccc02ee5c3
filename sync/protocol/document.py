"""The customer document: its pycrdt layout, field rules and JSON representation.

One pycrdt ``Doc`` per customer (DESIGN.md, "The customer document"), with these roots:

- ``fields`` (Map): scalar account fields, one per row of the field table
  (:mod:`sync.protocol.schema`); ``None`` is a value.
- ``notes`` (Text): case notes, merged character by character.
- ``tasks`` (Map): task id → Map ``{title, done, order}``. Order is a float; a reorder sets
  one task's order between its new neighbours, so concurrent reorders never duplicate or
  lose a task (ties break by task id).
- ``comments`` (Array): append-only Maps ``{id, author, time, text}``.
- ``meta`` (Map): ``deleted`` (tombstone flag), ``created_at``, ``created_by``.
- ``stamps`` (Map): field name → ``{v, base, by, at, seen}``, written with the field in the
  same transaction: ``v`` the version ``"<writer>:<counter>"``, ``base`` the version this
  write replaced, ``by`` the author, ``at`` the time, ``seen`` the field's version vector
  (writer → highest counter this writer had seen, copied forward on every write).
  Concurrent sets of one field resolve the same way for the value and its stamp, so a
  replica can tell a concurrent overwrite of its own value (the winner had not seen its
  version: a conflict) from a later one, however many writes came in between.

Server and client share this module: it is the one place that knows the layout and the
rules for field values (the rules themselves are rows of :mod:`sync.protocol.schema`,
read each time, so a field added to the table reaches every function here). Functions
that write take an open document and must be called inside the caller's transaction when
several writes belong together.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

from pycrdt import Doc, Map, merge_updates

from . import schema
from .errors import InvalidFieldValue
from .layout import new_document, roots
from .schema import TIERS
from .tasks_comments import (
    MAX_COMMENT_LENGTH,
    Comment,
    Task,
    add_comment,
    add_task,
    delete_task,
    edit_task,
    move_task,
    read_comments,
    read_tasks,
)

__all__ = [
    "MAX_COMMENT_LENGTH",
    "MAX_NOTES_LENGTH",
    "TIERS",
    "ChangeTracker",
    "Comment",
    "Stamp",
    "Task",
    "add_comment",
    "add_task",
    "apply_merge_patch",
    "delete_notes",
    "delete_task",
    "edit_task",
    "fields_from_json",
    "forbidden_changes",
    "forbidden_fields",
    "insert_notes",
    "is_deleted",
    "move_task",
    "new_document",
    "read_comments",
    "read_field",
    "read_fields",
    "read_notes",
    "read_stamp",
    "read_tasks",
    "repair_fields",
    "replace_notes",
    "roots",
    "set_deleted",
    "set_fields",
    "shape_json",
    "to_json",
    "validate_field",
]

MAX_NOTES_LENGTH = 200_000


def validate_field(field: str, value: Any) -> str | None:
    """Check one field value and return it normalised; raises InvalidFieldValue.

    The rule is the field table's (:func:`sync.protocol.schema.validate`).
    """
    return schema.validate(field, value)


class ChangeTracker:
    """Records what transactions on one document changed (server rooms and client docs).

    Use ``with tracker.tracking(): …apply or edit…``; afterwards ``update`` is the
    integrated update (None when nothing changed), ``fields`` maps each changed field to
    pycrdt's key change (``oldValue``/``newValue``, the first old value kept), ``roots`` names
    the changed roots (``fields``, ``notes``, ``tasks``, ``comments``, ``meta``).
    """

    def __init__(self, doc: Doc[Any]) -> None:
        self.doc = doc
        self.updates: list[bytes] = []
        self.fields: dict[str, dict[str, Any]] = {}
        self.roots: set[str] = set()
        r = roots(doc)
        # The roots are observed on their ``integrated`` (native) types: pycrdt's wrapper
        # builds every field of an event eagerly, and a Text event's delta costs time in
        # the length of the text, which made each notes edit slower as notes grew (10,000
        # edits: 1.05 s of observer time instead of 0.03 s). Only fields' keys are read.
        # pycrdt drops an observer when its Subscription is garbage-collected: keep them.
        self._subscriptions = [
            doc.observe(lambda event: self.updates.append(event.update)),
            r.fields.integrated.observe(lambda event: self._on_fields(event.keys)),
            r.notes.integrated.observe(lambda _event: self.roots.add("notes")),
            r.tasks.integrated.observe_deep(lambda _events: self.roots.add("tasks")),
            r.comments.integrated.observe(lambda _event: self.roots.add("comments")),
            r.meta.integrated.observe(lambda _event: self.roots.add("meta")),
        ]

    def close(self) -> None:
        """Stop observing. pycrdt keeps each observer, which refers to the Doc, inside the
        native document: a cycle Python's collector cannot see, so a tracked Doc is freed
        only after this."""
        for subscription in self._subscriptions:
            subscription.drop()
        self._subscriptions.clear()

    def _on_fields(self, keys: dict[str, dict[str, Any]]) -> None:
        self.roots.add("fields")
        for key, change in keys.items():
            first = self.fields.setdefault(key, dict(change))
            first["newValue"] = change.get("newValue")

    @contextmanager
    def tracking(self) -> Iterator[None]:
        """Start recording afresh for the transactions inside the block."""
        self.reset()
        yield

    def reset(self) -> None:
        """Start recording afresh (what :meth:`tracking` does, without a context manager:
        the server's per-update path)."""
        self.updates.clear()
        self.fields.clear()
        self.roots.clear()

    @property
    def update(self) -> bytes | None:
        """The integrated update of the tracked block (several merged), or None."""
        if not self.updates:
            return None
        return self.updates[0] if len(self.updates) == 1 else merge_updates(*self.updates)


def read_fields(doc: Doc[Any]) -> dict[str, str | None]:
    """All fields, every known one present (missing ones are None).

    A value of the wrong type (possible only from a misbehaving peer) reads as its text.
    """
    raw = roots(doc).fields.to_py() or {}
    out: dict[str, str | None] = {}
    for name in schema.field_names():
        value = raw.get(name)
        out[name] = value if value is None or isinstance(value, str) else str(value)
    return out


def _utf8_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


def insert_notes(doc: Doc[Any], index: int, text: str) -> None:
    """Insert ``text`` into the notes at character ``index`` (clamped).

    pycrdt's Text counts positions in UTF-8 bytes, not characters: every notes edit goes
    through these functions, which convert, or an edit after an "é" lands in the wrong
    place (or inside a character).
    """
    notes = roots(doc).notes
    current = str(notes)
    index = max(0, min(index, len(current)))
    notes.insert(_utf8_offset(current, index), text)


def delete_notes(doc: Doc[Any], index: int, length: int) -> None:
    """Delete ``length`` characters of the notes from character ``index`` (clamped)."""
    notes = roots(doc).notes
    current = str(notes)
    end = min(len(current), index + length)
    if 0 <= index < end:
        start = _utf8_offset(current, index)
        del notes[start:start + len(current[index:end].encode("utf-8"))]


def replace_notes(doc: Doc[Any], text: str) -> None:
    """Replace the whole notes text."""
    notes = roots(doc).notes
    with doc.transaction():
        del notes[0:len(str(notes).encode("utf-8"))]
        notes.insert(0, text)


def _is_valid(name: str, value: Any) -> bool:
    try:
        validate_field(name, value)
    except InvalidFieldValue:
        return False
    return True


def _valid_as_changed(name: str, change: Mapping[str, Any]) -> bool:
    """A tracked key change left a valid text value (False: look at the document)."""
    value = change.get("newValue")
    return isinstance(value, str) and _is_valid(name, value)


def forbidden_fields(changed: Iterable[str], writer: schema.Role | str | None) -> tuple[str, ...]:
    """The fields among ``changed`` that ``writer`` may not change (table order; unknown
    names last), per the field table's ``writers`` column. ``None``: no restriction."""
    if writer is None:
        return ()
    allowed = schema.writable_by(writer)
    names = schema.field_names()
    return tuple(sorted(
        (f for f in set(changed) if f not in allowed),
        key=lambda f: (names.index(f) if f in names else len(names), f),
    ))


def forbidden_changes(
    fields: Iterable[str], changed_roots: Iterable[str], writer: schema.Role | str | None,
) -> tuple[str, ...]:
    """What of a change ``writer`` may not make: the fields (as :func:`forbidden_fields`),
    then the other roots (``notes``, ``tasks``, ``comments``, ``meta``) its role may not
    write (:func:`sync.protocol.schema.writable_roots`). Empty: the change is allowed."""
    if writer is None:
        return ()
    allowed = schema.writable_roots(writer)
    others = sorted(r for r in set(changed_roots) - {"fields", "stamps"} if r not in allowed)
    return (*forbidden_fields(fields, writer), *others)


def repair_fields(
    doc: Doc[Any], changed: Mapping[str, Mapping[str, Any]],
    *, writer: schema.Role | str | None = None,
) -> dict[str, str]:
    """Undo field values that break the field rules, as written by a peer that does not
    check them (a Yjs app, a misbehaving client): each goes back to the value it replaced
    when that one was valid, else it is removed (an unknown key too).

    With ``writer`` (a role), a change to a field that role may not write
    (:func:`sync.protocol.schema.writable_by`) is undone the same way.

    ``changed`` is :attr:`ChangeTracker.fields` of the change; call inside its tracking
    block so the repair travels with it. Returns field → what was wrong (empty: nothing
    to repair).
    """
    not_allowed = set(forbidden_fields(changed, writer))
    if not not_allowed and all(_valid_as_changed(n, c) for n, c in changed.items()):
        # The usual case, read from the change's own key events (their newValue is the
        # key's current value): no transaction on the document at all.
        return {}
    fields = roots(doc).fields
    repaired: dict[str, str] = {}
    with doc.transaction():
        for name, change in changed.items():
            if name in not_allowed:
                repaired[name] = f"{name}: the {writer} role may not change this field"
            else:
                if name not in fields:
                    continue
                try:
                    validate_field(name, fields[name])
                    continue
                except InvalidFieldValue as exc:
                    repaired[name] = str(exc)
            old = change.get("oldValue")
            if "oldValue" in change and _is_valid(name, old):
                fields[name] = old
            elif name in fields:
                del fields[name]
    return repaired


def read_field(doc: Doc[Any], name: str) -> str | None:
    """One field's value, read like :func:`read_fields` does (cheaper than all of them)."""
    value = roots(doc).fields.get(name)
    return value if value is None or isinstance(value, str) else str(value)


@dataclass(frozen=True, slots=True)
class Stamp:
    """Who last set a field, when, which version that write replaced, and every version of
    the field its writer had seen (``seen``: writer id → highest counter, a version vector).
    """

    version: str
    base: str
    author: str
    time: float
    seen: dict[str, int] = dataclass_field(default_factory=dict)

    def supersedes(self, version: str) -> bool:
        """True when this stamp's writer had seen ``version`` of the field when writing.

        Versions are ``"<writer>:<counter>"``; the version vector answers even when other
        writes came in between (A wrote, B overwrote twice: B's last stamp still shows A's
        counter). Older stamps without a vector fall back to the direct ``base`` link.
        """
        writer, _, counter = version.rpartition(":")
        if writer and counter.isdigit() and self.seen:
            return self.seen.get(writer, 0) >= int(counter)
        return self.base == version


def read_stamp(doc: Doc[Any], field: str) -> Stamp | None:
    """The stamp of a field's current value, or None (never stamped)."""
    raw = roots(doc).stamps.get(field)
    if raw is None:
        return None
    value = raw.to_py() if isinstance(raw, Map) else raw
    if not isinstance(value, dict):
        return None
    at = value.get("at", 0.0)
    raw_seen = value.get("seen")
    seen = {
        str(k): int(v) for k, v in (raw_seen.items() if isinstance(raw_seen, dict) else ())
        if isinstance(v, int | float)
    }
    return Stamp(
        version=str(value.get("v", "")), base=str(value.get("base", "")),
        author=str(value.get("by", "")), time=float(at) if isinstance(at, int | float) else 0.0,
        seen=seen,
    )


#: The last counter each document instance (pycrdt client id) issued. A write that lost to
#: a concurrent one leaves no trace in the winner's vector, so the next counter must come
#: from here, never only from the current stamp (else a version id would repeat).
_issued: dict[int, int] = {}


def _next_counter(client_id: int, floor: int) -> int:
    counter = max(_issued.get(client_id, 0), floor) + 1
    _issued[client_id] = counter
    return counter


def set_fields(
    doc: Doc[Any], values: Mapping[str, Any], *, author: str = "", now: float | None = None
) -> dict[str, str | None]:
    """Validate every value first, then write them, with their stamps, in one transaction.

    The writer id in the stamps is this document instance's pycrdt client id: unique, and
    a replica always sees its own earlier writes, so its counter only grows.
    Nothing is written when any value is invalid. Returns the values written (normalised);
    fields whose value is already the same are not written again (no empty updates).
    """
    checked = {name: validate_field(name, value) for name, value in values.items()}
    r = roots(doc)
    at = time.time() if now is None else now
    writer = str(doc.client_id)
    written: dict[str, str | None] = {}
    with doc.transaction():
        for name, value in checked.items():
            if name in r.fields and r.fields[name] == value:
                continue
            previous = read_stamp(doc, name)
            seen = dict(previous.seen) if previous else {}
            seen[writer] = _next_counter(doc.client_id, seen.get(writer, 0))
            r.fields[name] = value
            r.stamps[name] = Map({
                "v": f"{writer}:{seen[writer]}", "base": previous.version if previous else "",
                "by": author, "at": at, "seen": seen,
            })
            written[name] = value
    return written


def is_deleted(doc: Doc[Any]) -> bool:
    """True when the customer carries a tombstone."""
    return bool(roots(doc).meta.get("deleted", False))


def set_deleted(doc: Doc[Any], deleted: bool) -> None:
    """Set or clear the tombstone."""
    roots(doc).meta["deleted"] = deleted


def read_notes(doc: Doc[Any]) -> str:
    """The case notes as plain text."""
    return str(roots(doc).notes)


def shape_json(values: Mapping[str, Any]) -> dict[str, Any]:
    """Field values in the seed-000 JSON shape: address fields nested, the others flat.

    Which fields nest under ``address`` is the field table's ``address`` column.
    """
    address = {f.name for f in schema.address_fields()}
    out: dict[str, Any] = {k: v for k, v in values.items() if k not in address}
    out["address"] = {k: values.get(k) for k in schema.field_names() if k in address}
    return out


def to_json(customer_id: str, doc: Doc[Any]) -> dict[str, Any]:
    """The seed-000 JSON shape of a customer: ``address`` nested, other fields flat."""
    out: dict[str, Any] = {"id": customer_id}
    out.update(shape_json(read_fields(doc)))
    out["deleted"] = is_deleted(doc)
    return out


def fields_from_json(data: Mapping[str, Any], *, partial: bool) -> dict[str, Any]:
    """Flatten a seed-000 JSON object (or a merge patch of one) into field values.

    ``partial`` (a merge patch): only the keys present are returned. Keys ``id`` and
    ``deleted`` are ignored here (the caller handles them). Unknown keys and an ``address``
    that is not an object raise InvalidFieldValue. Values are validated.
    """
    address_names = tuple(f.name for f in schema.address_fields())
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in {"id", "deleted"}:
            continue
        if key == "address":
            address = dict.fromkeys(address_names) if value is None else value
            if not isinstance(address, Mapping):
                raise InvalidFieldValue("address", "must be an object")
            for sub, sub_value in address.items():
                if sub not in address_names:
                    raise InvalidFieldValue(
                        f"address.{sub}", f"unknown; address has {', '.join(address_names)}"
                    )
                out[sub] = validate_field(sub, sub_value)
        elif key in address_names:
            raise InvalidFieldValue(key, "belongs inside address")
        else:
            out[key] = validate_field(key, value)
    if not partial:
        for name in schema.field_names():
            out.setdefault(name, None)
    return out


def apply_merge_patch(
    doc: Doc[Any], patch: Mapping[str, Any], *, author: str = ""
) -> dict[str, str | None]:
    """Apply a JSON Merge Patch (RFC 7396) of the JSON shape to the document's fields.

    ``null`` sets a field to null (null is a value here). Returns the fields written.
    """
    return set_fields(doc, fields_from_json(patch, partial=True), author=author)

