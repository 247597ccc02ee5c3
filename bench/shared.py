"""Helpers shared by the benchmarks that run the real server (not a benchmark itself).

- :func:`prepare_server_db`: a server database holding ``customers`` generated customers
  (``sync.server.demo_data``, imported the way ``liveedit server import`` does) and rep
  accounts with :data:`PASSWORD`;
- :func:`running_server`: the real server (``liveedit server serve``, a child process on a
  loopback port, the server's default options) for the duration of a ``with`` block;
- :func:`start_server`: the same server as a child process the caller stops (a benchmark
  that runs several, or needs the process);
- :func:`free_port`: a loopback port nobody listens on now (to start a server again at the
  address a profile remembers).
"""

from __future__ import annotations

import re
import socket
import statistics
import subprocess
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sync.protocol import document  # noqa: E402
from sync.server.auth import AuthService, Role  # noqa: E402
from sync.server.demo_data import generate_customers  # noqa: E402
from sync.server.importer import import_customers  # noqa: E402

__all__ = ["PASSWORD", "ROOT", "free_port", "make_updates", "percentile", "prepare_server_db",
           "running_server", "start_server"]

PASSWORD = "bench password 1"


def prepare_server_db(db: Path, customers: int, reps: Iterable[str] = ("rep",)) -> Path:
    """Create ``db`` with ``customers`` generated customers and the given rep accounts."""
    import_customers(db, generate_customers(customers))
    with AuthService(db) as auth:
        for name in reps:
            auth.add_user(name, PASSWORD, Role.REP)
    return db


@contextmanager
def running_server(db: Path, port: int = 0) -> Iterator[str]:
    """Run the real server on ``db`` (default options; ``port`` 0: a free one); yields its
    base URL once it listens, and stops it (SIGTERM) after the block."""
    process = subprocess.Popen(
        [sys.executable, "-m", "liveedit", "server", "serve", "--db", str(db),
         "--port", str(port), "--log-level", "warning"],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"listening on (\S+)", line)
        if match is None:
            raise RuntimeError(f"the server did not start: {line.strip() or 'no output'}")
        yield match.group(1)
    finally:
        process.terminate()
        process.wait(10)


def start_server(db: Path | str, *options: str) -> tuple[subprocess.Popen[str], str]:
    """Start the real server on ``db`` on a free port with ``options``; returns the process
    (the caller stops it) and its base URL once it listens. Exits if it does not start."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "liveedit", "server", "serve", "--db", str(db), "--port", "0",
         *options],
        stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"listening on (http://\S+)", line)
    if not match:
        proc.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return proc, match.group(1)


def free_port() -> int:
    """A loopback TCP port that is free now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` percentile (nearest rank) of ``values``; the median for 0.5."""
    if fraction == 0.5:
        return statistics.median(values)
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def make_updates(count: int) -> list[bytes]:
    """``count`` successive edits of one customer's name, as pycrdt updates (what
    server_acks.py sends and update_budget.py feeds the hub)."""
    doc = document.new_document()
    updates: list[bytes] = []
    subscription = doc.observe(lambda event: updates.append(event.update))
    for i in range(count):
        document.set_fields(doc, {"name": f"Customer {i}"})
    del subscription
    return updates
