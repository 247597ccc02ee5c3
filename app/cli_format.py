"""What ``liveedit client`` prints: the text and JSON shapes of its command output.

Pure functions from the core's records to a line, a block of text (the customer card) or
a JSON-ready value; :mod:`app.cli` decides when to print them and where. Nothing here
prints, reads the replica or talks to the server. Times are shown in the local time zone;
JSON keeps them as unix seconds.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from .core import CustomerView, Version
from .notifications import describe
from .replica import Conflict, DirectoryRow, OutboxEntry

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
    """The ``show`` card: name, contact fields, address, then notes, tasks, comments."""
    f = view.fields
    lines = [f"{f['name'] or '(no name)'}{'  [deleted]' if view.deleted else ''}",
             f"  id       {view.id}"]
    for name in ("email", "phone", "tier"):
        if f[name]:
            lines.append(f"  {name:<8} {f[name]}")
    place = " ".join(p for p in (f["state"], f["zip"]) if p)
    address = [f["street1"], f["street2"], ", ".join(p for p in (f["city"], place) if p)]
    for i, line in enumerate(a for a in address if a):
        lines.append(f"  {'address' if i == 0 else '':<8} {line}")
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
    """One ``search`` result as JSON."""
    return {"id": r.customer_id, "name": r.name, "email": r.email, "phone": r.phone,
            "city": r.city, "state": r.state, "zip": r.zip,
            "deleted": bool(r.deleted), "updated_at": r.updated_at}


def search_line(r: DirectoryRow) -> str:
    """One ``search`` result as a line: id, name, email, place."""
    place = ", ".join(p for p in (r.city, r.state) if p)
    extra = "  [deleted]" if r.deleted else ""
    return f"{r.customer_id}  {r.name or '(no name)'}  {r.email or ''}  {place}{extra}"


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
    return (f"{e.ref:>6}  {customer_of(e.doc_id)}  {e.summary}  "
            f"({age(now - e.created_at)} ago)")


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
    return f"{v.seq:>8}  {when(v.time)}  {v.author}  {', '.join(v.changes)}"


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
