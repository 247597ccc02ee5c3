"""The replica's notifications: the activity feed kept locally.

Each has ``offline`` (it came in a replay after a reconnect, "While you were offline") and
``read`` flags; seqs already stored are ignored, so a replay never duplicates.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from sync.protocol.messages import Notification, NotificationKind

from ._file import ReplicaFile

__all__ = ["NotificationStore", "StoredNotification"]


@dataclass(frozen=True, slots=True)
class StoredNotification:
    """A notification as kept locally; ``offline``: it came in a replay after reconnect."""

    seq: int
    doc_id: str
    kind: NotificationKind
    actor: str
    time: float
    fields: tuple[str, ...]
    title: str | None
    offline: bool
    read: bool


class NotificationStore:
    """The notifications of one replica (a part of :class:`app.replica.Replica`)."""

    def __init__(self, replica: ReplicaFile) -> None:
        self._replica = replica

    def add(self, items: Iterable[Notification], *, offline: bool) -> int:
        """Store notifications, ignoring seqs already stored; returns how many were new."""
        added = 0
        r = self._replica
        with r.transaction():
            conn = r._conn()
            for n in items:
                added += conn.execute(
                    "INSERT OR IGNORE INTO notifications (seq, doc_id, kind, actor, time, "
                    "fields, title, offline, read) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)",
                    (n.seq, n.doc, str(n.kind), n.actor, n.time, json.dumps(list(n.fields)),
                     n.title, int(offline)),
                ).rowcount
        return added

    def latest(self, limit: int = 100, unread_only: bool = False) -> list[StoredNotification]:
        """Stored notifications, newest (highest seq) first."""
        where = " WHERE read = 0" if unread_only else ""
        with self._replica._reading() as conn:
            rows = conn.execute(
                "SELECT seq, doc_id, kind, actor, time, fields, title, offline, read "  # noqa: S608
                f"FROM notifications{where} ORDER BY seq DESC LIMIT ?", (limit,),
            ).fetchall()
        return [
            StoredNotification(r[0], r[1], NotificationKind(r[2]), r[3], r[4],
                               tuple(json.loads(r[5])), r[6], bool(r[7]), bool(r[8]))
            for r in rows
        ]

    def mark_read(self, seqs: Iterable[int]) -> None:
        """Mark notifications read."""
        r = self._replica
        with r.transaction():
            r._conn().executemany(
                "UPDATE notifications SET read = 1 WHERE seq = ?", ((s,) for s in seqs)
            )
