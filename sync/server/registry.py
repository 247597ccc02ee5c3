"""The open WebSocket connections of a node, indexed for the sweeper (one task for all).

Idle connections must cost no CPU. Checking every connection's deadlines (auth deadline,
idle timeout, /yjs's query-awareness nudge, token expiry) on every sweep, and grouping all
of them by account for every revocation check, cost ~3 % of a core with 10,000 idle
connections (py-spy, bench/yjs_compare.py --scenarios idle). Instead:

- :class:`DeadlineWheel` (a hashed timer wheel with the sweep interval as its tick): each
  time a connection is checked it says when it needs checking next (``sweep()`` returns
  that time) and waits in that tick's bucket; a sweep visits only the buckets that are due.
  Activity (a frame arriving) never touches the wheel: the connection is checked once at
  its old deadline, finds it moved, and goes to a later bucket. Deadlines are kept as
  before: never enforced early (``sweep()`` compares with the clock), at most one sweep
  late (a connection is taken in the sweep of its deadline's tick, and if that sweep came
  a little before the deadline, again in the next).
- :class:`PeerRegistry` keeps the connections by account and token version as they
  authenticate, so the revocation check reads the accounts it needs and visits only the
  connections whose account changed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from typing import Protocol

__all__ = ["AccountKey", "DeadlineWheel", "PeerRegistry", "Sweepable"]

log = logging.getLogger(__name__)

#: An account as a token saw it: (username, token version).
AccountKey = tuple[str, int]


class Sweepable(Protocol):
    """What the wheel needs of a connection (``WebSocketPeer``)."""

    #: The tick whose bucket holds this connection, or None (not scheduled).
    due_tick: int | None

    @property
    def account_key(self) -> AccountKey | None:
        """(username, token version) of the verified token, or None before."""
        ...

    def sweep(self, now: float) -> float | None:
        """Enforce what is due at ``now``; the next time to check, or None (never again)."""
        ...


class DeadlineWheel:
    """Buckets of connections by the sweep tick at which they need checking next.

    Not thread-safe: the event loop's thread only. Times are ``time.monotonic()`` seconds.
    """

    __slots__ = ("_buckets", "_cursor", "tick")

    def __init__(self, tick: float, now: float) -> None:
        if tick <= 0:
            raise ValueError(f"the wheel's tick must be positive, not {tick!r}")
        self.tick = tick
        self._buckets: dict[int, set[Sweepable]] = {}
        #: The last tick whose bucket was emptied: nothing is ever placed at or before it.
        self._cursor = math.floor(now / tick)

    def __len__(self) -> int:
        return sum(len(bucket) for bucket in self._buckets.values())

    def schedule(self, peer: Sweepable, when: float) -> None:
        """Check ``peer`` in the sweep of ``when``'s tick (or the next sweep, if that tick
        is past), unless it is due sooner already."""
        tick = max(math.floor(when / self.tick), self._cursor + 1)
        current = peer.due_tick
        if current is not None:
            if current <= tick:
                return
            self._remove(peer, current)
        peer.due_tick = tick
        bucket = self._buckets.get(tick)
        if bucket is None:
            self._buckets[tick] = {peer}
        else:
            bucket.add(peer)

    def discard(self, peer: Sweepable) -> None:
        """Stop checking ``peer`` (it closed)."""
        if peer.due_tick is not None:
            self._remove(peer, peer.due_tick)
            peer.due_tick = None

    def _remove(self, peer: Sweepable, tick: int) -> None:
        bucket = self._buckets.get(tick)
        if bucket is not None:
            bucket.discard(peer)
            if not bucket:
                del self._buckets[tick]

    def pop_due(self, now: float) -> Iterator[Sweepable]:
        """The connections due at ``now``, each taken off the wheel before it is yielded
        (reschedule it with :meth:`schedule`)."""
        last = math.floor(now / self.tick)
        while self._cursor < last:
            self._cursor += 1
            bucket = self._buckets.pop(self._cursor, None)
            if bucket is None:
                continue
            for peer in bucket:
                peer.due_tick = None
            yield from bucket

    def run_due(self, now: float) -> int:
        """Sweep what is due and schedule each connection's next check; how many were
        checked."""
        checked = 0
        for peer in self.pop_due(now):
            checked += 1
            try:
                when = peer.sweep(now)
            except Exception:  # logged; checked again at the next tick, never dropped
                log.exception("checking a connection's deadlines failed")
                when = now + self.tick
            if when is not None:
                self.schedule(peer, when)
        return checked


class PeerRegistry:
    """Open connections: the set (``connections``), by account, and on the wheel."""

    __slots__ = ("by_account", "connections", "wheel")

    def __init__(self, connections: set[Sweepable], wheel: DeadlineWheel) -> None:
        self.connections = connections
        self.wheel = wheel
        #: Authenticated connections by (username, token version): the revocation index.
        self.by_account: dict[AccountKey, set[Sweepable]] = {}

    def add(self, peer: Sweepable, now: float) -> None:
        """A connection is admitted: its first check is due at once (next sweep)."""
        self.connections.add(peer)
        self.wheel.schedule(peer, now)

    def discard(self, peer: Sweepable) -> None:
        """The connection is gone."""
        self.connections.discard(peer)
        self.wheel.discard(peer)
        self._unindex(peer, peer.account_key)

    def authenticated(self, peer: Sweepable, old_key: AccountKey | None) -> None:
        """``peer``'s token changed: it was ``old_key``'s, it is now ``peer.account_key``'s."""
        key = peer.account_key
        if old_key != key:
            self._unindex(peer, old_key)
        if key is not None and peer in self.connections:
            self.by_account.setdefault(key, set()).add(peer)

    def usernames(self) -> list[str]:
        """The accounts with an authenticated connection here."""
        return list({username for username, _ in self.by_account})

    def _unindex(self, peer: Sweepable, key: AccountKey | None) -> None:
        peers = self.by_account.get(key) if key is not None else None
        if peers is not None:
            peers.discard(peer)
            if not peers:
                del self.by_account[key]  # type: ignore[arg-type]
