"""Documents and notifications on Postgres: snapshots, loading, history, the TTL'd
notification log. The same reads the SQLite store answers (store.py), over asyncpg.

Notification numbers are commit-ordered like update numbers (log.py): they come from the
one row of ``notification_head``, whose lock is held until COMMIT, so a client replaying
"notifications since N" after a reconnect never skips one that committed late.

Every function takes the caller's connection; writers run inside the caller's transaction.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterable, Sequence
from typing import Any

from sync.protocol.messages import Notification, NotificationKind

__all__ = [
    "HistoryRow",
    "append_expiring",
    "append_notifications",
    "history",
    "load_document",
    "notifications_since",
    "purge_notifications",
    "put_snapshot",
    "updates_until",
]

#: One version in a document's history: (seq, doc_id, author, session_id, time, changes).
HistoryRow = tuple[int, str, str, str | None, float, tuple[str, ...]]


async def put_snapshot(conn: Any, doc_id: str, seq: int, data: bytes) -> None:
    """Store a merged state of ``doc_id`` up to ``seq`` (an older one never replaces it)."""
    await conn.execute(
        "INSERT INTO snapshots (doc_id, seq, data) VALUES ($1, $2, $3) "
        "ON CONFLICT (doc_id) DO UPDATE SET seq = excluded.seq, data = excluded.data "
        "WHERE excluded.seq > snapshots.seq",
        doc_id, seq, data,
    )


async def load_document(conn: Any, doc_id: str) -> tuple[list[bytes], int]:
    """The updates that rebuild ``doc_id`` (its snapshot first), and its latest seq."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        snap = await conn.fetchrow("SELECT seq, data FROM snapshots WHERE doc_id = $1", doc_id)
        after = int(snap["seq"]) if snap else 0
        rows = await conn.fetch(
            "SELECT seq, data FROM updates WHERE doc_id = $1 AND seq > $2 ORDER BY seq",
            doc_id, after,
        )
    parts = [bytes(snap["data"])] if snap else []
    parts.extend(bytes(r["data"]) for r in rows)
    return parts, int(rows[-1]["seq"]) if rows else after


async def updates_until(conn: Any, doc_id: str, seq: int) -> list[bytes]:
    """Every logged update of ``doc_id`` with a sequence number up to ``seq``."""
    rows = await conn.fetch(
        "SELECT data FROM updates WHERE doc_id = $1 AND seq <= $2 ORDER BY seq", doc_id, seq
    )
    return [bytes(r["data"]) for r in rows]


async def history(conn: Any, doc_id: str, *, before: int | None = None,
                  limit: int = 100) -> list[HistoryRow]:
    """Versions of a document, newest first (without the update bytes)."""
    rows = await conn.fetch(
        "SELECT seq, doc_id, author, session_id, time, changes FROM updates "
        "WHERE doc_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3",
        doc_id, before if before is not None else 2**62, limit,
    )
    return [
        (int(r[0]), str(r[1]), str(r[2]), r[3], float(r[4]), tuple(json.loads(r[5])))
        for r in rows
    ]


async def updates_after(conn: Any, doc_id: str, seq: int, limit: int = 10000) -> list[
    tuple[int, str, str, str | None, float, tuple[str, ...], bytes]
]:
    """A document's log rows numbered after ``seq``, oldest first, with their bytes."""
    rows = await conn.fetch(
        "SELECT seq, doc_id, author, session_id, time, changes, data FROM updates "
        "WHERE doc_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        doc_id, seq, limit,
    )
    return [
        (int(r[0]), str(r[1]), str(r[2]), r[3], float(r[4]), tuple(json.loads(r[5])),
         bytes(r[6]))
        for r in rows
    ]


async def append_notifications(
    conn: Any, notifications: Sequence[Notification], expires_at: float
) -> list[Notification]:
    """Store notifications with the next commit-ordered numbers (their ``seq`` is ignored);
    returns them numbered. Call inside a transaction."""
    return await append_expiring(conn, [(n, expires_at) for n in notifications])


async def append_expiring(
    conn: Any, items: Sequence[tuple[Notification, float]]
) -> list[Notification]:
    """Like :func:`append_notifications`, each notification with its own expiry time."""
    if not items:
        return []
    last = int(await conn.fetchval(
        "UPDATE notification_head SET seq = seq + $1 WHERE id = 1 RETURNING seq", len(items),
    ))
    numbered = [
        dataclasses.replace(n, seq=last - len(items) + 1 + i) for i, (n, _) in enumerate(items)
    ]
    await conn.copy_records_to_table(
        "notifications",
        records=[(n.seq, n.doc, n.kind.value, n.actor, n.time, json.dumps(n.fields), n.title,
                  expires) for n, (_, expires) in zip(numbered, items, strict=True)],
        columns=("seq", "doc_id", "kind", "actor", "time", "fields", "title", "expires_at"),
    )
    return numbered


async def notifications_since(
    conn: Any, since: int, doc_ids: Iterable[str] | None, limit: int,
    now: float | None = None,
) -> list[Notification]:
    """Unexpired notifications after ``since`` (for ``doc_ids``, or all when None)."""
    now = time.time() if now is None else now
    if doc_ids is None:
        rows = await conn.fetch(
            "SELECT seq, doc_id, kind, actor, time, fields, title FROM notifications "
            "WHERE seq > $1 AND expires_at > $2 ORDER BY seq LIMIT $3", since, now, limit,
        )
    else:
        ids = list(doc_ids)
        if not ids:
            return []
        rows = await conn.fetch(
            "SELECT seq, doc_id, kind, actor, time, fields, title FROM notifications "
            "WHERE seq > $1 AND expires_at > $2 AND doc_id = ANY($3::text[]) "
            "ORDER BY seq LIMIT $4", since, now, ids, limit,
        )
    return [
        Notification(int(r[0]), str(r[1]), NotificationKind(r[2]), str(r[3]), float(r[4]),
                     tuple(json.loads(r[5])), r[6])
        for r in rows
    ]


async def purge_notifications(conn: Any, now: float | None = None) -> int:
    """Delete expired notifications; returns how many."""
    now = time.time() if now is None else now
    status = await conn.execute("DELETE FROM notifications WHERE expires_at <= $1", now)
    return int(status.rsplit(" ", 1)[1])
