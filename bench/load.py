"""Benchmark: many authenticated connections held under a steady edit rate, then a storm.

1. Hold ``--connections`` (default 2,000) authenticated WebSocket connections to the real
   server for ``--minutes`` (default 5), each subscribed to one of ``--customers`` (200)
   customers, heartbeating like the app. One writer per customer edits at a steady total
   ``--rate`` (updates/s). Prints: connections held, errors and unexpected closes, server
   RSS at start and end, and delivery latency percentiles (edit sent → arrival at the
   other subscribers of that customer).
2. Drop ``--storm`` (1,000) of them at once and reconnect them all at once (no backoff
   of our own: the worst case), honouring only the server's ``retry_after`` when it is busy;
   prints how long until all are back and authenticated, refusals and errors.

Real server (child process, temp SQLite), real sockets on 127.0.0.1. Figures, not asserts.
Usage: .venv/bin/python bench/load.py [--connections 2000] [--minutes 5] [--rate 200]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import resource
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import websockets  # noqa: E402

from liveedit.demo import start_server  # noqa: E402
from sync.protocol import document  # noqa: E402
from sync.protocol.messages import (  # noqa: E402
    PROTOCOL_VERSION,
    Ack,
    Authenticate,
    Error,
    Heartbeat,
    RemoteUpdate,
    Subscribe,
    Update,
    Welcome,
    customer_doc_id,
    decode,
    encode,
)
from sync.server.auth import AuthService, Role  # noqa: E402

PASSWORD = "load bench password"


def raise_fd_limit() -> int:
    """Allow as many sockets as the hard limit permits (children inherit it)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def rss_kib(pid: int) -> int:
    """Resident set size of a process, KiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Stats:
    """Counters shared by every connection."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors = 0
        self.closes = 0
        self.sent: dict[bytes, float] = {}


async def connect(url: str, token: str, doc_id: str) -> Any:
    """An authenticated connection subscribed to one customer."""
    ws = await websockets.connect(url, max_size=None, ping_interval=None)
    await ws.send(encode(Authenticate((PROTOCOL_VERSION,), token, secrets.token_hex(8), "load")))
    welcome = decode(await ws.recv())
    if isinstance(welcome, Error) and welcome.retry_after is not None:
        await ws.close()
        raise BusyError(welcome.retry_after)
    if not isinstance(welcome, Welcome):
        raise RuntimeError(f"not welcomed: {welcome}")
    await ws.send(encode(Subscribe((doc_id,))))
    return ws


async def reconnect(url: str, token: str, doc_id: str, refusals: list[int]) -> Any:
    """Connect like the app after a drop: a busy server's Error(retry_after) is honoured."""
    while True:
        try:
            return await connect(url, token, doc_id)
        except BusyError as busy:
            refusals.append(1)
            await asyncio.sleep(busy.retry_after)


class BusyError(RuntimeError):
    """The server refused the connection for now (Error(server_busy, retry_after))."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"server busy; retry in {retry_after} s")
        self.retry_after = retry_after


async def reader(ws: Any, stats: Stats, stop: asyncio.Event) -> None:
    """Read everything; record delivery latency of remote updates; heartbeat every 15 s."""
    last_beat = time.monotonic()
    try:
        while not stop.is_set():
            try:
                frame = await asyncio.wait_for(ws.recv(), 1.0)
            except TimeoutError:
                frame = None
            if frame is not None:
                message = decode(frame)
                if isinstance(message, RemoteUpdate):
                    sent = stats.sent.get(message.update)
                    if sent is not None:
                        stats.latencies.append(time.perf_counter() - sent)
            if time.monotonic() - last_beat > 15:
                await ws.send(encode(Heartbeat(1)))
                last_beat = time.monotonic()
    except websockets.ConnectionClosed:
        if not stop.is_set():
            stats.closes += 1


async def writer(url: str, token: str, docs: list[str], *, rate: float, stats: Stats,
                 stop: asyncio.Event) -> int:
    """One writer connection editing the customers in turn at ``rate`` updates/s in total
    (the others see each edit as a RemoteUpdate)."""
    ws = await websockets.connect(url, max_size=None, ping_interval=None)
    await ws.send(encode(
        Authenticate((PROTOCOL_VERSION,), token, secrets.token_hex(8), "load-writer")
    ))
    decode(await ws.recv())
    await ws.send(encode(Subscribe(tuple(docs))))
    replicas = {d: document.new_document() for d in docs}
    captured: list[bytes] = []
    subs = [doc.observe(lambda e: captured.append(e.update)) for doc in replicas.values()]

    async def drain() -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                message = decode(await ws.recv())
                if isinstance(message, Ack):
                    continue

    drainer = asyncio.create_task(drain())
    sent = 0
    start = time.perf_counter()
    while not stop.is_set():
        doc_id = docs[sent % len(docs)]
        captured.clear()
        document.set_fields(replicas[doc_id], {"city": f"c{sent}"}, author="load")
        update = captured[-1]
        stats.sent[update] = time.perf_counter()
        sent += 1
        await ws.send(encode(Update(doc_id, sent, update)))
        delay = start + sent / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
    drainer.cancel()
    await ws.close()
    del subs
    return sent


def pct(values: list[float], q: float) -> float:
    """A percentile in ms."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000


