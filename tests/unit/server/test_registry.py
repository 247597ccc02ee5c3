"""The sweeper's deadline wheel and the connections-by-account index (registry.py)."""

from __future__ import annotations

import pytest

from sync.server.registry import AccountKey, DeadlineWheel, PeerRegistry


class _Peer:
    """A connection as the wheel sees it: deadlines it reports, and when it was checked."""

    def __init__(self, deadline: float | None, key: AccountKey | None = None) -> None:
        self.due_tick: int | None = None
        self.deadline = deadline
        self.account_key = key
        self.checked: list[float] = []

    def sweep(self, now: float) -> float | None:
        """Record the check; past its deadline the connection closes (None)."""
        self.checked.append(now)
        if self.deadline is not None and now >= self.deadline:
            return None
        return self.deadline


def _sweep_until(wheel: DeadlineWheel, start: float, end: float) -> None:
    now = start
    while now <= end:
        wheel.run_due(now)
        now = round(now + wheel.tick, 6)


def test_a_connection_is_checked_around_its_deadline_and_at_most_a_sweep_late() -> None:
    """Checked when admitted, then only in the sweeps around the deadline it reported."""
    wheel = DeadlineWheel(0.5, now=100.0)
    peer = _Peer(deadline=103.2)
    wheel.schedule(peer, 100.0)
    _sweep_until(wheel, 100.5, 110.0)  # 20 sweeps
    assert peer.checked == [100.5, 103.0, 103.5]  # 103.0: not due yet; 103.5: closed


def test_a_moved_deadline_is_found_when_the_old_one_comes_due() -> None:
    """Activity never touches the wheel: the old deadline's check reschedules to the new one."""
    wheel = DeadlineWheel(0.5, now=0.0)
    peer = _Peer(deadline=2.0)
    wheel.schedule(peer, 2.0)
    wheel.run_due(1.5)
    assert peer.checked == []
    peer.deadline = 5.0  # the connection was active: its idle deadline moved on
    wheel.run_due(2.0)
    assert peer.checked == [2.0] and peer.due_tick == 10
    peer.deadline = None  # closed at its next check: taken off the wheel
    wheel.run_due(5.0)
    assert peer.checked == [2.0, 5.0] and peer.due_tick is None and len(wheel) == 0


def test_an_earlier_deadline_replaces_a_later_one_and_discard_removes() -> None:
    """schedule() keeps the sooner of two times; discard() stops all checks."""
    wheel = DeadlineWheel(1.0, now=0.0)
    peer = _Peer(deadline=None)
    wheel.schedule(peer, 30.0)
    wheel.schedule(peer, 3.0)
    wheel.schedule(peer, 20.0)
    assert peer.due_tick == 3 and len(wheel) == 1
    other = _Peer(deadline=None)
    wheel.schedule(other, 3.0)
    wheel.discard(other)
    assert wheel.run_due(10.0) == 1 and peer.checked == [10.0] and other.checked == []


def test_a_deadline_in_the_past_is_checked_at_the_next_sweep() -> None:
    """A time before the last sweep goes to the next tick, never into a bucket already gone."""
    wheel = DeadlineWheel(0.5, now=0.0)
    wheel.run_due(10.0)
    peer = _Peer(deadline=None)
    wheel.schedule(peer, 1.0)
    assert wheel.run_due(10.0) == 0
    assert wheel.run_due(10.5) == 1


def test_the_wheel_refuses_a_tick_that_is_not_positive() -> None:
    """A zero tick is a configuration error, said plainly."""
    with pytest.raises(ValueError, match="positive"):
        DeadlineWheel(0.0, now=0.0)


def test_registry_keeps_connections_by_account_and_token_version() -> None:
    """The revocation index follows authentication, token changes and closing."""
    wheel = DeadlineWheel(0.5, now=0.0)
    connections: set[object] = set()
    registry = PeerRegistry(connections, wheel)  # type: ignore[arg-type]
    a, b = _Peer(None), _Peer(None)
    registry.add(a, 0.0)
    registry.add(b, 0.0)
    assert registry.by_account == {} and connections == {a, b}
    a.account_key = ("alex", 1)
    registry.authenticated(a, None)
    b.account_key = ("alex", 1)
    registry.authenticated(b, None)
    assert registry.by_account == {("alex", 1): {a, b}}
    assert registry.usernames() == ["alex"]
    b.account_key = ("alex", 2)
    registry.authenticated(b, ("alex", 1))
    assert registry.by_account == {("alex", 1): {a}, ("alex", 2): {b}}
    registry.discard(a)
    registry.discard(b)
    assert registry.by_account == {} and connections == set() and len(wheel) == 0


class _Failing(_Peer):
    """A connection whose check raises (a bug somewhere in it)."""

    def sweep(self, now: float) -> float | None:
        self.checked.append(now)
        raise RuntimeError("boom")


def test_a_check_that_raises_drops_no_connection_from_the_wheel() -> None:
    """The others due with it are still checked, and it is checked again next tick."""
    wheel = DeadlineWheel(0.5, now=0.0)
    failing, other = _Failing(deadline=10.0), _Peer(deadline=10.0)
    for peer in (failing, other):
        wheel.schedule(peer, 1.0)
    assert wheel.run_due(1.0) == 2
    assert failing.checked == [1.0] and other.checked == [1.0]
    assert failing.due_tick is not None and len(wheel) == 2
    wheel.run_due(1.5)
    assert failing.checked == [1.0, 1.5]
