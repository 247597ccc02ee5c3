"""The customer document: its pycrdt layout, field rules and JSON representation.

One pycrdt ``Doc`` per customer (DESIGN.md, "The customer document"), with these roots:

- ``fields`` (Map): scalar account fields, see ``FIELDS``; ``None`` is a value.
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
rules for field values. Functions that write take an open document and must be called
inside the caller's transaction when several writes belong together.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

from pycrdt import Array, Doc, Map, Text, merge_updates

from .errors import InvalidFieldValue

__all__ = [
    "ADDRESS_FIELDS",
    "FIELDS",
    "MAX_COMMENT_LENGTH",
    "MAX_NOTES_LENGTH",
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
    "to_json",
    "validate_field",
]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^[0-9+()./x -]*$")
_ZIP = re.compile(r"^[A-Za-z0-9 -]*$")
TIERS = ("basic", "plus", "premium")
MAX_NOTES_LENGTH = 200_000
MAX_COMMENT_LENGTH = 10_000
MAX_TASK_TITLE = 500


def _text(max_len: int, pattern: re.Pattern[str] | None = None, what: str = "") -> Callable[
    [str, Any], str | None
]:
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


def _tier(field: str, value: Any) -> str | None:
    if value is None or value in TIERS:
        return value  # type: ignore[no-any-return]
    raise InvalidFieldValue(field, f"must be one of {', '.join(TIERS)} or null")


#: Every customer field and its rule. Order is the order forms show them in.
FIELDS: dict[str, Callable[[str, Any], str | None]] = {
    "name": _text(200),
    "email": _text(254, _EMAIL, "an e-mail address like sam@example.com"),
    "phone": _text(40, _PHONE, "a phone number (digits, spaces, + ( ) - . x)"),
    "street1": _text(200),
    "street2": _text(200),
    "city": _text(100),
    "state": _text(64),
    "zip": _text(16, _ZIP, "a postal code (letters, digits, spaces, -)"),
    "tier": _tier,
}
#: The fields that the seed-000 JSON shape nests under ``address``.
ADDRESS_FIELDS = ("street1", "street2", "city", "state", "zip")


def validate_field(field: str, value: Any) -> str | None:
    """Check one field value and return it normalised; raises InvalidFieldValue."""
    rule = FIELDS.get(field)
    if rule is None:
        raise InvalidFieldValue(field, f"unknown field; known fields: {', '.join(FIELDS)}")
    return rule(field, value)


@dataclass(frozen=True, slots=True)
class Roots:
    """The shared types of one customer document."""

    fields: Map[Any]
    notes: Text
    tasks: Map[Any]
    comments: Array[Any]
    meta: Map[Any]
    stamps: Map[Any]


#: The attribute that caches a document's Roots on the Doc itself. A root never changes
#: identity, and ``Doc.get`` (six per call) was the largest single cost of the server's
#: per-update path. (Not a WeakKeyDictionary: each root refers to its Doc, so the value
#: would keep the key alive; on the Doc it is an ordinary collectable cycle.)
_ROOTS_ATTR = "_liveedit_roots"


def roots(doc: Doc[Any]) -> Roots:
    """The document's root types, declared if this document has not seen them yet."""
    found: Roots | None = getattr(doc, _ROOTS_ATTR, None)
    if found is None:
        found = Roots(
            fields=doc.get("fields", type=Map),
            notes=doc.get("notes", type=Text),
            tasks=doc.get("tasks", type=Map),
            comments=doc.get("comments", type=Array),
            meta=doc.get("meta", type=Map),
            stamps=doc.get("stamps", type=Map),
        )
        setattr(doc, _ROOTS_ATTR, found)
    return found


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
        self.updates.clear()
        self.fields.clear()
        self.roots.clear()
        yield

    @property
    def update(self) -> bytes | None:
        """The integrated update of the tracked block (several merged), or None."""
        if not self.updates:
            return None
        return self.updates[0] if len(self.updates) == 1 else merge_updates(*self.updates)


def new_document() -> Doc[Any]:
    """An empty customer document with its roots declared."""
    doc: Doc[Any] = Doc()
    roots(doc)
    return doc


def read_fields(doc: Doc[Any]) -> dict[str, str | None]:
    """All fields, every known one present (missing ones are None).

    A value of the wrong type (possible only from a misbehaving peer) reads as its text.
    """
    raw = roots(doc).fields.to_py() or {}
    out: dict[str, str | None] = {}
    for name in FIELDS:
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


