"""Benchmark: the cost of commit-ordered sequence numbers on Postgres (issue 12).

Every writer takes its numbers from the one ``log_head`` row, so only one writer
transaction commits at a time across all nodes (storage/postgres/log.py). Group commit
should make that cheap: this measures durable updates per second through the real
``PostgresWriter`` (log rows, directory rows, a notification every 10th change, one
NOTIFY per document) with 1 and with 3 writers ("nodes") on one throwaway Postgres
cluster with fsync on, each writer fed by ``--clients`` concurrent submitters that wait
for their commit before sending the next change (as a client waits for its ack).

Prints figures, asserts nothing.

Usage: .venv/bin/python bench/pg_log.py [--updates 6000] [--clients 30] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from sync.protocol.messages import Notification, NotificationKind  # noqa: E402
from sync.server.storage.postgres.schema import migrate  # noqa: E402
from sync.server.storage.postgres.writer import PostgresWriter  # noqa: E402
from sync.server.storage.records import Commit, DirectoryRow, LogEntry  # noqa: E402
from tests.cluster.pg import PostgresCluster  # noqa: E402


def change(client: int, n: int) -> Commit:
    """One accepted edit of the client's customer, shaped like the hub's."""
    cid = f"00000000-0000-0000-0000-{client:012d}"
    doc = f"customer:{cid}"
    notes = [Notification(0, doc, NotificationKind.UPDATED, "alice", time.time(),
                          ("name",), "Ada")] if n % 10 == 0 else []
    return Commit(
        entry=LogEntry(0, doc, "alice", f"session-{client}", time.time(), ("fields.name",),
                       b"\x01" * 80),
        directory=DirectoryRow.of(cid, {"name": f"Ada {n}"}, updated_at=time.time(),
                                  deleted=False, cursor=0),
        notifications=notes, expires_at=time.time() + 86400,
    )


async def run(dsn: str, nodes: int, clients: int, updates: int) -> tuple[float, int]:
    """Durable updates/s and transactions, ``nodes`` writers sharing the load."""
    pools = [await asyncpg.create_pool(dsn, min_size=1, max_size=2) for _ in range(nodes)]
    writers = [PostgresWriter(pool, node_id=f"n{i}") for i, pool in enumerate(pools)]
    for writer in writers:
        writer.start()
    per_client = updates // clients

    async def client(k: int) -> None:
        writer = writers[k % nodes]
        for n in range(per_client):
            await writer.submit(change(k, n))

    started = time.perf_counter()
    await asyncio.gather(*(client(k) for k in range(clients)))
    elapsed = time.perf_counter() - started
    for writer in writers:
        await writer.close()
    for pool in pools:
        await pool.close()
    return per_client * clients / elapsed, sum(w.commits for w in writers)


async def main_async(args: argparse.Namespace, cluster: PostgresCluster) -> None:
    print(f"Postgres {cluster.psql('SHOW server_version')} (fsync on); {args.updates:,} "
          f"updates from {args.clients} clients waiting for each commit; median of "
          f"{args.runs} runs")
    for nodes in (1, 3):
        rates, commits = [], []
        for _ in range(args.runs):
            name = cluster.create_database("bench")
            dsn = cluster.dsn(name)
            conn = await asyncpg.connect(dsn)
            await migrate(conn)
            await conn.close()
            rate, count = await run(dsn, nodes, args.clients, args.updates)
            rates.append(rate)
            commits.append(count)
            cluster.drop_database(name)
        print(f"{nodes} writer node(s): {statistics.median(rates):,.0f} durable updates/s, "
              f"{statistics.median(commits):,.0f} transactions", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=6000)
    parser.add_argument("--clients", type=int, default=30)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    cluster = PostgresCluster(fsync=True)
    cluster.start()
    try:
        asyncio.run(main_async(args, cluster))
    finally:
        cluster.remove()


if __name__ == "__main__":
    main()
