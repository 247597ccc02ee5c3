"""Benchmark: a day's offline edits acked after reconnecting.

Through the real client core (``app.core.ClientCore``) and the real server (child process,
temp SQLite, the server's default options, so its per-connection rate limit applies): a
rep holds ``--customers`` customers (100), goes offline the way File > Work offline does
(``core.disconnect()``), makes ``--edits`` field edits (1,000) spread evenly over them —
each one a local-first edit, durable in the replica and queued in the outbox — then
reconnects (``core.connect()``). The figure is the time from reconnecting until the
outbox is empty, i.e. the server has durably committed and acked every queued edit.
Also printed: time until the connection was online, and until the engine was fully in
sync. Target: <= 1 s. Prints figures over ``--runs`` rounds; never asserts.

Usage: .venv/bin/python bench/offline_queue.py [--customers 100] [--edits 1000] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.core import ClientCore  # noqa: E402
from app.events import Event, OutboxChanged, StatusChanged  # noqa: E402
from bench.shared import PASSWORD, percentile, prepare_server_db, running_server  # noqa: E402
from sync.client import ConnectionState  # noqa: E402

FIELDS = ("city", "phone", "zip", "street1", "email")


async def offline_edits(core: ClientCore, ids: list[str], edits: int, round_: int) -> float:
    """Go offline and make ``edits`` edits round-robin over ``ids``; returns seconds."""
    await core.disconnect()
    started = time.perf_counter()
    for i in range(edits):
        field = FIELDS[(i // len(ids)) % len(FIELDS)]
        value = {"email": f"r{round_}e{i}@example.com", "zip": f"{round_ * 1000 + i:05d}",
                 "phone": f"+1 555 {round_:03d} {i:04d}"}.get(field, f"R{round_} edit {i}")
        await core.set_fields(ids[i % len(ids)], {field: value})
    return time.perf_counter() - started


async def reconnect(core: ClientCore) -> tuple[float, float, float]:
    """Reconnect; seconds until online, until the outbox is empty, until in sync."""
    online, empty = asyncio.Event(), asyncio.Event()
    marks: dict[str, float] = {}

    def watch(event: Event) -> None:
        if isinstance(event, StatusChanged) and event.status.state is ConnectionState.ONLINE:
            marks.setdefault("online", time.perf_counter())
            online.set()
        elif isinstance(event, OutboxChanged) and event.pending == 0:
            marks.setdefault("empty", time.perf_counter())
            empty.set()

    unsubscribe = core.bus.subscribe(watch)
    try:
        started = time.perf_counter()
        await core.connect()
        async with asyncio.timeout(120):
            await online.wait()
            await empty.wait()
        await core.sync(120)
        synced = time.perf_counter()
    finally:
        unsubscribe()
    return marks["online"] - started, marks["empty"] - started, synced - started


async def run(args: argparse.Namespace, folder: Path) -> None:
    """Prepare the server and the rep, then measure ``--runs`` rounds."""
    db = prepare_server_db(folder / "server.db", args.customers)
    with running_server(db) as url:
        core = ClientCore.open(folder / "rep")
        await core.login(url, "rep", PASSWORD, remember=False)
        await core.sync(120)
        ids = [row.customer_id for row in core.search("", limit=args.customers)]
        for cid in ids:
            await core.open_customer(cid)  # held: a rep had them open
        await core.sync(120)
        print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; "
              f"{len(ids)} customers held, {args.edits:,} offline edits per round")
        acked: list[float] = []
        for round_ in range(args.runs):
            editing = await offline_edits(core, ids, args.edits, round_)
            queued = core.replica.outbox_count()
            to_online, to_empty, to_sync = await reconnect(core)
            acked.append(to_empty)
            print(f"round {round_ + 1}: {queued:,} queued in {editing:.2f} s offline; after "
                  f"reconnect: online {to_online * 1000:.0f} ms, outbox empty "
                  f"{to_empty * 1000:.0f} ms, in sync {to_sync * 1000:.0f} ms")
        await core.close()
    print(f"reconnect → every queued edit acked: p50 {percentile(acked, 0.5) * 1000:.0f} ms, "
          f"max {max(acked) * 1000:.0f} ms over {len(acked)} rounds (target <= 1000 ms)")


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100)
    parser.add_argument("--edits", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