async def run(args: argparse.Namespace, folder: Path) -> None:
    """Both phases."""
    db = folder / "load.db"
    with AuthService(db) as auth:
        auth.add_user("load", PASSWORD, Role.REP)
    server, base = start_server(db)
    try:
        async with httpx.AsyncClient() as http:
            login = await http.post(f"{base}/auth/login",
                                    json={"username": "load", "password": PASSWORD})
        token = login.json()["access_token"]
        url = base.replace("http", "ws", 1) + "/ws"
        docs = [customer_doc_id(str(uuid.uuid4())) for _ in range(args.customers)]
        rss_empty = rss_kib(server.pid)
        stats = Stats()
        stop = asyncio.Event()
        started = time.perf_counter()
        sockets = []
        for i in range(args.connections):
            sockets.append(await connect(url, token, docs[i % len(docs)]))
        print(f"{len(sockets):,} connections authenticated and subscribed in "
              f"{time.perf_counter() - started:.1f} s", flush=True)
        readers = [asyncio.create_task(reader(ws, stats, stop)) for ws in sockets]
        rss_start = rss_kib(server.pid)
        write = asyncio.create_task(
            writer(url, token, docs, rate=args.rate, stats=stats, stop=stop))
        await asyncio.sleep(args.minutes * 60)  # the hold duration (a measurement window)
        rss_end = rss_kib(server.pid)
        stop.set()
        edits = await write
        await asyncio.gather(*readers)
        print(f"held {len(sockets):,} connections for {args.minutes:g} min at "
              f"{args.rate:g} edits/s across {args.customers} customers: {edits:,} edits, "
              f"{len(stats.latencies):,} deliveries; unexpected closes {stats.closes}")
        print(f"server RSS: empty {rss_empty / 1024:.0f} MiB, with connections "
              f"{rss_start / 1024:.0f} MiB, after {args.minutes:g} min "
              f"{rss_end / 1024:.0f} MiB "
              f"(~{(rss_start - rss_empty) / max(1, len(sockets)):.0f} KiB per connection)")
        print(f"delivery latency ms: p50 {pct(stats.latencies, 0.5):.1f}, "
              f"p95 {pct(stats.latencies, 0.95):.1f}, p99 {pct(stats.latencies, 0.99):.1f}, "
              f"max {pct(stats.latencies, 1.0):.1f}")

        storm = sockets[: args.storm]
        await asyncio.gather(*(ws.close() for ws in storm), return_exceptions=True)
        started = time.perf_counter()
        refusals: list[int] = []
        results = await asyncio.gather(
            *(reconnect(url, token, random.choice(docs), refusals) for _ in storm),
            return_exceptions=True,
        )
        failed = [r for r in results if isinstance(r, BaseException)]
        print(f"reconnect storm: {len(storm):,} dropped at once and reconnected in "
              f"{time.perf_counter() - started:.1f} s; told to retry later "
              f"{len(refusals):,} times; failures {len(failed)}; "
              f"server alive: {server.poll() is None}")
        back = [r for r in results if not isinstance(r, BaseException)]
        for ws in [*sockets[args.storm:], *back]:
            with contextlib.suppress(Exception):
                await ws.close()
        print(f"median delivery {statistics.median(stats.latencies) * 1000:.1f} ms"
              if stats.latencies else "no deliveries measured")
    finally:
        server.terminate()
        server.wait(30)


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--storm", type=int, default=1000)
    args = parser.parse_args()
    print(f"file descriptor limit raised to {raise_fd_limit():,}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
