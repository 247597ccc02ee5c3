"""Benchmark: how fast the reference server durably acknowledges updates.

Runs the real server (a subprocess on 127.0.0.1, temp SQLite file, synchronous=FULL) and
real WebSocket clients, and prints figures (never asserts):

1. burst: one client sends N small updates to one customer back to back; time until the
   last Ack (every Ack means "committed to disk").
2. spread: N updates across 100 customers from one client.
3. concurrent: C clients each send M updates to their own customer; durable acked
   updates per second overall.

Usage: .venv/bin/python bench/server_acks.py [--updates 1000] [--clients 10] [--per-client 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import websockets

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.shared import PASSWORD, make_updates, start_server  # noqa: E402
from sync.protocol.messages import (  # noqa: E402
    PROTOCOL_VERSION,
    Ack,
    Authenticate,
    Subscribe,
    Subscribed,
    SyncStep1,
    Update,
    Welcome,
    customer_doc_id,
    decode,
    encode,
)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, all threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def connect(ws_url: str, token: str) -> Any:
    """An authenticated WebSocket."""
    ws = await websockets.connect(ws_url, max_size=None)
    await ws.send(encode(Authenticate((PROTOCOL_VERSION,), token, secrets.token_hex(8), "bench")))
    assert isinstance(decode(await ws.recv()), Welcome)
    return ws


async def subscribe(ws: Any, doc_ids: list[str]) -> None:
    """Subscribe and drain the Subscribed/SyncStep1 answers."""
    await ws.send(encode(Subscribe(tuple(doc_ids))))
    expected = len(doc_ids)
    seen = 0
    while seen < expected:
        message = decode(await ws.recv())
        if isinstance(message, SyncStep1):
            seen += 1
        elif not isinstance(message, Subscribed):
            continue


async def send_and_wait(ws: Any, items: list[tuple[str, bytes]]) -> float:
    """Send every (doc, update) and wait for all Acks; returns seconds."""
    started = time.perf_counter()
    for ref, (doc_id, update) in enumerate(items, start=1):
        await ws.send(encode(Update(doc_id, ref, update)))
    pending = len(items)
    while pending:
        if isinstance(decode(await ws.recv()), Ack):
            pending -= 1
    return time.perf_counter() - started


async def run(args: argparse.Namespace) -> None:
    """Run the three scenarios against one server."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        from sync.server.auth import AuthService, Role

        AuthService(db).add_user("bench", PASSWORD, Role.REP)
        proc, base = start_server(db, "--log-level", "warning", "--rate-limit", "100000",
                                  "--rate-burst", "100000")
        try:
            async with httpx.AsyncClient() as http:
                login = await http.post(f"{base}/auth/login",
                                        json={"username": "bench", "password": PASSWORD})
            token = login.json()["access_token"]
            ws_url = base.replace("http", "ws") + "/ws"

            burst_times = []
            for _ in range(args.repeat):
                ws = await connect(ws_url, token)
                doc_id = customer_doc_id(str(uuid.uuid4()))
                await subscribe(ws, [doc_id])
                burst_times.append(await send_and_wait(
                    ws, [(doc_id, u) for u in make_updates(args.updates)]))
                await ws.close()
            print(f"burst: {args.updates} updates to 1 customer acked in "
                  f"{statistics.median(burst_times) * 1000:.0f} ms (median of {args.repeat}; "
                  f"{args.updates / statistics.median(burst_times):,.0f} acked updates/s)")

            ws = await connect(ws_url, token)
            docs = [customer_doc_id(str(uuid.uuid4())) for _ in range(100)]
            await subscribe(ws, docs)
            per_doc = max(1, args.updates // 100)
            items = [(d, u) for d in docs for u in make_updates(per_doc)]
            spread = await send_and_wait(ws, items)
            print(f"spread: {len(items)} updates across 100 customers acked in "
                  f"{spread * 1000:.0f} ms")
            await ws.close()

            sockets = [await connect(ws_url, token) for _ in range(args.clients)]
            work = []
            for ws in sockets:
                doc_id = customer_doc_id(str(uuid.uuid4()))
                await subscribe(ws, [doc_id])
                work.append((ws, [(doc_id, u) for u in make_updates(args.per_client)]))
            started = time.perf_counter()
            server_cpu, own_cpu = cpu_seconds(proc.pid), time.process_time()
            await asyncio.gather(*(send_and_wait(ws, items) for ws, items in work))
            elapsed = time.perf_counter() - started
            server_cpu = cpu_seconds(proc.pid) - server_cpu
            own_cpu = time.process_time() - own_cpu
            total = args.clients * args.per_client
            print(f"concurrent: {args.clients} clients x {args.per_client} updates = {total} "
                  f"durably acked in {elapsed:.2f} s -> {total / elapsed:,.0f} updates/s "
                  f"(server CPU {100 * server_cpu / elapsed:.0f}%, "
                  f"{1e6 * server_cpu / total:.0f} µs per update, all threads; load generator "
                  f"{100 * own_cpu / elapsed:.0f}%)")
            for ws in sockets:
                await ws.close()
        finally:
            proc.terminate()
            proc.wait(10)


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--per-client", type=int, default=2000)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
