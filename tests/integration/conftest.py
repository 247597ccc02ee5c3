"""Fixtures that run the real reference server on 127.0.0.1 with a temp SQLite file.

The server runs as a real subprocess (``python -m liveedit server serve --port 0``); the
bound port is read from its ``listening on`` line, never guessed. ``LIVEEDIT_TIMEOUT_SCALE``
multiplies every wait on a slow machine.

A test decorated with :data:`both_engines` runs twice: on SQLite, and on a fresh database
of a throwaway Postgres cluster (tests/cluster/pg.py, one per test process), the server
started with ``--db postgresql://…``. Such a test must not open the SQLite file itself.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

TIMEOUT_SCALE = float(os.environ.get("LIVEEDIT_TIMEOUT_SCALE", "1"))
DEFAULT_PASSWORD = "correct horse battery"
_LISTENING = re.compile(r"listening on (https?)://([\d.]+):(\d+)")


def scaled(seconds: float) -> float:
    """A timeout scaled for this machine."""
    return seconds * TIMEOUT_SCALE


def both_engines(test: Any) -> Any:
    """Run a server test twice: on SQLite and on Postgres (the ``db_engine`` fixture)."""
    test = pytest.mark.parametrize("db_engine", ["sqlite", "postgres"], indirect=True)(test)
    return pytest.mark.usefixtures("db_engine")(test)


class LocalEndpoint:
    """A process tests reach on 127.0.0.1:``port`` (a server, or a load balancer before
    servers)."""

    port: int

    @property
    def http_url(self) -> str:
        """Base URL of the HTTP API."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        """URL of the WebSocket endpoint."""
        return f"ws://127.0.0.1:{self.port}/ws"


@dataclass
class ServerHandle(LocalEndpoint):
    """A running reference server process and what tests need to talk to it."""

    #: A SQLite file, or a ``postgresql://`` URL (text).
    db_path: Path | str
    extra_args: list[str] = field(default_factory=list)
    #: The module run with ``python -m`` (a test may run the CLI inside a changed table).
    module: str = "liveedit"
    port: int = 0
    process: subprocess.Popen[str] | None = None
    output: list[str] = field(default_factory=list)

    def start(self) -> None:
        """Start the server (on the previous port after a stop) and wait until it listens."""
        cmd = [
            sys.executable, "-m", self.module, "server", "serve", "--db", str(self.db_path),
            "--host", "127.0.0.1", "--port", str(self.port), *self.extra_args,
        ]
        self.process = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
        )
        ready = threading.Event()

        def pump(proc: subprocess.Popen[str]) -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                self.output.append(line.rstrip())
                match = _LISTENING.search(line)
                if match and not ready.is_set():
                    self.port = int(match.group(3))
                    ready.set()

        threading.Thread(target=pump, args=(self.process,), daemon=True).start()
        if not ready.wait(scaled(20)):
            self.kill()
            raise RuntimeError("server did not start:\n" + "\n".join(self.output[-40:]))

    def stop(self) -> int:
        """SIGTERM the server and wait for a clean exit; returns its exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(scaled(15))

    def kill(self) -> None:
        """SIGKILL the server (a crash), and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(scaled(15))

    def restart(self) -> None:
        """Start again on the same port and database."""
        self.start()

    def add_user(
        self, username: str, password: str = DEFAULT_PASSWORD, role: str = "rep",
        customer_id: str | None = None,
    ) -> None:
        """Create an account directly in the server's real database."""
        from sync.server.auth import AuthService, Role

        with AuthService(self.db_path) as auth:
            auth.add_user(username, password, Role(role), customer_id)

    def login(self, username: str, password: str = DEFAULT_PASSWORD) -> dict[str, Any]:
        """POST /auth/login and return the token JSON."""
        response = httpx.post(
            f"{self.http_url}/auth/login", json={"username": username, "password": password},
            timeout=scaled(10),
        )
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    def token(self, username: str, password: str = DEFAULT_PASSWORD) -> str:
        """A fresh access token for the user."""
        return str(self.login(username, password)["access_token"])


class StartedServers:
    """The servers a fixture started for one test; :meth:`kill_all` ends them."""

    def __init__(self) -> None:
        self.handles: list[ServerHandle] = []

    def start(self, db_path: Path | str, extra_args: Sequence[str] = (),
              module: str = "liveedit") -> ServerHandle:
        """Start a server on ``db_path`` and wait until it listens."""
        handle = ServerHandle(db_path, list(extra_args), module)
        handle.start()
        self.handles.append(handle)
        return handle

    def kill_all(self) -> None:
        """SIGKILL every server started here (a test's clean-up)."""
        for handle in self.handles:
            handle.kill()


@pytest.fixture
def db_engine(request: pytest.FixtureRequest) -> str:
    """The storage engine servers of this test run on: "sqlite" unless parametrized
    (:data:`both_engines`)."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def server_factory(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """Start servers with extra CLI arguments; all are killed at the end of the test.

    On Postgres (a test marked :data:`both_engines`), each ``db_name`` is one fresh
    database (servers given the same name share it), dropped at the end. Conftests that
    import only this fixture get SQLite."""
    servers = StartedServers()
    databases: dict[str, str] = {}
    engine = (request.getfixturevalue("db_engine") if "db_engine" in request.fixturenames
              else "sqlite")
    cluster = _postgres() if engine == "postgres" else None

    def make(*extra_args: str, db_name: str = "server.db",
             module: str = "liveedit") -> ServerHandle:
        location: Path | str = tmp_path / db_name
        if cluster is not None:
            if db_name not in databases:
                databases[db_name] = cluster.create_database()
            location = cluster.dsn(databases[db_name])
        return servers.start(location, extra_args, module)

    yield make
    servers.kill_all()
    if cluster is not None and cluster.process is not None and cluster.process.poll() is None:
        for name in databases.values():
            cluster.drop_database(name)


def _postgres() -> Any:
    """This process's test Postgres cluster (skipped, or failed under CI, if missing)."""
    from tests.cluster.pg import PostgresUnavailable, shared_cluster

    try:
        return shared_cluster()
    except PostgresUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc}; .ci/run should have installed it")
        pytest.skip(str(exc))


@pytest.fixture
def server(server_factory: Any) -> ServerHandle:
    """A running reference server with a fresh database."""
    return server_factory()  # type: ignore[no-any-return]


@pytest.fixture(autouse=True)
def _memory_keyring() -> Iterator[Any]:
    """Every integration test keeps secrets in memory, never in the user's keyring."""
    from tests.memory_keyring import memory_keyring

    with memory_keyring() as backend:
        yield backend
