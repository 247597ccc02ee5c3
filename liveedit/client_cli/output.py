"""What ``liveedit client`` prints: the text and JSON shapes of its command output.

Pure functions from the core's records to a line, a block of text (the customer card) or
a JSON-ready value; :mod:`liveedit.client_cli` decides when to print them and where. Nothing here
prints, reads the replica or talks to the server. Times are shown in the local time zone;
JSON keeps them as unix seconds.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from app.core import CustomerView, Version
from app.notifications import describe, field_label
from app.replica import Conflict, DirectoryRow, OutboxEntry
from sync.protocol import schema

__all__ = [
    "age",
    "card",
    "conflict_json",
    "conflict_line",
    "customer_of",
    "dumps",
    "history_json",
    "history_line",
    "notification_json",
    "notification_line",
    "outbox_json",
    "outbox_line",
    "queued",
    "search_json",
    "search_line",
    "when",
]


def dumps(data: Any) -> str:
    """``--json`` output: indented, non-ASCII kept, anything else as ``str()``."""
    return json.dumps(data, indent=2, ensure_ascii=False, default=str)


# -- customers -----------------------------------------------------------------------------


def card(view: CustomerView) -> str:
    """The ``show`` card: the name, then every other field of the field table that has a
    value (its label, in table order), then notes, tasks, comments."""
    rows = [f for f in schema.fields() if f.name != "name"]
    width = max([len("Id"), *(len(f.label) for f in rows)])
    lines = [f"{view.fields.get('name') or '(no name)'}{'  [deleted]' if view.deleted else ''}",
             f"  {'Id':<{width}}  {view.id}"]
    lines += [f"  {f.label:<{width}}  {view.fields[f.name]}" for f in rows
              if view.fields.get(f.name)]
    if view.notes:
        lines += ["", "Notes:", *(f"  {line}" for line in view.notes.splitlines())]
    if view.tasks:
        lines += ["", "Tasks:", *(f"  [{'x' if t.done else ' '}] {t.title}"
                                  for t in view.tasks)]
    if view.comments:
        lines += ["", "Comments:", *(f"  {when(c.time)} {c.author}: {c.text}"
                                     for c in view.comments)]
    return "\n".join(lines)


def search_json(r: DirectoryRow) -> dict[str, Any]:
    """One ``search`` result as JSON: id, every directory column, deleted, updated_at."""
    return {"id": r.customer_id, **r.values, "deleted": bool(r.deleted),
            "updated_at": r.updated_at}


def search_line(r: DirectoryRow) -> str:
    """One ``search`` result as a line: id, then the directory columns that have a value
    (table order), two spaces apart."""
    values = [r.values.get(f.name) or "" for f in schema.directory_fields()
              if f.name != "name"]
    extra = "  [deleted]" if r.deleted else ""
    shown = "  ".join(v for v in values if v)
    return f"{r.customer_id}  {r.name or '(no name)'}  {shown}{extra}".rstrip()


# -- the outbox and conflicts --------------------------------------------------------------


def queued(count: int, waiting: int) -> str:
    """What an edit queued: ``count`` new changes, ``waiting`` in the outbox in all."""
    change = "change" if count == 1 else "changes"
    return f"queued {count} {change} ({waiting} waiting to sync)"


def outbox_json(e: OutboxEntry, now: float) -> dict[str, Any]:
    """One outbox entry as JSON; ``age`` is seconds since it was queued, at ``now``."""
    return {"ref": e.ref, "customer_id": customer_of(e.doc_id), "summary": e.summary,
            "created_at": e.created_at, "age": round(now - e.created_at, 3),
            "attempts": e.attempts}


def outbox_line(e: OutboxEntry, now: float) -> str:
    """One outbox entry as a line: ref, customer, summary, age at ``now``."""
    sent = f", sent {e.attempts} time(s)" if e.attempts else ""
    return (f"{e.ref:>6}  {customer_of(e.doc_id)}  {e.summary}  "
            f"({age(now - e.created_at)} ago{sent})")


def conflict_json(c: Conflict) -> dict[str, Any]:
    """One open conflict as JSON."""
    return {"id": c.id, "customer_id": customer_of(c.doc_id), "field": c.field,
            "mine": c.mine, "theirs": c.theirs, "author": c.author, "time": c.time}


def conflict_line(c: Conflict) -> str:
    """One open conflict as a line: whose value was kept over yours, and when."""
    return (f"{customer_of(c.doc_id)}  {c.field}: yours {c.mine!r}, kept {c.theirs!r} "
            f"by {c.author} at {when(c.time)}")


# -- notifications and history -------------------------------------------------------------


def notification_json(item: Any) -> dict[str, Any]:
    """A notification's stored attributes as JSON (sets and tuples become lists)."""
    names = ("seq", "doc_id", "kind", "actor", "time", "fields", "title", "offline", "read")
    data = {name: getattr(item, name) for name in names if hasattr(item, name)}
    if isinstance(data.get("fields"), tuple | frozenset | set):
        data["fields"] = list(data["fields"])
    return data


def notification_line(n: Any) -> str:
    """A notification as a line: when, then what happened (flagged if it came offline)."""
    prefix = "while you were offline: " if getattr(n, "offline", False) else ""
    return f"{when(n.time)}  {prefix}{describe(n)}"


def history_json(v: Version) -> dict[str, Any]:
    """One version of a customer's history as JSON."""
    return {"seq": v.seq, "time": v.time, "author": v.author, "changes": list(v.changes)}


def history_line(v: Version) -> str:
    """One version of a customer's history as a line: seq, time, author, changed fields."""
    return f"{v.seq:>8}  {when(v.time)}  {v.author}  {', '.join(field_label(c) for c in v.changes)}"


# -- values --------------------------------------------------------------------------------


def customer_of(doc_id: str) -> str:
    """The customer id of a document id (``customer:<uuid>``); other ids unchanged."""
    return doc_id.partition(":")[2] or doc_id


def when(timestamp: Any) -> str:
    """A unix time as local ``YYYY-MM-DD HH:MM:SS``; ``?`` when it is not a number."""
    if not isinstance(timestamp, int | float):
        return "?"
    return datetime.fromtimestamp(timestamp, UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def age(seconds: float) -> str:
    """A duration, rounded down to its largest unit: ``3 d``, ``5 h``, ``2 min``, ``7 s``."""
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return f"{int(seconds)} s"
