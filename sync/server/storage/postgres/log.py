"""The update log on Postgres: commit-ordered global sequence numbers.

Several nodes append to one log. A plain Postgres ``SEQUENCE`` hands out numbers at
``nextval`` time, not at commit: a transaction holding 41 can commit after one holding 42,
and a reader of "everything after 40" that saw 42 moves its cursor past 41 for good
(missed notifications, directory feed, bus catch-up). Here the numbers come from the one
row of ``log_head``:

    UPDATE log_head SET seq = seq + n WHERE id = 1 RETURNING seq

The row lock it takes is held until the transaction ends, so the next writer gets its
numbers only after this one committed (or rolled back, giving its numbers back): commits
happen in sequence order, and every reader sees a gap-free prefix of the log. The cost is
one writer transaction at a time across all nodes, which group commit (many updates per
transaction) makes cheap; ``bench/cluster.py`` measures it.

Every function here that takes a connection runs inside the caller's transaction on it;
``update_signals``/``notification_signals`` only build payloads, and :class:`LogFeed`
takes its own pooled connections.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sync.protocol.messages import Notification

from ...bus import NotificationsCommitted, UpdatesCommitted, encode_event
from .bus import CHANNEL
from .stall import STALL_TIMEOUT, acquired

__all__ = [
    "LogFeed", "LogRow", "append_updates", "last_seq", "notification_signals", "send_signals",
    "take_numbers", "update_signals", "updates_since",
]

#: One update to append: (doc_id, author, session_id, time, changes JSON, data).
LogRow = tuple[str, str, str | None, float, str, bytes]


async def append_updates(conn: Any, rows: Sequence[LogRow], *, node: str = "",
                         signal: bool = True) -> int:
    """Append ``rows`` with the next sequence numbers; returns the first one.

    Call inside a transaction. One ``UpdatesCommitted`` signal per document goes out with
    the commit (NOTIFY is transactional), so other nodes hear of it exactly when the rows
    become visible. ``node`` is the writer's bus node id (it ignores its own signal).
    ``signal=False``: the caller sends :func:`update_signals` itself (with others, in one
    :func:`send_signals` round trip).
    """
    if not rows:
        return 0
    last = int(await conn.fetchval(
        "UPDATE log_head SET seq = seq + $1 WHERE id = 1 RETURNING seq", len(rows)
    ))
    first = last - len(rows) + 1
    await conn.copy_records_to_table(
        "updates", records=[(first + i, *row) for i, row in enumerate(rows)],
        columns=("seq", "doc_id", "author", "session_id", "time", "changes", "data"),
    )
    if signal:
        await send_signals(conn, update_signals([row[0] for row in rows], first, node=node))
    return first


def update_signals(doc_ids: Sequence[str], first: int, *, node: str = "") -> list[str]:
    """The ``UpdatesCommitted`` signals of log rows numbered from ``first`` for ``doc_ids``
    (one per document, its highest number)."""
    latest: dict[str, int] = {}
    for i, doc_id in enumerate(doc_ids):
        latest[doc_id] = first + i
    return [encode_event(UpdatesCommitted(node or "log", doc_id, seq))
            for doc_id, seq in latest.items()]


def notification_signals(notifications: Sequence[Notification], *,
                         node: str = "") -> list[str]:
    """The ``NotificationsCommitted`` signals of numbered notifications (one per document,
    its first and last number): the other nodes show them to their subscribers live."""
    ranges: dict[str, tuple[int, int]] = {}
    for n in notifications:
        low, high = ranges.get(n.doc, (n.seq, n.seq))
        ranges[n.doc] = (min(low, n.seq), max(high, n.seq))
    return [encode_event(NotificationsCommitted(node or "log", doc_id, low, high))
            for doc_id, (low, high) in ranges.items()]


async def send_signals(conn: Any, payloads: Sequence[str]) -> None:
    """NOTIFY every payload on the bus channel in one round trip (a statement each would
    cost one each); delivered when the caller's transaction commits."""
    if payloads:
        await conn.execute("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p",
                           CHANNEL, list(payloads))


async def take_numbers(conn: Any, count: int) -> int:
    """Take ``count`` numbers from the log head without log rows; returns the first.
    Call inside a transaction (the head row stays locked until COMMIT)."""
    last = int(await conn.fetchval(
        "UPDATE log_head SET seq = seq + $1 WHERE id = 1 RETURNING seq", count
    ))
    return last - count + 1


async def last_seq(conn: Any) -> int:
    """The highest committed sequence number (what a reader may wait for)."""
    return int(await conn.fetchval("SELECT COALESCE(MAX(seq), 0) FROM updates"))


async def updates_since(conn: Any, seq: int, limit: int) -> list[tuple[int, str, str | None]]:
    """``(seq, doc_id, session_id)`` of committed updates after ``seq``, oldest first."""
    rows = await conn.fetch(
        "SELECT seq, doc_id, session_id FROM updates WHERE seq > $1 ORDER BY seq LIMIT $2",
        seq, limit,
    )
    return [(int(r[0]), str(r[1]), r[2]) for r in rows]


class LogFeed:
    """The update log as the Postgres bus reads it after a reconnect (bus.UpdateFeed),
    on connections from an asyncpg pool."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool

    async def last_seq(self) -> int:
        """The highest committed sequence number now."""
        async with acquired(self.pool, "the bus's read", STALL_TIMEOUT) as conn:
            return await last_seq(conn)

    async def changed_since(self, seq: int, limit: int) -> Sequence[tuple[str, int]]:
        """``(doc_id, seq)`` of committed rows after ``seq``, oldest first."""
        async with acquired(self.pool, "the bus's read", STALL_TIMEOUT) as conn:
            return [(doc_id, n) for n, doc_id, _session in await updates_since(conn, seq, limit)]
