"""Benchmark: which Postgres driver stores the server's update log faster (issue 12).

Starts a throwaway Postgres cluster (tests/cluster/pg.py, fsync on: real commits) and
writes rows shaped like the server's ``updates`` log (seq, doc_id, author, session_id,
time, changes JSON, ~80 bytes of CRDT update) with each driver:

- ``asyncpg`` (asyncio, binary protocol),
- ``psycopg`` 3 async (``AsyncConnection``) and sync (``Connection``, as a writer thread
  would use it), both with the C speedups (psycopg-binary).

Scenarios, each repeated ``--runs`` times (median printed, never asserted):

1. ``single``: one row per transaction, one connection: the commit round trip (an ack
   that waited for nothing else).
2. ``group``: transactions of ``--batch`` rows with executemany (the group-commit writer).
3. ``concurrent``: ``--clients`` connections each committing one row per transaction
   (several nodes, or several writers).
4. ``catchup``: read 2,000 rows "since seq N" (a node catching up after a reconnect).

Usage: .venv/bin/python bench/pg_drivers.py [--rows 2000] [--runs 5] [--batch 100]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
import psycopg  # noqa: E402

from tests.cluster.pg import PostgresCluster  # noqa: E402

CREATE = """
DROP TABLE IF EXISTS updates;
CREATE TABLE updates (
    seq BIGINT PRIMARY KEY, doc_id TEXT NOT NULL, author TEXT NOT NULL, session_id TEXT,
    time DOUBLE PRECISION NOT NULL, changes TEXT NOT NULL, data BYTEA NOT NULL
);
CREATE INDEX updates_doc ON updates(doc_id, seq);
"""
INSERT_DOLLAR = "INSERT INTO updates VALUES ($1, $2, $3, $4, $5, $6, $7)"
INSERT_PCT = "INSERT INTO updates VALUES (%s, %s, %s, %s, %s, %s, %s)"
SELECT_DOLLAR = "SELECT seq, doc_id, session_id, data FROM updates WHERE seq > $1 ORDER BY seq"
SELECT_PCT = "SELECT seq, doc_id, session_id, data FROM updates WHERE seq > %s ORDER BY seq"

Row = tuple[int, str, str, str, float, str, bytes]


def rows(count: int, start: int = 0) -> list[Row]:
    """Log rows like the server's: 100 customers, ~80-byte updates."""
    docs = [f"customer:{uuid.uuid4()}" for _ in range(100)]
    now = time.time()
    return [
        (start + i + 1, docs[i % 100], "alice", "session-1", now, '["fields.name"]',
         os.urandom(80))
        for i in range(count)
    ]


# -- asyncpg ---------------------------------------------------------------------------


async def asyncpg_run(dsn: str, scenario: str, data: list[Row], batch: int, clients: int) -> float:
    conns = [await asyncpg.connect(dsn) for _ in range(max(1, clients))]
    try:
        await conns[0].execute(CREATE)
        if scenario == "catchup":
            await conns[0].executemany(INSERT_DOLLAR, data)
        start = time.perf_counter()
        if scenario == "single":
            for row in data:
                async with conns[0].transaction():
                    await conns[0].execute(INSERT_DOLLAR, *row)
        elif scenario == "group":
            for i in range(0, len(data), batch):
                async with conns[0].transaction():
                    await conns[0].executemany(INSERT_DOLLAR, data[i:i + batch])
        elif scenario == "concurrent":
            async def worker(conn: Any, part: list[Row]) -> None:
                for row in part:
                    async with conn.transaction():
                        await conn.execute(INSERT_DOLLAR, *row)
            await asyncio.gather(*(worker(c, data[k::clients]) for k, c in enumerate(conns)))
        elif scenario == "catchup":
            got = await conns[0].fetch(SELECT_DOLLAR, 0)
            assert len(got) == len(data)
        return time.perf_counter() - start
    finally:
        for conn in conns:
            await conn.close()


