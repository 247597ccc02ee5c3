"""The four measurements of issue 6, each against one freshly started server.

1. ``fanout``: N clients in one room (the writer is one of them), one writer making small
   edits at a fixed rate; latency on sampled readers, deliveries/s counted at every client
   (the writer's echo included), server and generator CPU.
2. ``rooms``: R rooms x 2 clients (a writer and a reader each): a steady phase at a total
   edit rate, then a burst of edits sent as fast as the generator can.
3. ``sync``: a document with many prior edits (typed at random positions, so it holds many
   items); fresh clients connect one after another, time until their sync step 2 is applied.
4. ``idle``: server RSS with no, then C authenticated (synced) connections spread over
   R rooms; KiB per connection; the server's CPU while they sit idle.

Every function returns a flat dict of figures (times in ms, rates per second).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pycrdt import Doc, Text

from .client import Tally, Writer, YClient, close_all, open_clients
from .targets import Running, cpu_seconds, rss_kib

__all__ = ["Settings", "fanout", "idle", "initial_sync", "percentile", "rooms"]

log = logging.getLogger(__name__)

Figures = dict[str, Any]


@dataclass
class Settings:
    """Sizes of every scenario (the defaults are issue 6's)."""

    clients: list[int] = field(default_factory=lambda: [10, 100, 500, 1000])
    edits: int = 200
    rate: float = 20.0
    sampled: int = 50
    rooms: int = 500
    steady_rate: float = 1000.0
    steady_seconds: float = 10.0
    burst: int = 10_000
    prior_edits: int = 10_000
    sync_samples: int = 10
    idle_counts: list[int] = field(default_factory=lambda: [1000, 10_000])
    idle_rooms: list[int] = field(default_factory=lambda: [1, 500])
    drain_timeout: float = 60.0
    settle: float = 2.0
    #: Seconds the server's CPU is measured while the idle connections sit still (after
    #: ``settle``): long enough to span several sweeps and revocation checks.
    idle_window: float = 10.0
    connect_concurrency: int = 64

    @classmethod
    def quick(cls) -> Settings:
        """Small sizes for a smoke test of a minute or two."""
        return cls(clients=[10, 100], edits=60, rooms=50, steady_rate=200.0,
                   steady_seconds=3.0, burst=1000, prior_edits=1000, sync_samples=5,
                   idle_counts=[100, 1000], idle_rooms=[1, 50], drain_timeout=20.0,
                   settle=1.0, idle_window=3.0)


def percentile(values: list[int] | list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..1) or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return float(ordered[index])


def _latency_figures(prefix: str, values_ns: list[int]) -> Figures:
    ms = [v / 1e6 for v in values_ns]
    return {f"{prefix}p50_ms": percentile(ms, 0.50), f"{prefix}p95_ms": percentile(ms, 0.95),
            f"{prefix}p99_ms": percentile(ms, 0.99), f"{prefix}max_ms": max(ms, default=None),
            f"{prefix}samples": len(ms)}


class Meter:
    """Server and generator CPU over a window."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.server0 = cpu_seconds(pid)
        self.generator0 = time.process_time()
        self.wall0 = time.monotonic()

    def figures(self, prefix: str = "") -> Figures:
        """CPU % of one core for the server and for the generator since creation."""
        wall = max(1e-9, time.monotonic() - self.wall0)
        return {
            f"{prefix}server_cpu_pct": 100 * (cpu_seconds(self.pid) - self.server0) / wall,
            f"{prefix}generator_cpu_pct":
                100 * (time.process_time() - self.generator0) / wall,
        }


async def _drain(tally: Tally, limit_s: float) -> None:
    """Wait until every expected delivery arrived, or ``limit_s`` seconds."""
    try:
        await asyncio.wait_for(tally.done.wait(), limit_s)
    except TimeoutError:
        log.warning("%d of %d deliveries after %.0f s; going on", tally.deliveries,
                    tally.expected, limit_s)


def _delivery_figures(prefix: str, tally: Tally) -> Figures:
    span_ns = max(1, tally.last_delivery_ns - tally.first_send_ns)
    return {
        f"{prefix}deliveries": tally.deliveries,
        f"{prefix}expected": tally.expected,
        f"{prefix}missing": max(0, tally.expected - tally.deliveries),
        f"{prefix}deliveries_per_s": tally.deliveries / (span_ns / 1e9),
        f"{prefix}span_s": span_ns / 1e9,
    }


def _health(server: Running, tally: Tally) -> Figures:
    server.check_alive()
    return {"unexpected_closes": tally.unexpected_closes, "errors": tally.errors[:5]}


async def fanout(server: Running, settings: Settings, clients: int) -> Figures:
    """One room, ``clients`` connections, one of them writing at ``settings.rate``."""
    tally = Tally()
    readers = clients - 1
    step = max(1, readers // max(1, settings.sampled))
    sampled = set(range(0, readers, step)[: settings.sampled])
    url = server.room_url(0)
    [writer_client] = await open_clients([_writer_factory(url, tally)])
    writer = Writer(writer_client)
    started = time.monotonic()
    reader_clients = await open_clients(
        [functools.partial(YClient, url, tally, sample=i in sampled) for i in range(readers)],
        concurrency=settings.connect_concurrency)
    connect_s = time.monotonic() - started
    everyone = [writer_client, *reader_clients]
    try:
        await asyncio.sleep(settings.settle)
        tally.expect(clients * settings.edits)
        meter = Meter(server.pid)
        interval = 1.0 / settings.rate
        t0 = time.monotonic()
        for n in range(settings.edits):
            delay = t0 + n * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            writer.edit(n)
        await _drain(tally, settings.drain_timeout)
        figures: Figures = {"clients": clients, "sampled_readers": len(sampled),
                            "connect_s": connect_s}
        figures |= meter.figures()
        figures |= _latency_figures("", tally.latencies_ns)
        figures |= _latency_figures("echo_", tally.echo_ns)
        figures |= _delivery_figures("", tally)
        figures |= _health(server, tally)
        return figures
    finally:
        close_all(everyone)
        await asyncio.sleep(0.2)


async def rooms(server: Running, settings: Settings) -> Figures:
    """``settings.rooms`` rooms with a writer and a reader each: steady phase, then burst."""
    count = settings.rooms
    tally = Tally()
    started = time.monotonic()
    writer_clients = await open_clients(
        [_writer_factory(server.room_url(i), tally) for i in range(count)],
        concurrency=settings.connect_concurrency)
    reader_clients = await open_clients(
        [functools.partial(YClient, server.room_url(i), tally, sample=True)
         for i in range(count)], concurrency=settings.connect_concurrency)
    figures: Figures = {"rooms": count, "connect_s": time.monotonic() - started}
    writers = [Writer(c) for c in writer_clients]
    try:
        await asyncio.sleep(settings.settle)
        # steady: a total rate, round-robin over the rooms, in 10 ms ticks
        total = int(settings.steady_rate * settings.steady_seconds)
        tally.expect(2 * total)
        meter = Meter(server.pid)
        t0 = time.monotonic()
        n = 0
        while n < total:
            due = min(total, int((time.monotonic() - t0) * settings.steady_rate) + 1)
            while n < due:
                writers[n % count].edit(n)
                n += 1
            await asyncio.sleep(0.01)
        await _drain(tally, settings.drain_timeout)
        figures |= meter.figures("steady_")
        figures |= _latency_figures("steady_", tally.latencies_ns)
        figures |= _delivery_figures("steady_", tally)
        figures["steady_rate"] = settings.steady_rate
        await asyncio.sleep(settings.settle)

        # burst: every edit built first, then sent back to back (yielding now and then so
        # the readers' frames are timestamped when they arrive, not after the last send)
        tally.reset()
        base = total  # marker numbers not used by the steady phase
        built = [(i, writers[i % count].build(base + i)) for i in range(settings.burst)]
        tally.expect(2 * settings.burst)
        meter = Meter(server.pid)
        for i, message in built:
            writers[i % count].send(base + i, message)
            if i % 100 == 99:
                await asyncio.sleep(0)
        figures["burst_send_s"] = (time.monotonic_ns() - tally.first_send_ns) / 1e9
        await _drain(tally, settings.drain_timeout)
        figures |= meter.figures("burst_")
        figures |= _latency_figures("burst_", tally.latencies_ns)
        figures |= _delivery_figures("burst_", tally)
        figures["burst_edits"] = settings.burst
        figures |= _health(server, tally)
        return figures
    finally:
        close_all([*writer_clients, *reader_clients])
        await asyncio.sleep(0.2)


async def initial_sync(server: Running, settings: Settings) -> Figures:
    """A room with ``prior_edits`` edits; fresh clients time their initial sync."""
    tally = Tally()
    url = server.room_url(0)
    [writer_client] = await open_clients([_writer_factory(url, tally)])
    writer = Writer(writer_client)
    rng = random.Random(6)
    try:
        t0 = time.monotonic()
        built = [writer.build(n, rng.randrange(len(writer.notes) + 1))
                 for n in range(settings.prior_edits)]
        build_s = time.monotonic() - t0
        tally.expect(settings.prior_edits)
        for n, message in enumerate(built):
            writer.send(n, message)
            if n % 200 == 199:
                await asyncio.sleep(0)
        await _drain(tally, settings.drain_timeout)
        prefill_s = (tally.last_delivery_ns - tally.first_send_ns) / 1e9
        expected_length = len(writer.notes)
        applied: list[float] = []
        received: list[float] = []
        complete = True
        loop = asyncio.get_running_loop()
        for k in range(settings.sync_samples):
            doc: Doc[Any] = Doc()
            fresh = YClient(url, Tally(), doc=doc)
            start = time.monotonic_ns()
            await loop.create_connection(functools.partial(_same, fresh), *_host_port(url))
            done = await asyncio.wait_for(fresh.synced, settings.drain_timeout)
            applied.append((done - start) / 1e6)
            received.append((fresh.step2_received_ns - start) / 1e6)
            if k == 0:
                complete = len(doc.get("notes", type=Text)) == expected_length
            fresh.close()
            await asyncio.sleep(0.05)
        figures: Figures = {
            "prior_edits": settings.prior_edits,
            "echoed": tally.deliveries,
            "prefill_s": prefill_s,
            "build_s": build_s,
            "complete": complete,
            "p50_ms": percentile(applied, 0.5),
            "min_ms": min(applied),
            "max_ms": max(applied),
            "received_p50_ms": percentile(received, 0.5),
            "samples": len(applied),
        }
        if not complete:
            log.warning("%s: a fresh client did not get the whole document", server.name)
        figures |= _health(server, tally)
        return figures
    finally:
        writer_client.close()
        await asyncio.sleep(0.2)


async def idle(server: Running, settings: Settings, room_count: int) -> Figures:
    """Server RSS at 0 and at each of ``settings.idle_counts`` synced connections."""
    tally = Tally()
    await asyncio.sleep(settings.settle)
    rss0 = rss_kib(server.pid)
    figures: Figures = {"rooms": room_count, "rss0_kib": rss0}
    clients: list[YClient] = []
    try:
        for target in sorted(settings.idle_counts):
            started = time.monotonic()
            factories = [functools.partial(YClient, server.room_url(i % room_count), tally)
                         for i in range(len(clients), target)]
            first = max(0, min(room_count - len(clients), len(factories)))
            # one client opens each room before the others join: pycrdt-websocket hangs
            # clients that join a room while it is still being created
            for batch in (factories[:first], factories[first:]):
                clients += await open_clients(
                    batch, concurrency=settings.connect_concurrency, within=120)
            figures[f"connect_{target}_s"] = time.monotonic() - started
            # CPU of the server while nothing happens: after the connections settled (the
            # last handshakes, authentication threads, collection), over idle_window.
            await asyncio.sleep(settings.settle)
            meter = Meter(server.pid)
            await asyncio.sleep(settings.idle_window)
            figures[f"idle_cpu_{target}_pct"] = meter.figures()["server_cpu_pct"]
            rss = rss_kib(server.pid)
            figures[f"rss_{target}_kib"] = rss
            figures[f"kib_per_conn_{target}"] = (rss - rss0) / target
        figures |= _health(server, tally)
        return figures
    finally:
        close_all(clients)
        await asyncio.sleep(0.5)


def _writer_factory(url: str, tally: Tally) -> Callable[[], YClient]:
    """A writer client (with its own pycrdt Doc) for ``url``."""
    return lambda: YClient(url, tally, doc=Doc(), writer=True)


def _same(client: YClient) -> YClient:
    return client


def _host_port(url: str) -> tuple[str, int]:
    from websockets.uri import parse_uri

    uri = parse_uri(url)
    return uri.host, uri.port
