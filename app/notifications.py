"""Notifications in plain words, the same for the desktop app and the CLI.

``describe(n)`` → "Sam changed City and Zip on John Smith"; replayed ones (received after a
reconnect) are grouped by the caller under "While you were offline".
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sync.protocol import schema

__all__ = ["describe", "field_label"]

#: How the parts of a customer that are not fields are named in a sentence.
_ROOTS = {"notes": "the notes", "tasks": "the tasks", "comments": "the comments"}


def field_label(name: str) -> str:
    """How a field (the field table's label) or a part ("the notes") is named."""
    return _ROOTS.get(name) or schema.label(name)


def _join(names: Iterable[str]) -> str:
    labels = [field_label(n) for n in names]
    if len(labels) <= 1:
        return "".join(labels)
    return ", ".join(labels[:-1]) + " and " + labels[-1]


def describe(notification: Any) -> str:
    """One sentence for a notification (a protocol Notification or a stored one)."""
    actor = notification.actor or "someone"
    title = notification.title or "a customer"
    kind = str(getattr(notification.kind, "value", notification.kind))
    fields = tuple(notification.fields or ())
    sentences = {
        "created": f"{actor} created {title}",
        "deleted": f"{actor} deleted {title}",
        "restored": f"{actor} restored {title}",
        "commented": f"{actor} commented on {title}",
        "joined": f"{actor} opened {title}",
        "left": f"{actor} closed {title}",
    }
    if kind in sentences:
        return sentences[kind]
    if fields:
        return f"{actor} changed {_join(fields)} on {title}"
    return f"{actor} changed {title}"