# -- psycopg 3 -------------------------------------------------------------------------


async def psycopg_async_run(
    dsn: str, scenario: str, data: list[Row], batch: int, clients: int
) -> float:
    conns = [await psycopg.AsyncConnection.connect(dsn) for _ in range(max(1, clients))]
    try:
        async with conns[0].transaction():
            await conns[0].execute(CREATE)
        if scenario == "catchup":
            async with conns[0].transaction(), conns[0].cursor() as cur:
                await cur.executemany(INSERT_PCT, data)
        start = time.perf_counter()
        if scenario == "single":
            for row in data:
                async with conns[0].transaction():
                    await conns[0].execute(INSERT_PCT, row)
        elif scenario == "group":
            for i in range(0, len(data), batch):
                async with conns[0].transaction(), conns[0].cursor() as cur:
                    await cur.executemany(INSERT_PCT, data[i:i + batch])
        elif scenario == "concurrent":
            async def worker(conn: Any, part: list[Row]) -> None:
                for row in part:
                    async with conn.transaction():
                        await conn.execute(INSERT_PCT, row)
            await asyncio.gather(*(worker(c, data[k::clients]) for k, c in enumerate(conns)))
        elif scenario == "catchup":
            cur = await conns[0].execute(SELECT_PCT, (0,))
            got = await cur.fetchall()
            assert len(got) == len(data)
        return time.perf_counter() - start
    finally:
        for conn in conns:
            await conn.close()


def psycopg_sync_run(dsn: str, scenario: str, data: list[Row], batch: int, clients: int) -> float:
    if scenario == "concurrent":
        return float("nan")  # one writer thread per node: covered by the async variants
    with psycopg.connect(dsn, autocommit=True) as conn:
        with conn.transaction():
            conn.execute(CREATE)
        if scenario == "catchup":
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(INSERT_PCT, data)
        start = time.perf_counter()
        if scenario == "single":
            for row in data:
                with conn.transaction():
                    conn.execute(INSERT_PCT, row)
        elif scenario == "group":
            for i in range(0, len(data), batch):
                with conn.transaction(), conn.cursor() as cur:
                    cur.executemany(INSERT_PCT, data[i:i + batch])
        elif scenario == "catchup":
            got = conn.execute(SELECT_PCT, (0,)).fetchall()
            assert len(got) == len(data)
        return time.perf_counter() - start


Runner = Callable[[str, str, list[Row], int, int], Awaitable[float] | float]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--single-rows", type=int, default=500,
                        help="rows of the one-commit-each scenarios")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()

    cluster = PostgresCluster(fsync=True)
    cluster.start()
    try:
        dsn = cluster.dsn(cluster.create_database("bench"))
        drivers: dict[str, Runner] = {
            "asyncpg": asyncpg_run,
            "psycopg-async": psycopg_async_run,
            "psycopg-sync": psycopg_sync_run,
        }
        print(f"Postgres {cluster.psql('SHOW server_version')} (fsync on), "
              f"asyncpg {asyncpg.__version__}, psycopg {psycopg.__version__} "
              f"({psycopg.pq.__impl__}); median of {args.runs} runs; rows/s")
        print(f"{'scenario':<12}" + "".join(f"{name:>16}" for name in drivers))
        for scenario in ("single", "group", "concurrent", "catchup"):
            count = args.single_rows if scenario in {"single", "concurrent"} else args.rows
            line = f"{scenario:<12}"
            for runner in drivers.values():
                times = []
                for _ in range(args.runs):
                    data = rows(count)
                    result = runner(dsn, scenario, data, args.batch, args.clients)
                    if asyncio.iscoroutine(result):
                        result = asyncio.run(result)
                    times.append(float(result))  # type: ignore[arg-type]
                median = statistics.median(times)
                line += f"{'-':>16}" if math.isnan(median) else f"{count / median:>16,.0f}"
            print(line, flush=True)
    finally:
        cluster.remove()


if __name__ == "__main__":
    main()
