"""Login throttling for the reference server: consecutive failures per username, in memory.

After ``LOCK_AFTER_FAILURES`` consecutive failed logins a username is locked for 1 s, then
2 s, 4 s, … for each further failure, capped at ``MAX_LOCK_SECONDS``; a successful login
clears the count. The state lives in memory, per process: a restart forgets it, and each
server process throttles on its own.

The throttle does not read a clock: the caller passes ``now`` (unix seconds) so that one
clock decides every time rule of :class:`sync.server.auth.AuthService`. Call ``check()``
before verifying a password, then ``failure()`` or ``success()`` with its outcome.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import TooManyAttempts

if TYPE_CHECKING:
    from .storage.base import AccountsDatabase

__all__ = [
    "LOCK_AFTER_FAILURES", "MAX_LOCK_SECONDS", "LoginThrottle", "SharedLoginThrottle",
    "lock_seconds", "refusal",
]

log = logging.getLogger(__name__)

#: Consecutive failed logins after which a username is locked.
LOCK_AFTER_FAILURES = 5
#: The longest lock, in seconds (the lock doubles from 1 s up to this).
MAX_LOCK_SECONDS = 300.0
#: Usernames the throttle remembers before it forgets the ones that are not locked.
_MAX_ENTRIES = 100_000


def lock_seconds(failures: int) -> float:
    """How long ``failures`` consecutive failures lock a username (0: not locked). The one
    rule every throttle (this one, the Postgres one shared by nodes) applies."""
    if failures < LOCK_AFTER_FAILURES:
        return 0.0
    return min(2.0 ** min(failures - LOCK_AFTER_FAILURES, 16), MAX_LOCK_SECONDS)


def refusal(wait: float) -> TooManyAttempts:
    """The error for a login refused while locked for ``wait`` more seconds."""
    return TooManyAttempts(
        f"too many failed logins; try again in {wait:.0f} s"
        if wait >= 1 else "too many failed logins; try again in a moment",
        retry_after=wait,
    )


@dataclass(slots=True)
class _Failures:
    count: int = 0
    locked_until: float = 0.0


class LoginThrottle:
    """Consecutive login failures per username, and the lock they earn (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, _Failures] = {}

    def check(self, username: str, now: float) -> None:
        """Raise TooManyAttempts while the username is locked."""
        with self._lock:
            entry = self._entries.get(username)
            if entry is not None and entry.locked_until > now:
                raise refusal(entry.locked_until - now)

    def failure(self, username: str, now: float) -> None:
        """Count a failure; from the LOCK_AFTER_FAILURES-th on, lock for 1, 2, 4 … s."""
        with self._lock:
            entry = self._entries.setdefault(username, _Failures())
            entry.count += 1
            if entry.count >= LOCK_AFTER_FAILURES:
                entry.locked_until = now + lock_seconds(entry.count)
                log.warning("login for %r locked after %d failures", username, entry.count)
            if len(self._entries) > _MAX_ENTRIES:
                self._forget_unlocked(now)

    def success(self, username: str) -> None:
        """A successful login clears the username's failures."""
        with self._lock:
            self._entries.pop(username, None)

    def _forget_unlocked(self, now: float) -> None:
        self._entries = {k: v for k, v in self._entries.items() if v.locked_until > now}


class SharedLoginThrottle:
    """The same rule on the ``login_failures`` table, shared by every node of a cluster
    (Postgres): a failure is one upsert, so guesses spread over nodes all count.

    ``db`` is an accounts database (``storage.base.AccountsDatabase``) whose engine has
    that table; thread-safe through it.
    """

    def __init__(self, db: AccountsDatabase) -> None:
        self._db = db

    def check(self, username: str, now: float) -> None:
        """Raise TooManyAttempts while the username is locked (on any node)."""
        with self._db.reading() as conn:
            row = conn.execute(
                "SELECT locked_until FROM login_failures WHERE username = ?", (username,)
            ).fetchone()
        if row is not None and row[0] > now:
            raise refusal(row[0] - now)

    def failure(self, username: str, now: float) -> None:
        """Count a failure; from the LOCK_AFTER_FAILURES-th on, lock for 1, 2, 4 … s."""
        with self._db.transaction() as conn:
            row = conn.execute(
                "INSERT INTO login_failures AS f VALUES (?, 1, 0, ?) "
                "ON CONFLICT (username) DO UPDATE SET failures = f.failures + 1, "
                "last_failure = excluded.last_failure RETURNING failures",
                (username, now),
            ).fetchone()
            failures = int(row[0])
            if failures >= LOCK_AFTER_FAILURES:
                conn.execute(
                    "UPDATE login_failures SET locked_until = ? WHERE username = ?",
                    (now + lock_seconds(failures), username),
                )
                log.warning("login for %r locked after %d failures", username, failures)

    def success(self, username: str) -> None:
        """A successful login clears the username's failures."""
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM login_failures WHERE username = ?", (username,))
