"""Benchmark: the worst stall of the client's event loop while a big sync runs.

The desktop app runs the client core on the Qt thread (qasync), so a stall of this loop is a
frozen window. A probe task wakes every 5 ms and records how late it woke; the figure is the
worst lateness (and p99) while:

1. a first directory sync of ``--customers`` customers (default 100,000) runs, and
2. a backlog of ``--backlog`` updates (default 10,000, made by another rep while this one
   was away) syncs on a held customer.

Real server (child process, temp SQLite), real sockets. Prints figures; never asserts.
Usage: .venv/bin/python bench/core_stall.py [--customers 100000] [--backlog 10000]
       [--server-db scratch/bench/server-100000.db] [--runs 3] [--explain]

``--explain`` also prints, for each first sync, how long the final move took (the replica's
own log line) and the three longest garbage-collector passes (their share of the stalls).

``--server-db`` keeps the generated server database (made on the first run, copied for
each run after: generating 100,000 customers takes longer than the sync); ``--runs``
repeats the first sync on a new client each time and prints the median. ``--backlog 0``
skips the second phase.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.collection_hold import collection_held  # noqa: E402
from app.core import ClientCore  # noqa: E402
from bench.shared import PASSWORD, prepare_server_db, running_server  # noqa: E402
from liveedit.client_cli.args import positive  # noqa: E402
from tests.memory_keyring import memory_keyring  # noqa: E402


class StallProbe:
    """Measures how late the event loop runs a 5 ms timer."""

    def __init__(self) -> None:
        self.lateness: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(0.005)
            self.lateness.append(time.perf_counter() - start - 0.005)

    def __enter__(self) -> StallProbe:
        self.lateness.clear()
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()

    def report(self, label: str, seconds: float) -> float:
        """Print the worst stall and p99 for this phase; returns the worst stall (s)."""
        values = sorted(self.lateness) or [0.0]
        p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
        print(f"{label}: took {seconds:.2f} s; worst loop stall {values[-1] * 1000:.0f} ms, "
              f"p99 {p99 * 1000:.1f} ms, median {statistics.median(values) * 1000:.1f} ms",
              flush=True)
        return values[-1]


class GcPasses:
    """Times every garbage-collector pass (``gc.callbacks``), to tell its share of stalls."""

    def __init__(self) -> None:
        self.passes: list[tuple[float, int]] = []  # (seconds, generation)
        self._started = 0.0

    def __enter__(self) -> GcPasses:
        gc.callbacks.append(self._timed)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._timed)

    def _timed(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.passes.append((time.perf_counter() - self._started, info["generation"]))

    def report(self) -> None:
        """Print the three longest passes since the last report, and forget them."""
        worst = sorted(self.passes, reverse=True)[:3]
        print("  longest collector passes: " + (", ".join(
            f"{seconds * 1000:.1f} ms (generation {gen})" for seconds, gen in worst) or "none"),
            flush=True)
        self.passes.clear()


async def _gui_collector() -> None:
    """What ui.gc_guard does in the app: automatic GC off; young generation every 0.5 s,
    a full pass every 30 s, on the loop's own thread, none while a worker holds them."""
    gc.disable()
    ticks = 0
    while True:
        await asyncio.sleep(0.5)
        if collection_held():
            continue
        ticks += 1
        gc.collect(2 if ticks % 60 == 0 else 0)


def prepare(args: argparse.Namespace, folder: Path) -> None:
    """The server database in ``folder`` (a copy of ``--server-db`` when it exists)."""
    db = folder / "server.db"
    kept: Path | None = args.server_db
    if kept is not None and kept.exists():
        with sqlite3.connect(kept) as conn:
            (have,) = conn.execute("SELECT count(*) FROM directory").fetchone()
        if have != args.customers:
            raise SystemExit(f"{kept} holds {have:,} customers, not --customers "
                             f"{args.customers:,}: name another --server-db file")
        shutil.copy(kept, db)
        return
    print(f"preparing {args.customers:,} customers …", flush=True)
    prepare_server_db(db, args.customers, reps=("reader", "writer"))
    if kept is not None:
        with sqlite3.connect(db) as conn:  # one file, nothing left in the WAL
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(db, kept)


async def run(args: argparse.Namespace, folder: Path) -> None:
    """Both phases against one server."""
    if args.gc == "app":
        collector = asyncio.get_running_loop().create_task(_gui_collector())
        collector.add_done_callback(lambda _t: gc.enable())
    db = folder / "server.db"
    with running_server(db) as url:
        took, stalls = [], []
        for run_no in range(args.runs):
            reader = ClientCore.open(folder / f"reader{run_no}")
            await reader.login(url, "reader", PASSWORD, remember=False)
            started = time.perf_counter()
            with StallProbe() as probe, GcPasses() as passes:
                await reader.sync(600)
            took.append(time.perf_counter() - started)
            stalls.append(probe.report(
                f"first directory sync of {args.customers:,} customers", took[-1]))
            if args.explain:
                passes.report()
            if run_no < args.runs - 1:
                await reader.close()
        if args.runs > 1:
            print(f"first directory sync, median of {args.runs}: "
                  f"{statistics.median(took):.2f} s (runs: "
                  f"{', '.join(f'{t:.2f}' for t in took)}); worst loop stall of all runs "
                  f"{max(stalls) * 1000:.0f} ms", flush=True)
        if not args.backlog:
            await reader.close()
            return

        writer = ClientCore.open(folder / "writer")
        await writer.login(url, "writer", PASSWORD, remember=False)
        cid = await writer.create_customer({"name": "Backlog Customer"})
        await writer.sync(60)
        await reader.open_customer(cid)
        await reader.sync(60)
        await reader.disconnect()
        for i in range(args.backlog):
            await writer.notes_insert(cid, 0, f"{i % 10}")
        await writer.sync(600)
        started = time.perf_counter()
        with StallProbe() as probe:
            await reader.sync(600)
        probe.report(f"backlog of {args.backlog:,} updates", time.perf_counter() - started)
        await writer.close()
        await reader.close()


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=positive, default=100_000)
    parser.add_argument("--backlog", type=int, default=10_000)
    parser.add_argument("--server-db", type=Path, default=None,
                        help="keep the generated server database here and reuse it")
    parser.add_argument("--runs", type=positive, default=1,
                        help="first syncs to measure, each on a new client")
    parser.add_argument("--gc", choices=("app", "python"), default="app",
                        help="garbage collection as the desktop app does it (default), or "
                             "Python's automatic collector")
    parser.add_argument("--explain", action="store_true",
                        help="also print each first sync's final move time and its longest "
                             "garbage-collector passes")
    args = parser.parse_args()
    if args.explain:  # the replica's "first sync stored N rows in S s" line
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("  %(message)s"))
        directory_log = logging.getLogger("app.replica.directory")
        directory_log.addHandler(handler)
        directory_log.setLevel(logging.INFO)
    with tempfile.TemporaryDirectory() as tmp, memory_keyring():
        prepare(args, Path(tmp))
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
