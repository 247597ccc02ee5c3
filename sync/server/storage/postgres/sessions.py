"""Sessions on Postgres: a client resumes its subscriptions on whichever node it reaches.

Seed 001: a client instance keeps its SessionId across reconnects, and a reconnect within
the grace period re-activates its subscriptions without resubscribing. With several nodes
the reconnect may reach another node (its node died, or the load balancer chose another),
so the session's subscriptions live here, and a node *claims* a session when the client
authenticates:

- same user, session known and (attached anywhere, or detached within the grace period):
  resumed, with its subscriptions; ``previous_node`` says where it was attached, so that
  node can be told to let go (bus ``SessionMoved``);
- unknown, expired, or presented by another user: a fresh session (another user's
  subscriptions are never handed over).

A node records subscription changes (:func:`save_subscriptions`), and detaches its sessions
when their connection drops (:func:`detach`, ignored if the session moved on meanwhile).
Claims lock the row (``SELECT … FOR UPDATE``): two nodes claiming at once take turns.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["SessionRecord", "claim", "detach", "expire", "save_subscriptions"]


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A session as a node claimed it."""

    session_id: str
    username: str
    subscriptions: frozenset[str]
    directory: bool
    resumed: bool
    previous_node: str | None


async def claim(conn: Any, session_id: str, username: str, node: str, *, now: float,
                grace: float) -> SessionRecord:
    """Attach ``session_id`` to ``node`` for ``username``: resumed, or fresh (module doc)."""
    async with conn.transaction():
        row = await conn.fetchrow(
            "SELECT username, subscriptions, directory, node, detached_at FROM sessions "
            "WHERE session_id = $1 FOR UPDATE", session_id,
        )
        resumable = (
            row is not None and row["username"] == username
            and (row["detached_at"] is None or now - row["detached_at"] <= grace)
        )
        if resumable:
            await conn.execute(
                "UPDATE sessions SET node = $2, detached_at = NULL, updated_at = $3 "
                "WHERE session_id = $1", session_id, node, now,
            )
            return SessionRecord(session_id, username, frozenset(row["subscriptions"]),
                                 bool(row["directory"]), True,
                                 row["node"] if row["detached_at"] is None else None)
        await conn.execute(
            "INSERT INTO sessions (session_id, username, node, updated_at) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT (session_id) DO UPDATE SET "
            "username = excluded.username, subscriptions = '{}', directory = false, "
            "node = excluded.node, detached_at = NULL, updated_at = excluded.updated_at",
            session_id, username, node, now,
        )
        return SessionRecord(session_id, username, frozenset(), False, False, None)


async def save_subscriptions(conn: Any, session_id: str, subscriptions: Iterable[str],
                             directory: bool, now: float) -> None:
    """Record what the session follows now (after a subscribe or unsubscribe)."""
    await conn.execute(
        "UPDATE sessions SET subscriptions = $2, directory = $3, updated_at = $4 "
        "WHERE session_id = $1", session_id, sorted(subscriptions), directory, now,
    )


async def detach(conn: Any, session_id: str, node: str, now: float) -> bool:
    """The session's connection on ``node`` dropped: start its grace period. False when
    the session is attached elsewhere by now (it moved: nothing to do)."""
    status = await conn.execute(
        "UPDATE sessions SET detached_at = $3, updated_at = $3 "
        "WHERE session_id = $1 AND node = $2 AND detached_at IS NULL",
        session_id, node, now,
    )
    return bool(status == "UPDATE 1")


async def expire(conn: Any, now: float, grace: float) -> int:
    """Forget sessions detached for longer than ``grace``; returns how many."""
    status = await conn.execute(
        "DELETE FROM sessions WHERE detached_at IS NOT NULL AND detached_at < $1",
        now - grace,
    )
    return int(status.rsplit(" ", 1)[1])
