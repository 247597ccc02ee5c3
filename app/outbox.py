"""What the outbox holds in a rep's words: changes, not updates (no Qt, no SQL).

Every keystroke in the notes is one update in the outbox (each must reach the server), but
a rep calls a sentence typed offline one change. :func:`count_changes` counts, per
customer: each field (or other part, by the outbox summary's parts: "City", "Zip",
"tasks", "new customer", "undo", …) once however often it was edited, and the notes once
per editing session (keystrokes less than :data:`NOTES_SESSION_GAP` apart). The replica
feeds it ``(doc_id, summary, created_at)`` rows, oldest first
(:meth:`app.replica.Replica.pending_changes`); ``OutboxChanged.pending`` carries the count.

Each entry also names the *parts* it changes (field names, and :data:`ROOT_PARTS`), so the
form can mark "not yet synced" per field after a reopen
(:meth:`app.core.ClientCore.pending_fields`). Entries queued before the replica recorded
parts (schema version 1) have only their summary: :func:`parts_from_summary` reads it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from sync.protocol import schema

__all__ = [
    "NOTES_SESSION_GAP",
    "ROOT_PARTS",
    "ChangeCounter",
    "PendingChanges",
    "count_changes",
    "decode_parts",
    "encode_parts",
    "parts_from_summary",
]

#: Seconds without a notes edit on a customer that end a notes editing session.
NOTES_SESSION_GAP = 300.0
_NOTES = "notes"
#: The parts of a customer besides its fields that an outbox entry may change.
ROOT_PARTS = ("notes", "tasks", "comments", "meta")
#: Summary words (:func:`app.documents._summary`) of the parts that are not fields.
_SUMMARY_ROOTS = {"notes": "notes", "tasks": "tasks", "comment": "comments",
                  "deleted/restored": "meta"}


@dataclass(frozen=True, slots=True)
class PendingChanges:
    """Changes waiting for the server: ``changes`` as a rep counts them, on ``customers``
    customers, held in ``updates`` outbox entries."""

    changes: int
    customers: int
    updates: int

    def text(self) -> str:
        """ "1 change on 1 customer", "5 changes on 2 customers", "" when nothing waits."""
        if not self.updates:
            return ""
        return (f"{self.changes:,} change{'s' if self.changes != 1 else ''} on "
                f"{self.customers:,} customer{'s' if self.customers != 1 else ''}")


class ChangeCounter:
    """:func:`count_changes` fed one row at a time, oldest first: a count kept between
    reads of a growing outbox only adds the rows queued since (no rescan per edit)."""

    __slots__ = ("_docs", "_last_notes", "_parts", "_sessions", "_updates")

    def __init__(self) -> None:
        self._parts: set[tuple[str, str]] = set()
        self._last_notes: dict[str, float] = {}
        self._docs: set[str] = set()
        self._sessions = 0
        self._updates = 0

    def add(self, doc_id: str, summary: str, created_at: float) -> None:
        """Count the next (newer) outbox row."""
        self._updates += 1
        self._docs.add(doc_id)
        for part in (summary or "change").split(", "):
            if part == _NOTES:
                previous = self._last_notes.get(doc_id)
                if previous is None or created_at - previous > NOTES_SESSION_GAP:
                    self._sessions += 1
                self._last_notes[doc_id] = created_at
            else:
                self._parts.add((doc_id, part))

    def result(self) -> PendingChanges:
        """The count of the rows added so far."""
        return PendingChanges(len(self._parts) + self._sessions, len(self._docs),
                              self._updates)


def count_changes(rows: Iterable[tuple[str, str, float]]) -> PendingChanges:
    """Count ``(doc_id, summary, created_at)`` outbox rows (oldest first) as changes."""
    counter = ChangeCounter()
    for doc_id, summary, created_at in rows:
        counter.add(doc_id, summary, created_at)
    return counter.result()


def encode_parts(parts: Iterable[str]) -> str:
    """The ``outbox.parts`` column's text: a sorted JSON list."""
    return json.dumps(sorted(set(parts)))


def decode_parts(text: str | None, summary: str) -> frozenset[str]:
    """The parts an outbox entry changes: its ``parts`` column, or for an entry queued
    before the column existed (``None``), what its summary names."""
    if text is None:
        return parts_from_summary(summary)
    return frozenset(str(p) for p in json.loads(text))


def parts_from_summary(summary: str) -> frozenset[str]:
    """The parts a summary like "City, Zip, notes" names (labels from the field table);
    words that name no part ("undo", "new customer") are left out."""
    by_label = {f.label: f.name for f in schema.fields()}
    out: set[str] = set()
    for word in (summary or "").split(", "):
        name = by_label.get(word) or _SUMMARY_ROOTS.get(word)
        if name is not None:
            out.add(name)
    return frozenset(out)