def repair_fields(doc: Doc[Any], changed: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Undo field values that break the field rules, as written by a peer that does not
    check them (a Yjs app, a misbehaving client): each goes back to the value it replaced
    when that one was valid, else it is removed (an unknown key too).

    ``changed`` is :attr:`ChangeTracker.fields` of the change; call inside its tracking
    block so the repair travels with it. Returns field → what was wrong (empty: nothing
    to repair).
    """
    fields = roots(doc).fields
    repaired: dict[str, str] = {}
    with doc.transaction():
        for name, change in changed.items():
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
            else:
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


@dataclass(frozen=True, slots=True)
class Task:
    """A follow-up task as read from the document."""

    id: str
    title: str
    done: bool
    order: float


def read_tasks(doc: Doc[Any]) -> list[Task]:
    """Tasks in display order (by order, then id: the same on every replica)."""
    tasks = []
    for task_id, value in (roots(doc).tasks.to_py() or {}).items():
        if not isinstance(value, dict):
            continue
        order = value.get("order", 0.0)
        tasks.append(Task(
            id=task_id,
            title=str(value.get("title", "")),
            done=bool(value.get("done", False)),
            order=float(order) if isinstance(order, int | float) else 0.0,
        ))
    tasks.sort(key=lambda t: (t.order, t.id))
    return tasks


def add_task(doc: Doc[Any], title: str, task_id: str | None = None) -> str:
    """Append a task at the end of the list; returns its id."""
    title = _check_task_title(title)
    existing = read_tasks(doc)
    order = existing[-1].order + 1.0 if existing else 1.0
    task_id = task_id or uuid.uuid4().hex
    roots(doc).tasks[task_id] = Map({"title": title, "done": False, "order": order})
    return task_id


def _task(doc: Doc[Any], task_id: str) -> Map[Any]:
    task = roots(doc).tasks.get(task_id)
    if not isinstance(task, Map):
        raise InvalidFieldValue("task", f"no task {task_id!r} on this customer")
    return task


def edit_task(doc: Doc[Any], task_id: str, *, title: str | None = None,
              done: bool | None = None) -> None:
    """Change a task's title and/or done flag."""
    task = _task(doc, task_id)
    checked = _check_task_title(title) if title is not None else None
    with doc.transaction():
        if checked is not None:
            task["title"] = checked
        if done is not None:
            task["done"] = bool(done)


def delete_task(doc: Doc[Any], task_id: str) -> None:
    """Remove a task."""
    _task(doc, task_id)
    del roots(doc).tasks[task_id]


def move_task(doc: Doc[Any], task_id: str, index: int) -> None:
    """Move a task to position ``index`` of the display order (clamped).

    Only the moved task's order changes (to a value between its new neighbours), so a
    concurrent move of the same task resolves to one place and moves of different tasks
    both apply: never a duplicate, never a loss.
    """
    task = _task(doc, task_id)
    others = [t for t in read_tasks(doc) if t.id != task_id]
    index = max(0, min(index, len(others)))
    before = others[index - 1].order if index > 0 else None
    after = others[index].order if index < len(others) else None
    if before is None and after is None:
        order = 1.0
    elif before is None:
        order = after - 1.0  # type: ignore[operator]
    elif after is None:
        order = before + 1.0
    else:
        order = (before + after) / 2.0
    task["order"] = order


def _check_task_title(title: Any) -> str:
    if not isinstance(title, str) or not title.strip():
        raise InvalidFieldValue("task", "a task needs a title")
    if len(title) > MAX_TASK_TITLE:
        raise InvalidFieldValue("task", f"a task title is at most {MAX_TASK_TITLE} characters")
    return title.strip()


@dataclass(frozen=True, slots=True)
class Comment:
    """A comment in a customer's thread."""

    id: str
    author: str
    time: float
    text: str


def add_comment(doc: Doc[Any], author: str, text: str, time: float) -> str:
    """Append a comment; returns its id."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidFieldValue("comment", "a comment needs some text")
    if len(text) > MAX_COMMENT_LENGTH:
        raise InvalidFieldValue("comment", f"a comment is at most {MAX_COMMENT_LENGTH} characters")
    comment_id = uuid.uuid4().hex
    roots(doc).comments.append(
        Map({"id": comment_id, "author": author, "time": time, "text": text})
    )
    return comment_id


def read_comments(doc: Doc[Any]) -> list[Comment]:
    """Comments in the order they were appended (merged order on every replica)."""
    out = []
    for value in roots(doc).comments.to_py() or []:
        if isinstance(value, dict):
            time = value.get("time", 0.0)
            out.append(Comment(
                id=str(value.get("id", "")),
                author=str(value.get("author", "")),
                time=float(time) if isinstance(time, int | float) else 0.0,
                text=str(value.get("text", "")),
            ))
    return out


def to_json(customer_id: str, doc: Doc[Any]) -> dict[str, Any]:
    """The seed-000 JSON shape of a customer: ``address`` nested, other fields flat."""
    values = read_fields(doc)
    out: dict[str, Any] = {"id": customer_id}
    out.update({k: v for k, v in values.items() if k not in ADDRESS_FIELDS})
    out["address"] = {k: values[k] for k in ADDRESS_FIELDS}
    out["deleted"] = is_deleted(doc)
    return out


def fields_from_json(data: Mapping[str, Any], *, partial: bool) -> dict[str, Any]:
    """Flatten a seed-000 JSON object (or a merge patch of one) into field values.

    ``partial`` (a merge patch): only the keys present are returned. Keys ``id`` and
    ``deleted`` are ignored here (the caller handles them). Unknown keys and an ``address``
    that is not an object raise InvalidFieldValue. Values are validated.
    """
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in {"id", "deleted"}:
            continue
        if key == "address":
            address = dict.fromkeys(ADDRESS_FIELDS) if value is None else value
            if not isinstance(address, Mapping):
                raise InvalidFieldValue("address", "must be an object")
            for sub, sub_value in address.items():
                if sub not in ADDRESS_FIELDS:
                    raise InvalidFieldValue(
                        f"address.{sub}", f"unknown; address has {', '.join(ADDRESS_FIELDS)}"
                    )
                out[sub] = validate_field(sub, sub_value)
        elif key in ADDRESS_FIELDS:
            raise InvalidFieldValue(key, "belongs inside address")
        else:
            out[key] = validate_field(key, value)
    if not partial:
        for name in FIELDS:
            out.setdefault(name, None)
    return out


def apply_merge_patch(
    doc: Doc[Any], patch: Mapping[str, Any], *, author: str = ""
) -> dict[str, str | None]:
    """Apply a JSON Merge Patch (RFC 7396) of the JSON shape to the document's fields.

    ``null`` sets a field to null (null is a value here). Returns the fields written.
    """
    return set_fields(doc, fields_from_json(patch, partial=True), author=author)

