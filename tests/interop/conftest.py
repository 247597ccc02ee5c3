"""Fixtures for the interop tests: the real ``y-websocket`` + ``yjs`` npm packages under Node.

The Node packages are pinned in ``package.json`` / ``package-lock.json`` beside this file
(integrity hashes, no registry address) and installed into ``node_modules/`` here by a
session fixture with ``npm ci`` when missing or when the lockfile changed (a hash of it is
kept in ``node_modules/``). ``yclient.mjs`` is the Node side: the stock WebsocketProvider
driven by JSON lines on stdin, reporting JSON-line events on stdout; :class:`YClient` wraps
one such process and waits for events with a timeout (never a sleep).

The server is the real one on 127.0.0.1 (``tests/integration/conftest.py``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import (
    DEFAULT_PASSWORD,
    ServerHandle,
    _memory_keyring,
    scaled,
    server,
    server_factory,
)
from tests.npm_ci import npm_ci

__all__ = [
    "DEFAULT_PASSWORD",
    "Event",
    "ServerHandle",
    "YClient",
    "_memory_keyring",
    "create_customer",
    "node_modules",
    "server",
    "server_factory",
    "yclient",
]

HERE = Path(__file__).resolve().parent
NODE_MODULES = HERE / "node_modules"
LOCKFILE = HERE / "package-lock.json"
STAMP = NODE_MODULES / ".liveedit-lock-sha256"
DRIVER = HERE / "yclient.mjs"
NPM_CI = ["ci", "--omit-lockfile-registry-resolved", "--no-audit", "--no-fund",
          "--ignore-scripts"]

Event = dict[str, Any]


def _lock_digest() -> str:
    digest = hashlib.sha256(LOCKFILE.read_bytes())
    digest.update((HERE / "package.json").read_bytes())
    return digest.hexdigest()


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"tests/interop need '{name}' on PATH (Node.js 18+ with npm): the real "
                    f"y-websocket and yjs packages run under Node; install Node.js and npm",
                    pytrace=False)
    return path


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """tests/interop/node_modules installed from the lockfile (``npm ci``) if not current."""
    node, npm = _tool("node"), _tool("npm")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True,
                             timeout=30).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < 18:
        pytest.fail(f"tests/interop need Node.js 18 or newer; this is {version}", pytrace=False)
    npm_ci(HERE, npm, NPM_CI, _lock_digest(), STAMP)
    return NODE_MODULES


class YClient:
    """One ``node yclient.mjs`` process: a stock y-websocket provider on one document."""

    def __init__(self, name: str, node: str, url: str, room: str, token: str | None) -> None:
        self.name = name
        self.url, self.room, self.token = url, room, token
        self.events: list[Event] = []
        self.stderr: list[str] = []
        self._changed = threading.Condition()
        self.process = subprocess.Popen(
            [node, str(DRIVER)], cwd=HERE, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, bufsize=1,
        )
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        self._next_id = 0
        self.client_id = int(self.wait_for(lambda e: e["event"] == "ready", "ready")["clientID"])

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                event = {"event": "garbage", "line": line.rstrip()}
            with self._changed:
                self.events.append(event)
                self._changed.notify_all()
        with self._changed:
            self.events.append({"event": "exited"})
            self._changed.notify_all()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr.append(line.rstrip())

    # -- waiting ---------------------------------------------------------------------------

    def mark(self) -> int:
        """The position in the event log now: pass it as ``after`` to wait for what follows."""
        with self._changed:
            return len(self.events)

    def wait_for(self, predicate: Callable[[Event], bool], what: str, *, after: int = 0,
                 timeout: float = 10) -> Event:
        """The first event from position ``after`` on that satisfies ``predicate``."""
        deadline = time.monotonic() + scaled(timeout)
        seen = after
        with self._changed:
            while True:
                for index in range(seen, len(self.events)):
                    event = self.events[index]
                    if predicate(event):
                        return event
                    if event["event"] == "error":
                        raise AssertionError(f"{self.name}: driver error while waiting for "
                                             f"{what}: {event['message']}\n{self.log_tail()}")
                seen = len(self.events)
                left = deadline - time.monotonic()
                if left <= 0 or (self.events and self.events[-1]["event"] == "exited"):
                    raise AssertionError(f"{self.name}: no {what} within {scaled(timeout)} s"
                                         f"\n{self.log_tail()}")
                self._changed.wait(left)

    def log_tail(self, count: int = 40) -> str:
        """The last events and stderr lines, for assertion messages."""
        with self._changed:
            tail = [json.dumps(e) for e in self.events[-count:]]
        return "\n".join(["events:", *tail, "stderr:", *self.stderr[-10:]])

    def since(self, mark: int, event: str | None = None) -> list[Event]:
        """Events from position ``mark`` on (of one kind, if given)."""
        with self._changed:
            return [e for e in self.events[mark:] if event is None or e["event"] == event]

    # -- commands --------------------------------------------------------------------------

    def send(self, cmd: str, *, reply: str = "ok", **args: Any) -> Event:
        """Send one command and wait for its reply event (``ok``, or ``reply``)."""
        self._next_id += 1
        ident = self._next_id
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"cmd": cmd, "id": ident, **args}) + "\n")
        self.process.stdin.flush()
        return self.wait_for(lambda e: e.get("id") == ident and e["event"] in {reply, "error"},
                             f"{reply} reply to {cmd}")

    def connect(self) -> None:
        """Start the provider on ``url/room`` (``?token=`` when there is a token)."""
        self.send("connect", url=self.url, room=self.room,
                  params={} if self.token is None else {"token": self.token})

    def wait_synced(self, *, after: int = 0, timeout: float = 10) -> Event:
        """Wait until the provider has synced with the server (sync step 2 received)."""
        return self.wait_for(lambda e: e["event"] == "synced" and e["synced"], "synced",
                             after=after, timeout=timeout)

    def dump(self) -> Event:
        """The document and provider state now."""
        return self.send("dump", reply="dump")

    def set(self, key: str, value: Any) -> int:
        """Set ``fields[key]``; returns this client's clock after the write."""
        mark = self.mark()
        self.send("set", key=key, value=value)
        return self._own_clock(mark)

    def insert_note(self, index: int, text: str) -> int:
        """Insert into ``notes`` (-1: at the end); returns this client's clock after it."""
        mark = self.mark()
        self.send("insertNote", index=index, text=text)
        return self._own_clock(mark)

    def _own_clock(self, mark: int) -> int:
        local = [e for e in self.since(mark, "update") if e["origin"] == "local"]
        assert local, f"{self.name}: the edit made no update\n{self.log_tail()}"
        return int(local[0]["clock"])

    def wait_echo(self, clock: int, *, after: int = 0, timeout: float = 10) -> Event:
        """Wait for an update from the server carrying this client's own edits up to
        ``clock`` (the server's echo of what it stored)."""
        own = str(self.client_id)

        def echo(e: Event) -> bool:
            return (e["event"] == "frame" and e["dir"] == "in"
                    and e.get("kind") in {"sync-update", "sync-step2"}
                    and e["ranges"].get(own, [0, 0])[1] >= clock)

        return self.wait_for(echo, f"echo of own update up to clock {clock}", after=after,
                             timeout=timeout)

    def wait_doc(self, predicate: Callable[[Event], bool], what: str, *, after: int = 0,
                 timeout: float = 10) -> Event:
        """Wait until the document (as an ``update``, ``synced`` or ``dump`` event carries
        it) satisfies ``predicate``; the state right now counts too."""
        mark = self.mark()
        current = self.dump()
        if predicate(current):
            return current
        return self.wait_for(
            lambda e: e["event"] in {"update", "synced"} and predicate(e), what,
            after=max(after, mark), timeout=timeout)

    def close(self) -> None:
        """End the process (stdin closed: the provider is destroyed) and reap it."""
        if self.process.poll() is None:
            try:
                assert self.process.stdin is not None
                self.process.stdin.close()
                self.process.wait(scaled(5))
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait(scaled(5))

    def kill(self) -> None:
        """SIGKILL the process (a vanished client) and reap it."""
        self.process.kill()
        self.process.wait(scaled(5))


@pytest.fixture
def yclient(node_modules: Path) -> Iterator[Callable[..., YClient]]:
    """Start Node y-websocket clients: ``yclient(server, customer_id, token, name=…)``
    connects one (``token=None``: no token in the URL; ``connect=False``: not yet); every
    one is ended after the test."""
    node = shutil.which("node")
    assert node is not None
    clients: list[YClient] = []

    def make(server: ServerHandle, customer_id: str, token: str | None, *,
             name: str = "node", connect: bool = True) -> YClient:
        client = YClient(name, node, f"ws://127.0.0.1:{server.port}/yjs", customer_id, token)
        clients.append(client)
        if connect:
            client.connect()
        return client

    yield make
    for client in clients:
        client.close()


def create_customer(server: ServerHandle, token: str, **body: Any) -> str:
    """POST /customers as the token's user; the new customer's id."""
    response = httpx.post(f"{server.http_url}/customers", json=body, timeout=scaled(10),
                          headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])
