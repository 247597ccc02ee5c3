"""The login throttle on Postgres: one count per username, shared by every node.

The rule is :mod:`sync.server.throttle`'s (``lock_seconds``): after
``LOCK_AFTER_FAILURES`` consecutive failures a username is locked for 1 s, 2 s, 4 s, …;
a success clears it. Kept in memory per process, an attacker could spread guesses over the
nodes behind the load balancer; here a failure is one atomic upsert, so concurrent
failures on several nodes all count.

The caller passes ``now`` (unix seconds), as with the in-memory throttle.
"""

from __future__ import annotations

import contextlib
from typing import Any

from ...throttle import LOCK_AFTER_FAILURES, lock_seconds, refusal
from .stall import STALL_TIMEOUT, acquired

__all__ = ["PostgresLoginThrottle"]

#: Forget usernames whose last failure is this old and that are not locked, seconds.
FORGET_AFTER = 86400.0


class PostgresLoginThrottle:
    """Consecutive login failures per username in the ``login_failures`` table."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool

    def _conn(self) -> contextlib.AbstractAsyncContextManager[Any]:
        """A pooled connection, closed if Postgres leaves it unanswered (stall.py)."""
        return acquired(self.pool, "the login throttle", STALL_TIMEOUT)

    async def check(self, username: str, now: float) -> None:
        """Raise TooManyAttempts while the username is locked (on any node)."""
        async with self._conn() as conn:
            until = await conn.fetchval(
                "SELECT locked_until FROM login_failures WHERE username = $1", username
            )
        if until is not None and until > now:
            raise refusal(until - now)

    async def failure(self, username: str, now: float) -> int:
        """Count a failure; returns the consecutive failures so far."""
        async with self._conn() as conn, conn.transaction():
            failures = int(await conn.fetchval(
                "INSERT INTO login_failures AS f VALUES ($1, 1, 0, $2) "
                "ON CONFLICT (username) DO UPDATE SET failures = f.failures + 1, "
                "last_failure = excluded.last_failure RETURNING failures",
                username, now,
            ))
            if failures >= LOCK_AFTER_FAILURES:
                await conn.execute(
                    "UPDATE login_failures SET locked_until = $2 WHERE username = $1",
                    username, now + lock_seconds(failures),
                )
        return failures

    async def success(self, username: str) -> None:
        """A successful login clears the username's failures."""
        async with self._conn() as conn:
            await conn.execute("DELETE FROM login_failures WHERE username = $1", username)

    async def forget_old(self, now: float) -> int:
        """Drop unlocked entries whose last failure is older than FORGET_AFTER."""
        async with self._conn() as conn:
            status = await conn.execute(
                "DELETE FROM login_failures WHERE locked_until <= $1 AND last_failure < $2",
                now, now - FORGET_AFTER,
            )
        return int(status.rsplit(" ", 1)[1])
