"""A throwaway PostgreSQL cluster for tests and benchmarks (the OS packages' binaries).

:class:`PostgresCluster` runs ``initdb`` into a temporary folder and starts ``postgres`` on
a free port of 127.0.0.1, with its unix socket in the same folder, so nothing of the
machine's own Postgres (if any) is touched; :meth:`PostgresCluster.remove` stops it and
deletes the folder. ``initdb`` refuses to run as root: as root, every Postgres binary runs
as the ``postgres`` user (``runuser -u postgres --``) in a folder that user owns.

Tests get one cluster per session and a fresh database per test (``conftest.py``).
``fsync=False`` (the default) speeds up tests; commits are still commits (a killed server
keeps them, the OS has them), only an OS crash could lose them. Benchmarks pass
``fsync=True``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

__all__ = ["PostgresCluster", "PostgresUnavailable", "find_bin_dir", "shared_cluster"]

#: Where Debian's ``postgresql`` package puts its server binaries, one folder per version.
DEBIAN_ROOT = Path("/usr/lib/postgresql")
SERVICE_USER = "postgres"


class PostgresUnavailable(RuntimeError):
    """The Postgres server binaries are not installed on this machine."""


def find_bin_dir() -> Path:
    """The newest installed Postgres server binary folder (``LIVEEDIT_PG_BIN`` wins)."""
    override = os.environ.get("LIVEEDIT_PG_BIN")
    candidates = [Path(override)] if override else sorted(
        DEBIAN_ROOT.glob("*/bin"), key=lambda p: _version_key(p.parent.name), reverse=True
    )
    for candidate in candidates:
        if (candidate / "initdb").is_file() and (candidate / "postgres").is_file():
            return candidate
    raise PostgresUnavailable(
        "PostgreSQL server binaries not found (install the OS package 'postgresql', "
        "or set LIVEEDIT_PG_BIN to the folder holding initdb and postgres)"
    )


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(p) for p in name.split(".") if p.isdigit()) or (0,)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresCluster:
    """One Postgres server in a temporary folder. Not thread-safe; one owner."""

    def __init__(self, *, fsync: bool = False, max_connections: int = 200) -> None:
        self.bin_dir = find_bin_dir()
        self.fsync = fsync
        self.max_connections = max_connections
        self.as_root = os.geteuid() == 0
        self.root = Path(tempfile.mkdtemp(prefix="liveedit-pg-"))
        self.data_dir = self.root / "data"
        self.socket_dir = self.root
        self.log_path = self.root / "postgres.log"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        if self.as_root:
            shutil.chown(self.root, SERVICE_USER, SERVICE_USER)
        self._run(
            "initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=trust",
            "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions",
        )

    # -- running ------------------------------------------------------------------------

    def _command(self, program: str, *args: str) -> list[str]:
        return [str(self.bin_dir / program), *args]

    def _as_service_user(self) -> dict[str, Any]:
        """Popen arguments that run the child as the ``postgres`` user when we are root
        (the child itself, not a ``runuser`` wrapper: we must reap the postmaster)."""
        if not self.as_root:
            return {}
        return {"user": SERVICE_USER, "group": SERVICE_USER, "extra_groups": [],
                "cwd": str(self.root)}

    def _run(self, program: str, *args: str) -> str:
        result = subprocess.run(
            self._command(program, *args), capture_output=True, text=True, timeout=120,
            check=False, **self._as_service_user(),
        )
        if result.returncode != 0:
            raise RuntimeError(f"{program} failed ({result.returncode}): {result.stderr}")
        return str(result.stdout)

    def start(self, timeout: float = 30.0) -> None:
        """Start the server on a free port (the same port again after a stop)."""
        for _attempt in range(5):
            port = self.port or _free_port()
            if self._start_on(port, timeout):
                self.port = port
                return
            if self.port:
                break
        raise RuntimeError("postgres did not start:\n" + self.log_tail())

    def _start_on(self, port: int, timeout: float) -> bool:
        settings = {
            "port": str(port), "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.socket_dir),
            "fsync": "on" if self.fsync else "off",
            "full_page_writes": "on" if self.fsync else "off",
            "max_connections": str(self.max_connections),
            "shared_buffers": "128MB", "log_min_messages": "warning",
        }
        args = [arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")]
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                self._command("postgres", "-D", str(self.data_dir), *args),
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                **self._as_service_user(),
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            if self._ready(port):
                return True
            time.sleep(0.05)  # polling a condition (pg_isready), under a deadline
        self.kill()
        return False

    def _ready(self, port: int) -> bool:
        result = subprocess.run(
            [str(self.bin_dir / "pg_isready"), "-q", "-h", str(self.socket_dir), "-p",
             str(port), "-U", "postgres"], check=False,
        )
        return result.returncode == 0

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown (rolls back open transactions, closes connections)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """Crash the server: SIGKILL the postmaster and all its backends (its process
        group), as a power cut would; the next start runs crash recovery."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)

    def restart(self, *, crash: bool = False) -> None:
        """Stop (or crash) and start again on the same port."""
        if crash:
            self.kill()
        else:
            self.stop()
        self.start()

    def remove(self) -> None:
        """Stop the server and delete its folder."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 40) -> str:
        """The end of the server's log (for failure messages)."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # -- databases ----------------------------------------------------------------------

    def dsn(self, dbname: str = "postgres") -> str:
        """A libpq URL of a database on this cluster, over TCP on 127.0.0.1."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        """Run SQL with psql over the unix socket; returns its unaligned output."""
        result = subprocess.run(
            [str(self.bin_dir / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-h", str(self.socket_dir), "-p", str(self.port), "-U", "postgres", "-d", dbname,
             "-c", sql],
            capture_output=True, text=True, timeout=60, check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"psql failed: {result.stderr.strip()}")
        return result.stdout.strip()

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database; returns its name."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self.psql(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting whoever still uses it."""
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def terminate_backends(self, dbname: str, application_name: str | None = None) -> int:
        """Cut connections to a database (as a network fault would); returns how many."""
        where = f"datname = '{dbname}' AND pid <> pg_backend_pid()"
        if application_name is not None:
            where += f" AND application_name = '{application_name}'"
        out = self.psql(f"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        f"WHERE {where}")
        return int(out or 0)


_SHARED: list[PostgresCluster] = []


def shared_cluster() -> PostgresCluster:
    """This process's one test cluster (each pytest-xdist worker has its own), started on
    first use, restarted if a test left it stopped, removed when the process exits.

    Raises PostgresUnavailable where the binaries are missing."""
    if not _SHARED:
        find_bin_dir()
        cluster = PostgresCluster()
        _SHARED.append(cluster)
        atexit.register(cluster.remove)
    cluster = _SHARED[0]
    if cluster.process is None or cluster.process.poll() is not None:
        cluster.start()
    return cluster
