"""The servers compared: ours (``/yjs/{customer_id}``), the Node reference server
``@y/websocket-server`` and pycrdt-websocket, each installed into the gitignored scratch
folder on first use and started fresh for every measurement.

Each started server is pinned to the server core: the bench pins its own thread to that
core just around ``Popen`` so the child (and every thread it makes) inherits the mask, then
pins itself back to the generator core.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

__all__ = [
    "NODE_PACKAGES",
    "PYCRDT_PACKAGES",
    "TARGETS",
    "Cores",
    "Running",
    "Target",
    "cpu_seconds",
    "make_target",
    "rss_kib",
]

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

#: Exact versions installed into the scratch folder. @y/websocket-server 0.1.5 needs
#: yjs 14 pre-releases whose dependencies are not all published; 0.1.1 is the release on
#: the stable yjs 13 line that y-websocket users run today.
NODE_PACKAGES = ("@y/websocket-server@0.1.1", "yjs@13.6.33")
#: websockets pinned to the version our server uses, uvloop as for our server.
PYCRDT_PACKAGES = ("pycrdt-websocket==0.16.5", "websockets==17.4", "uvloop==0.23.0")

TARGETS = ("ours", "node", "pycrdt")
PASSWORD = "yjs bench password"
START_TIMEOUT = 60.0


@dataclass(frozen=True)
class Cores:
    """Where the server and the generator run (None: no pinning)."""

    server: set[int] | None
    generator: set[int] | None

    @classmethod
    def choose(cls, spec: str | None) -> Cores:
        """``spec`` ``"S,G"`` (core numbers), ``"none"``, or None: first two usable cores."""
        if spec == "none":
            return cls(None, None)
        if spec:
            server, generator = (int(part) for part in spec.split(","))
            return cls({server}, {generator})
        usable = sorted(os.sched_getaffinity(0))
        if len(usable) < 2:
            return cls(None, None)
        return cls({usable[0]}, {usable[1]})

    def pin_generator(self) -> None:
        """Pin the calling thread (the generator's event loop) to the generator core."""
        if self.generator is not None:
            os.sched_setaffinity(0, self.generator)

    @contextlib.contextmanager
    def spawning_server(self) -> Iterator[None]:
        """While inside, children started by this thread inherit the server core."""
        if self.server is None:
            yield
            return
        before = os.sched_getaffinity(0)
        os.sched_setaffinity(0, self.server)
        try:
            yield
        finally:
            os.sched_setaffinity(0, before)


def raise_nofile() -> int:
    """Raise this process's open-file limit to the hard limit (children inherit it)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    """Resident set size of a process in KiB, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def free_port() -> int:
    """A free loopback port (for servers that cannot report one they picked)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Running:
    """A started server: its process and how to reach a room."""

    name: str
    process: subprocess.Popen[str]
    base: str
    rooms: list[str]
    query: str = ""
    stderr_path: Path | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def room_url(self, index: int) -> str:
        """WebSocket URL of room number ``index``."""
        return f"{self.base}/{self.rooms[index]}{self.query}"

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 20 s."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in 20 s; killing it", self.name)
                self.process.kill()
                self.process.wait(10)
        if self.process.stdout is not None:
            self.process.stdout.close()

    def log_tail(self, limit: int = 2000) -> str:
        """The end of what the server wrote to stderr ('' if nothing)."""
        if self.stderr_path is None or not self.stderr_path.exists():
            return ""
        return self.stderr_path.read_text(errors="replace")[-limit:].strip()

    def check_alive(self) -> None:
        """Raise if the server process has died."""
        code = self.process.poll()
        if code is not None:
            tail = ""
            if self.stderr_path is not None and self.stderr_path.exists():
                tail = self.stderr_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{self.name} server exited with code {code}: {tail}")


@dataclass
class Target:
    """One kind of server: installed once, started fresh per measurement."""

    name: str
    scratch: Path
    rooms: int
    cores: Cores
    versions: dict[str, str] = field(default_factory=dict)

    def prepare(self) -> None:
        """Install or build what ``start`` needs (idempotent)."""

    def start(self, workdir: Path) -> Running:
        """Start a fresh server; ``workdir`` is an empty temporary folder."""
        raise NotImplementedError

    def _spawn(self, command: list[str], workdir: Path, *, pattern: str,
               env: dict[str, str] | None = None, cwd: Path | None = None,
               ) -> tuple[subprocess.Popen[str], re.Match[str]]:
        """Start ``command`` pinned to the server core; wait for a stdout line matching."""
        stderr_path = workdir / f"{self.name}.stderr"
        with self.cores.spawning_server(), stderr_path.open("w") as stderr:
            process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=stderr, text=True,
                env={**os.environ, **(env or {})}, cwd=cwd or workdir,
            )
        assert process.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            match = re.search(pattern, line)
            if match:
                return process, match
        process.kill()
        process.wait()
        raise RuntimeError(f"{self.name} server did not start: "
                           f"{stderr_path.read_text(errors='replace')[-2000:]}")


class Ours(Target):
    """``liveedit server serve`` with its Yjs endpoint; one rep user, customers imported."""

    def __init__(self, scratch: Path, rooms: int, cores: Cores, token_ttl: int,
                 extra_args: list[str]) -> None:
        super().__init__("ours", scratch, rooms, cores)
        self.token_ttl = token_ttl
        self.extra_args = extra_args
        self.template = scratch / "ours" / "template.db"
        # at least the full-size room count, so --quick and full runs share one template
        self.customer_ids = [str(uuid.UUID(int=0xB3AC4 << 80 | i))
                             for i in range(max(rooms, 500))]

    def prepare(self) -> None:
        from importlib.metadata import version

        for package in ("liveedit", "websockets", "uvicorn", "pycrdt"):
            self.versions[package] = version(package)
        self.versions["python"] = sys.version.split()[0]
        folder = self.template.parent
        stamp = folder / "template.json"
        wanted = {"customers": self.customer_ids, "user": "bench"}
        if self.template.exists() and stamp.exists() and json.loads(stamp.read_text()) == wanted:
            return
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        records = [{"id": cid, "name": f"Bench customer {i}", "email": None, "phone": None,
                    "tier": None, "address": {"street1": None, "street2": None,
                                              "city": None, "state": None, "zip": None}}
                   for i, cid in enumerate(self.customer_ids)]
        customers = folder / "customers.json"
        customers.write_text(json.dumps(records))
        liveedit = [sys.executable, "-m", "liveedit", "server"]
        subprocess.run([*liveedit, "import", "--db", str(self.template), str(customers)],
                       check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        subprocess.run([*liveedit, "user", "add", "bench", "--role", "rep", "--db",
                        str(self.template), "--password-stdin"],
                       input=PASSWORD + "\n", text=True, check=True, cwd=ROOT,
                       stdout=subprocess.DEVNULL)
        stamp.write_text(json.dumps(wanted))
        log.info("ours: template database with %d customers and user bench",
                 len(self.customer_ids))

    def start(self, workdir: Path) -> Running:
        db = workdir / "live.db"
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{self.template}{suffix}")
            if source.exists():
                shutil.copyfile(source, f"{db}{suffix}")
        command = [sys.executable, "-m", "liveedit", "server", "serve", "--db", str(db),
                   "--port", "0", "--log-level", "warning",
                   "--rate-limit", "100000", "--rate-burst", "100000",
                   "--access-token-ttl", str(self.token_ttl), *self.extra_args]
        process, match = self._spawn(command, workdir, pattern=r"listening on (http://\S+)",
                                     cwd=ROOT)
        base = match.group(1)
        try:
            reply = httpx.post(f"{base}/auth/login",
                               json={"username": "bench", "password": PASSWORD}, timeout=30)
            reply.raise_for_status()
        except Exception:
            process.kill()
            process.wait()
            raise
        token = reply.json()["access_token"]
        return Running("ours", process, base.replace("http", "ws", 1) + "/yjs",
                       self.customer_ids, query=f"?token={token}",
                       stderr_path=workdir / "ours.stderr")


class Node(Target):
    """``@y/websocket-server`` (its own server.js, no persistence), under Node."""

    def __init__(self, scratch: Path, rooms: int, cores: Cores) -> None:
        super().__init__("node", scratch, rooms, cores)
        self.prefix = scratch / "node"
        self.script = (self.prefix / "node_modules" / "@y" / "websocket-server" / "src"
                       / "server.js")
        self.room_names = [f"room-{i}" for i in range(rooms)]

    def prepare(self) -> None:
        stamp = self.prefix / "installed.json"
        if self.script.exists() and stamp.exists() and json.loads(
                stamp.read_text()) == list(NODE_PACKAGES):
            self._versions()
            return
        if shutil.which("npm") is None or shutil.which("node") is None:
            raise RuntimeError("node and npm are needed for the node target")
        self.prefix.mkdir(parents=True, exist_ok=True)
        log.info("installing %s into %s", " ".join(NODE_PACKAGES), self.prefix)
        subprocess.run(["npm", "install", "--prefix", str(self.prefix), "--no-audit",
                        "--no-fund", "--save-exact", *NODE_PACKAGES],
                       check=True, stdout=subprocess.DEVNULL)
        stamp.write_text(json.dumps(list(NODE_PACKAGES)))
        self._versions()

    def _versions(self) -> None:
        modules = self.prefix / "node_modules"
        for package in ("@y/websocket-server", "yjs", "ws", "y-protocols"):
            meta = modules / package / "package.json"
            if meta.exists():
                self.versions[package] = json.loads(meta.read_text())["version"]
        self.versions["node"] = subprocess.run(["node", "--version"], capture_output=True,
                                               text=True, check=False).stdout.strip()

    def start(self, workdir: Path) -> Running:
        port = free_port()
        process, _ = self._spawn(["node", str(self.script)], workdir,
                                 pattern=r"running at", cwd=self.prefix,
                                 env={"HOST": "127.0.0.1", "PORT": str(port)})
        return Running("node", process, f"ws://127.0.0.1:{port}", self.room_names,
                       stderr_path=workdir / "node.stderr")


class Pycrdt(Target):
    """pycrdt-websocket's WebsocketServer on websockets, in its own scratch venv."""

    def __init__(self, scratch: Path, rooms: int, cores: Cores) -> None:
        super().__init__("pycrdt", scratch, rooms, cores)
        self.venv = scratch / "pycrdt-venv"
        self.python = self.venv / "bin" / "python"
        self.room_names = [f"room-{i}" for i in range(rooms)]

    def prepare(self) -> None:
        stamp = self.venv / "installed.json"
        if not (self.python.exists() and stamp.exists()
                and json.loads(stamp.read_text()) == list(PYCRDT_PACKAGES)):
            log.info("installing %s into %s", " ".join(PYCRDT_PACKAGES), self.venv)
            if not self.python.exists():
                subprocess.run(["python3", "-m", "venv", str(self.venv)], check=True)
            subprocess.run([str(self.python), "-m", "pip", "install", "--quiet",
                            "--disable-pip-version-check", *PYCRDT_PACKAGES], check=True)
            stamp.write_text(json.dumps(list(PYCRDT_PACKAGES)))
        probe = ("import importlib.metadata as m, sys; print(sys.version.split()[0]); "
                 "[print(p, m.version(p)) for p in "
                 "('pycrdt-websocket', 'pycrdt', 'websockets', 'anyio', 'uvloop')]")
        out = subprocess.run([str(self.python), "-c", probe], capture_output=True, text=True,
                             check=True).stdout.split("\n")
        self.versions["python"] = out[0]
        for line in out[1:]:
            name, _, version = line.partition(" ")
            if version:
                self.versions[name] = version

    def start(self, workdir: Path) -> Running:
        process, match = self._spawn([str(self.python), str(HERE / "pycrdt_server.py")],
                                     workdir, pattern=r"listening on (ws://\S+)")
        return Running("pycrdt", process, match.group(1), self.room_names,
                       stderr_path=workdir / "pycrdt.stderr")


def make_target(name: str, scratch: Path, rooms: int, cores: Cores, *, token_ttl: int = 3600,
                ours_args: list[str] | None = None) -> Target:
    """The target called ``name`` (one of TARGETS)."""
    if name == "ours":
        return Ours(scratch, rooms, cores, token_ttl, ours_args or [])
    if name == "node":
        return Node(scratch, rooms, cores)
    if name == "pycrdt":
        return Pycrdt(scratch, rooms, cores)
    raise ValueError(f"unknown target {name!r}; one of {', '.join(TARGETS)}")
