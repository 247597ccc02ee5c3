"""Notifications in plain words."""

from __future__ import annotations

from app.notifications import describe
from sync.protocol.messages import Notification, NotificationKind

DOC = "customer:6f1c2a52-0d8e-4f39-9d77-1d2e3f4a5b6c"


def note(kind: NotificationKind, fields: tuple[str, ...] = ()) -> Notification:
    """A notification by Sam on John Smith."""
    return Notification(1, DOC, kind, "sam", 1.0, fields, "John Smith")


def test_field_changes_read_as_a_sentence() -> None:
    """Changed fields are named the way a person says them."""
    assert describe(note(NotificationKind.UPDATED, ("city",))) == "sam changed City on John Smith"
    assert describe(note(NotificationKind.UPDATED, ("city", "zip", "email"))) == (
        "sam changed City, Zip and E-mail on John Smith")


def test_each_kind_has_its_sentence() -> None:
    """Created, deleted, commented and joined read naturally."""
    assert describe(note(NotificationKind.CREATED)) == "sam created John Smith"
    assert describe(note(NotificationKind.DELETED)) == "sam deleted John Smith"
    assert describe(note(NotificationKind.COMMENTED)) == "sam commented on John Smith"
    assert describe(note(NotificationKind.JOINED)) == "sam opened John Smith"
