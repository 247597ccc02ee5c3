"""Benchmark: durable updates/s through the storage contract, SQLite vs Postgres (issue 12).

The same workload through ``storage.open_engine`` for a SQLite file (synchronous=FULL)
and a throwaway Postgres cluster (fsync on): ``--clients`` concurrent writers, each
submitting changes shaped like the hub's (log row, directory row, a notification every
10th) and waiting for each commit before the next, as a client waits for its ack. The
server's WebSocket path is not in it: this isolates what the engine costs, a first look at
issue 12's target "Postgres single node >= 0.8 x SQLite" (bench/cluster.py will measure it
end to end). Prints figures, asserts nothing.

Usage: .venv/bin/python bench/engines.py [--updates 10000] [--clients 50] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sync.protocol.messages import Notification, NotificationKind  # noqa: E402
from sync.server.storage import open_engine  # noqa: E402
from sync.server.storage.base import Engine  # noqa: E402
from sync.server.storage.records import Commit, DirectoryRow, LogEntry  # noqa: E402
from tests.cluster.pg import PostgresCluster  # noqa: E402


def change(engine: Engine, client: int, n: int) -> Commit:
    """One edit of the client's customer, numbered first where the engine wants that."""
    cid = f"00000000-0000-0000-0000-{client:012d}"
    doc = f"customer:{cid}"
    at_commit = engine.capabilities.numbers_at_commit
    seq = 0 if at_commit else engine.next_seq()
    notes = []
    if n % 10 == 0:
        number = 0 if at_commit else engine.next_notification_seq()
        notes.append(Notification(number, doc, NotificationKind.UPDATED, "alice", time.time(),
                                  ("name",), "Ada"))
    return Commit(
        entry=LogEntry(seq, doc, "alice", f"session-{client}", time.time(), ("fields.name",),
                       b"\x01" * 80),
        directory=DirectoryRow.of(cid, {"name": f"Ada {n}"}, updated_at=time.time(),
                                  deleted=False, cursor=seq),
        notifications=notes, expires_at=time.time() + 86400,
    )


async def run(location: Path | str, clients: int, updates: int) -> float:
    """Durable updates per second on one engine."""
    engine = open_engine(location)
    await engine.start()
    per_client = updates // clients

    async def client(k: int) -> None:
        for n in range(per_client):
            await engine.submit(change(engine, k, n))

    started = time.perf_counter()
    await asyncio.gather(*(client(k) for k in range(clients)))
    elapsed = time.perf_counter() - started
    await engine.close()
    return per_client * clients / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=10000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    cluster = PostgresCluster(fsync=True)
    cluster.start()
    try:
        print(f"{args.updates:,} updates from {args.clients} clients waiting for each commit; "
              f"median of {args.runs} runs")
        rates: dict[str, list[float]] = {"sqlite": [], "postgres": []}
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory() as folder:
                rates["sqlite"].append(asyncio.run(
                    run(Path(folder) / "server.db", args.clients, args.updates)))
            name = cluster.create_database("bench")
            rates["postgres"].append(asyncio.run(
                run(cluster.dsn(name), args.clients, args.updates)))
            cluster.drop_database(name)
        sqlite, postgres = (statistics.median(rates[k]) for k in ("sqlite", "postgres"))
        print(f"SQLite (synchronous=FULL): {sqlite:,.0f} durable updates/s")
        print(f"Postgres {cluster.psql('SHOW server_version')} (fsync on): "
              f"{postgres:,.0f} durable updates/s = {postgres / sqlite:.2f} x SQLite")
    finally:
        cluster.remove()


if __name__ == "__main__":
    main()
