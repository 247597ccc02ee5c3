"""The activity feed's rules (issue 15, item 10) on a real offline profile: others'
changes to followed customers, others' new and deleted customers, no presence noise, never
the rep's own actions; OS notices only for followed customers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.activity import ActivityFeed
from app.core import ClientCore
from sync.protocol.messages import Notification, NotificationKind, customer_doc_id


@pytest.fixture
def core(tmp_path: Path) -> Iterator[ClientCore]:
    """An offline profile of rep "alex" that follows one customer it created."""
    c = ClientCore.open(tmp_path / "profile")
    c.replica.set_setting("username", "alex")
    yield c
    asyncio.run(c.close())


def _n(seq: int, doc: str, kind: NotificationKind, actor: str = "sam") -> Notification:
    return Notification(seq, doc, kind, actor, 1.0, ("city",), "John Smith")


def test_feed_keeps_others_changes_to_followed_and_any_new_or_deleted(
        core: ClientCore) -> None:
    """Presence and own actions go; unfollowed changes go; created/deleted stay."""
    followed = customer_doc_id(asyncio.run(core.create_customer({"name": "John Smith"})))
    other = customer_doc_id(str(uuid.uuid4()))
    feed = ActivityFeed(core)
    items = [
        _n(1, followed, NotificationKind.UPDATED),
        _n(2, followed, NotificationKind.JOINED),
        _n(3, followed, NotificationKind.LEFT),
        _n(4, followed, NotificationKind.UPDATED, actor="alex"),
        _n(5, other, NotificationKind.UPDATED),
        _n(6, other, NotificationKind.CREATED),
        _n(7, other, NotificationKind.DELETED),
        _n(8, other, NotificationKind.CREATED, actor="alex"),
    ]
    assert [n.seq for n in feed.select(items)] == [1, 6, 7]
    assert [n.seq for n in feed.about_followed(items)] == [1]
    feed.close()


def test_stored_rows_and_read_marks_persist(core: ClientCore) -> None:
    """``recent`` filters stored rows; ``mark_read`` persists in the replica."""
    followed = customer_doc_id(asyncio.run(core.create_customer({"name": "John Smith"})))
    core.replica.add_notifications([_n(1, followed, NotificationKind.UPDATED),
                                    _n(2, followed, NotificationKind.JOINED),
                                    _n(3, followed, NotificationKind.UPDATED, "alex")],
                                   offline=True)
    feed = ActivityFeed(core)
    assert [(n.seq, n.read) for n in feed.recent()] == [(1, False)]
    feed.mark_read([1])
    assert [(n.seq, n.read) for n in feed.recent()] == [(1, True)]
    feed.close()
