"""What changed between two versions of a customer, in plain words (no Qt).

Used by the history dialog: each history entry says what changed in the notes and tasks
(a word diff made with :mod:`difflib`, and task by task), and "Revert whole customer" first
shows what the revert will change (:func:`revert_plan`). Versions are the server's JSON
(``core.version``: fields, ``address`` nested, ``deleted``, ``notes``, ``tasks``,
``comments``); the current customer is an ``app.core.CustomerView``. Field labels come from
the field table (:func:`sync.protocol.schema.label`), read each time.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sync.protocol import schema

__all__ = [
    "RevertPlan",
    "flatten_version",
    "notes_changes",
    "revert_plan",
    "tasks_changes",
    "version_changes",
]

#: Longest quoted snippet of text in a sentence.
_SNIPPET = 60
#: At most this many notes changes are listed (then "and N more").
_MAX_NOTES_LINES = 6
_TOKEN = re.compile(r"\s+|[^\s]+")


def flatten_version(data: Mapping[str, Any]) -> dict[str, Any]:
    """Field values of a version's JSON (``address`` nested) as one flat mapping."""
    address = data.get("address") or {}
    return {f.name: address.get(f.name) if f.name in address else data.get(f.name)
            for f in schema.fields()}


def _quote(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > _SNIPPET:
        text = text[: _SNIPPET - 1] + "…"
    return f"“{text}”"


def _value(value: Any) -> str:
    return "(empty)" if value in (None, "") else _quote(str(value))


def notes_changes(before: str, after: str) -> list[str]:
    """The notes' changes from ``before`` to ``after``, word by word: "added “…”",
    "removed “…”", "changed “…” to “…”" (at most a few, then "and N more changes")."""
    if before == after:
        return []
    old, new = _TOKEN.findall(before), _TOKEN.findall(after)
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    out: list[str] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        removed, added = "".join(old[i1:i2]).strip(), "".join(new[j1:j2]).strip()
        if tag == "equal" or not (removed or added):
            continue
        if tag == "replace" and removed and added:
            out.append(f"changed {_quote(removed)} to {_quote(added)}")
        elif added:
            out.append(f"added {_quote(added)}")
        else:
            out.append(f"removed {_quote(removed)}")
    if len(out) > _MAX_NOTES_LINES:
        rest = len(out) - _MAX_NOTES_LINES + 1
        out = [*out[: _MAX_NOTES_LINES - 1], f"and {rest} more changes"]
    return out


def _task_rows(tasks: Iterable[Any]) -> list[dict[str, Any]]:
    """Tasks as dicts (id, title, done, order), from JSON dicts or ``document.Task``s."""
    rows = []
    for t in tasks:
        if isinstance(t, Mapping):
            rows.append({"id": t.get("id"), "title": t.get("title", ""),
                         "done": bool(t.get("done")), "order": t.get("order", 0)})
        else:
            rows.append({"id": t.id, "title": t.title, "done": bool(t.done),
                         "order": getattr(t, "order", 0)})
    return sorted(rows, key=lambda r: (r["order"], str(r["id"])))


def tasks_changes(before: Iterable[Any], after: Iterable[Any]) -> list[str]:
    """The tasks' changes from ``before`` to ``after``: added, removed, renamed, checked,
    unchecked, reordered."""
    old = {r["id"]: r for r in _task_rows(before)}
    new = {r["id"]: r for r in _task_rows(after)}
    out: list[str] = []
    for task_id, task in new.items():
        if task_id not in old:
            out.append(f"added task {_quote(task['title'])}")
    for task_id, task in old.items():
        if task_id not in new:
            out.append(f"removed task {_quote(task['title'])}")
            continue
        now = new[task_id]
        if now["title"] != task["title"]:
            out.append(f"renamed task {_quote(task['title'])} to {_quote(now['title'])}")
        if now["done"] != task["done"]:
            out.append(f"{'checked' if now['done'] else 'unchecked'} {_quote(now['title'])}")
    common_old = [i for i in old if i in new]
    common_new = [i for i in new if i in old]
    if common_old != common_new:
        out.append("reordered tasks")
    return out


def _fields_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    return [f"{f.label}: {_value(before.get(f.name))} → {_value(after.get(f.name))}"
            for f in schema.fields() if before.get(f.name) != after.get(f.name)]


def version_changes(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> list[str]:
    """What one version changed, from the version before it (None: it is the first).

    Fields as "City: “Paris” → “Lyon”", then "Notes: added “…”" and "added task “…”"."""
    prev: Mapping[str, Any] = before or {}
    out = _fields_changes(flatten_version(prev), flatten_version(after))
    out += [f"Notes: {c}" for c in notes_changes(prev.get("notes") or "",
                                                  after.get("notes") or "")]
    out += tasks_changes(prev.get("tasks") or [], after.get("tasks") or [])
    if bool(prev.get("deleted")) != bool(after.get("deleted")) and before is not None:
        out.append("deleted the customer" if after.get("deleted") else "restored the customer")
    return out


@dataclass(frozen=True, slots=True)
class RevertPlan:
    """What "Revert whole customer" to one version changes, section by section."""

    fields: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    deleted: str | None = None
    comments: str = ""

    @property
    def empty(self) -> bool:
        """True when the customer already is as it was in that version."""
        return not (self.fields or self.notes or self.tasks or self.deleted)

    def lines(self) -> list[str]:
        """The plan as lines of text, by section (headings end with a colon)."""
        out: list[str] = []
        for heading, items in (("Fields", self.fields), ("Notes", self.notes),
                               ("Tasks", self.tasks)):
            if items:
                out.append(f"{heading}:")
                out += [f"  • {item}" for item in items]
        if self.deleted:
            out.append(self.deleted)
        if self.comments:
            out.append(self.comments)
        return out


def revert_plan(then: Mapping[str, Any], now: Any) -> RevertPlan:
    """What reverting ``now`` (a CustomerView) to version ``then`` (its JSON) changes.

    Comments are a conversation and stay as they are; the plan says how many were added
    since that version."""
    now_fields: Mapping[str, Any] = now.fields
    later = max(0, len(now.comments) - len(then.get("comments") or []))
    comments = (f"Comments stay as they are ({later} added since that version "
                "are kept)." if later else "Comments stay as they are.")
    deleted = None
    if bool(then.get("deleted")) != bool(now.deleted):
        deleted = ("The customer will be deleted again." if then.get("deleted")
                   else "The customer will be restored.")
    return RevertPlan(
        fields=_fields_changes(now_fields, flatten_version(then)),
        notes=notes_changes(now.notes or "", then.get("notes") or ""),
        tasks=tasks_changes(now.tasks, then.get("tasks") or []),
        deleted=deleted,
        comments=comments,
    )
