"""The server's background loops keep going: a failing sweep or probe is logged, not fatal."""

from __future__ import annotations

import asyncio
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
    first, second, third = seen_before_probe[:3]
    assert first is None and third is None
    assert second is not None and "probe failed" in second
