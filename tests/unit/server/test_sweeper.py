"""The server's background loops keep going: a failing sweep or probe is logged, not fatal."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import SimpleNamespace
from typing import Any

import pytest

from sync.server import app as server_app


async def test_a_failing_sweep_is_logged_and_the_next_one_runs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """A sweep that raises is logged with its traceback; deadlines keep being enforced."""
    calls: list[int] = []
    second = asyncio.Event()

    async def sweep_once(*_args: Any) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom in a sweep")
        second.set()

    monkeypatch.setattr(server_app, "SWEEP_INTERVAL", 0.001)
    monkeypatch.setattr(server_app, "_sweep_once", sweep_once)
    task = asyncio.create_task(server_app._sweep(None, set(), None))  # type: ignore[arg-type]
    try:
        with caplog.at_level(logging.ERROR, logger=server_app.log.name):
            await asyncio.wait_for(second.wait(), 5)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert "a sweep failed" in caplog.text and "boom in a sweep" in caplog.text


async def test_a_probe_that_raises_marks_the_node_not_ready_and_keeps_probing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An unexpected error in the database probe reads as "not ready", and the next probe
    that succeeds makes the node ready again."""
    admission = SimpleNamespace(database_down=None)
    seen_before_probe: list[str | None] = []
    three_probes = asyncio.Event()

    async def check() -> str | None:
        seen_before_probe.append(admission.database_down)
        if len(seen_before_probe) == 3:
            three_probes.set()
        if len(seen_before_probe) == 1:
            raise RuntimeError("driver bug")
        return None

    hub = SimpleNamespace(engine=SimpleNamespace(check=check))
    monkeypatch.setattr(server_app, "HEALTH_INTERVAL", 0.001)
    task = asyncio.create_task(server_app._probe_database(hub, admission))  # type: ignore[arg-type]
    try:
        await asyncio.wait_for(three_probes.wait(), 5)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    first, second, third = seen_before_probe[:3]
    assert first is None and third is None
    assert second is not None and "probe failed" in second


class _Connection:
    """A connection as the revocation check sees it: its account, and a close reason."""

    def __init__(self, key: tuple[str, int]) -> None:
        self.account_key = key
        self.due_tick: int | None = None
        self.revoked: list[str] = []

    def sweep(self, now: float) -> float | None:
        return now + 60

    def revoke(self, reason: str) -> None:
        self.revoked.append(reason)


async def test_a_connection_that_authenticates_during_the_account_read_is_left_open() -> None:
    """The revocation check reads the accounts it knew of in a thread; an account that
    authenticates meanwhile was not read, and is not mistaken for a deleted one (it was
    checked when it authenticated). A disabled account's connection is still closed."""
    from sync.server.accounts import User
    from sync.server.registry import DeadlineWheel, PeerRegistry

    registry = PeerRegistry(set(), DeadlineWheel(0.5, now=0.0))
    olivia, dave = _Connection(("olivia", 1)), _Connection(("dave", 1))
    mallory = _Connection(("mallory", 1))
    for connection in (olivia, dave):
        registry.add(connection, 0.0)
        registry.authenticated(connection, None)
    asked: list[list[str]] = []

    def get_users(usernames: list[str]) -> dict[str, User]:
        asked.append(sorted(usernames))
        registry.add(mallory, 0.0)  # meanwhile, on the event loop
        registry.authenticated(mallory, None)
        return {"olivia": _user("olivia", disabled=False), "dave": _user("dave", disabled=True)}

    hub = SimpleNamespace(auth=SimpleNamespace(get_users=get_users))
    await server_app._check_revocations(hub, registry)  # type: ignore[arg-type]
    assert asked == [["dave", "olivia"]]
    assert mallory.revoked == [] and olivia.revoked == []
    assert dave.revoked == ["your account was disabled"]


def _user(username: str, *, disabled: bool) -> Any:
    from sync.server.accounts import Role, User

    return User(
        id=1, username=username, role=Role.REP, customer_id=None, disabled=disabled,
        token_version=1,
    )


async def test_a_revocation_check_that_waits_on_the_database_holds_no_sweep_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The check runs as its own task: sweeps go on while it waits (deadlines enforced),
    and no second check starts until it ends."""
    from sync.server.registry import DeadlineWheel, PeerRegistry

    started: list[int] = []
    began, release = asyncio.Event(), asyncio.Event()

    async def check(_hub: object, _registry: object) -> None:
        started.append(1)
        began.set()
        await release.wait()  # an accounts read on a link that went silent

    async def purge() -> int:
        return 0

    monkeypatch.setattr(server_app, "_check_revocations", check)
    monkeypatch.setattr(server_app, "REVOCATION_INTERVAL", 0.0)
    registry = PeerRegistry(set(), DeadlineWheel(0.5, now=0.0))
    admission = SimpleNamespace(registry=registry, refused=0, database_down=None)
    hub = SimpleNamespace(expire_sessions=lambda _now: None, cluster=None,
                          rooms=SimpleNamespace(idle=lambda _now, _after: False),
                          config=SimpleNamespace(room_idle_timeout=60.0),
                          engine=SimpleNamespace(purge_notifications=purge))
    state = server_app._SweepState()
    for _ in range(3):
        await asyncio.wait_for(
            server_app._sweep_once(hub, set(), admission, state), 5)  # type: ignore[arg-type]
    await asyncio.wait_for(began.wait(), 5)
    assert started == [1]
    release.set()
    assert state.revoking is not None
    await asyncio.wait_for(state.revoking, 5)
    await server_app._sweep_once(hub, set(), admission, state)  # type: ignore[arg-type]
    assert state.revoking is not None
    await asyncio.wait_for(state.revoking, 5)
    assert started == [1, 1]
