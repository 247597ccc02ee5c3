"""Hypothesis state machine: three client cores make random edits, disconnect, reconnect
and restart against the real server; afterwards all converge and no edit is lost."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)

from app.core import ClientCore

from .conftest import DEFAULT_PASSWORD, ServerHandle, scaled

NAMES = ("alex", "sam", "kim")
FIELDS = ("city", "state", "street1")
WORDS = st.sampled_from(["alpha", "bravo", "delta", "echo", "kilo", "lima"])


class ThreeClients(RuleBasedStateMachine):
    """The model: which values each field was ever given, which note words were typed."""

    server: ServerHandle

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.folder = Path(tempfile.mkdtemp(prefix="liveedit-sm-"))
        self.cores: list[ClientCore] = []
        self.online: list[bool] = []
        self.written: dict[str, set[str | None]] = {f: {None} for f in FIELDS}
        self.words: list[str] = []
        self.customer = ""

    def run(self, coro: Any) -> Any:
        """Run a coroutine on this machine's loop."""
        return self.loop.run_until_complete(coro)

    async def _open(self, index: int) -> ClientCore:
        core = ClientCore.open(self.folder / NAMES[index])
        await core.login(self.server.http_url, NAMES[index], DEFAULT_PASSWORD)
        return core

    @initialize()
    def start(self) -> None:
        """Three signed-in clients; the first creates the shared customer."""
        for index in range(3):
            self.cores.append(self.run(self._open(index)))
            self.online.append(False)
        self.customer = self.run(self.cores[0].create_customer({"name": "Shared"}))
        self.run(self.cores[0].sync(scaled(20)))
        for core in self.cores[1:]:
            self.run(core.sync(scaled(20)))
            self.run(core.open_customer(self.customer))
            self.run(core.sync(scaled(20)))
        self.online = [True, True, True]

    @rule(who=st.integers(0, 2), field=st.sampled_from(FIELDS), value=WORDS)
    def set_field(self, who: int, field: str, value: str) -> None:
        """A rep sets a field (online or offline)."""
        self.run(self.cores[who].set_fields(self.customer, {field: value}))
        self.written[field].add(value)

    @rule(who=st.integers(0, 2), word=WORDS)
    def type_note(self, who: int, word: str) -> None:
        """A rep appends a word to the notes."""
        self.run(self.cores[who].notes_append(self.customer, f" {word}"))
        self.words.append(word)

    @precondition(lambda self: any(self.online))
    @rule(who=st.integers(0, 2))
    def go_offline(self, who: int) -> None:
        """A rep's connection drops."""
        self.run(self.cores[who].disconnect())
        self.online[who] = False

    @rule(who=st.integers(0, 2))
    def go_online(self, who: int) -> None:
        """A rep reconnects (and syncs in the background)."""
        self.run(self.cores[who].connect())
        self.online[who] = True

    @rule(who=st.integers(0, 2))
    def restart(self, who: int) -> None:
        """A rep's app is closed and opened again from its data folder."""
        self.run(self.cores[who].close())
        self.cores[who] = self.run(self._open(who))
        self.online[who] = False

    def teardown(self) -> None:
        """Heal: everyone syncs; then every replica and the server hold the same document,
        every value is one that was written, every typed word is in the notes, every outbox
        is empty."""
        try:
            if self.cores:
                self.check_convergence()
        finally:
            for core in self.cores:
                self.run(core.close())
            self.loop.close()
            shutil.rmtree(self.folder, ignore_errors=True)

    def check_convergence(self) -> None:
        """The assertions of teardown()."""
        for _ in range(2):
            for core in self.cores:
                self.run(core.sync(scaled(30)))
        views = [core.customer(self.customer) for core in self.cores]
        assert views[0] == views[1] == views[2]
        for field in FIELDS:
            assert views[0].fields[field] in self.written[field]
        notes = views[0].notes
        assert sorted(notes.split()) == sorted(self.words)
        assert all(core.outbox() == [] for core in self.cores)
        token = self.server.token("alex")
        remote = httpx.get(f"{self.server.http_url}/customers/{self.customer}",
                           headers={"Authorization": f"Bearer {token}"}).json()
        assert {f: remote["address"].get(f, remote.get(f)) for f in FIELDS} == {
            f: views[0].fields[f] for f in FIELDS}


@pytest.mark.timeout(600)
def test_three_clients_converge_under_random_edits_and_restarts(server: ServerHandle) -> None:
    """Random edits, disconnects and restarts on three clients converge with nothing lost."""
    for name in NAMES:
        server.add_user(name)
    ThreeClients.server = server
    run_state_machine_as_test(
        ThreeClients,
        settings=settings(max_examples=int(os.environ.get("LIVEEDIT_SM_EXAMPLES", "4")),
                          stateful_step_count=12, deadline=None,
                          suppress_health_check=list(HealthCheck)),
    )
