"""A fault-injecting TCP relay on 127.0.0.1, between sync clients and the server.

:class:`FaultProxy` accepts connections on a port of its own and relays each one, byte for
byte, to the upstream server. While it runs, the test can make the network misbehave:

- ``set_delay(ms)``: every chunk is held this long before it is passed on (order kept);
- ``drop_all()``: every current connection is aborted (RST) on both sides;
- ``cut_all()``: every current connection is closed (FIN) on both sides, mid-stream;
- ``blackhole(True)``: nothing is relayed in either direction any more (new connections
  are accepted but get nothing either), as in a network partition: bytes wait in the
  proxy like unacknowledged TCP segments, and flow again when the hole closes — unless a
  peer gave up on the link meanwhile (the client's ``dead_after``), which it then learns.

``schedule(seed, stop)`` plays :func:`fault_plan` (a pure, seeded sequence) until ``stop``
is set; ``faults`` counts what was injected, by kind. A TCP stream never loses bytes in the
middle, so neither does the proxy: a fault either delays bytes or ends the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = ["Fault", "FaultProxy", "fault_plan"]

log = logging.getLogger(__name__)

_CHUNK = 65536
_EOF = b""


@dataclass(eq=False)
class _Relay:
    """One proxied connection: client side, upstream side and its two pumps."""

    client_reader: asyncio.StreamReader
    client_writer: asyncio.StreamWriter
    upstream_writer: asyncio.StreamWriter | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def abort(self) -> None:
        """RST both sides and stop pumping."""
        for writer in (self.client_writer, self.upstream_writer):
            if writer is not None:
                writer.transport.abort()
        for task in self.tasks:
            task.cancel()

    def close(self) -> None:
        """FIN both sides and stop pumping."""
        for writer in (self.client_writer, self.upstream_writer):
            if writer is not None:
                writer.close()
        for task in self.tasks:
            task.cancel()


class FaultProxy:
    """An asyncio TCP relay to ``upstream_host:upstream_port`` with fault controls."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.port = 0
        self.delay_ms = 0
        self.connections = 0
        self.faults: Counter[str] = Counter()
        self.history: list[str] = []  # kinds injected by schedule(), in order
        self.injected = asyncio.Event()  # set whenever schedule() injects a fault
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._relays: set[_Relay] = set()
        self._server: asyncio.Server | None = None

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> int:
        """Listen on a free port of 127.0.0.1 (bound by the OS); returns it."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        """Stop listening and abort every connection."""
        if self._server is not None:
            self._server.close()
        for relay in list(self._relays):
            relay.abort()
        self._relays.clear()
        if self._server is not None:
            await self._server.wait_closed()

    # --- fault controls --------------------------------------------------------------------

    def set_delay(self, ms: int) -> None:
        """Hold every chunk ``ms`` milliseconds before passing it on (0: no delay)."""
        self.delay_ms = max(0, ms)
        if ms:
            self.faults["delay"] += 1

    def drop_all(self) -> int:
        """Abort (RST) every current connection; returns how many."""
        relays = list(self._relays)
        for relay in relays:
            relay.abort()
        self._relays.clear()
        self.faults["drop"] += 1
        return len(relays)

    def cut_all(self) -> int:
        """Close (FIN) every current connection mid-stream; returns how many."""
        relays = list(self._relays)
        for relay in relays:
            relay.close()
        self._relays.clear()
        self.faults["cut"] += 1
        return len(relays)

    def blackhole(self, on: bool) -> None:
        """Relay nothing (``True``) until called with ``False``."""
        if on and self._flowing.is_set():
            self.faults["blackhole"] += 1
            self._flowing.clear()
        elif not on:
            self._flowing.set()

    def heal(self) -> None:
        """No delay, no black hole: a healthy network from now on."""
        self.delay_ms = 0
        self._flowing.set()

    async def schedule(self, seed: int, stop: asyncio.Event, *,
                       mean_gap: float = 3.0, dead_after: float = 5.0) -> None:
        """Inject the faults of :func:`fault_plan` until ``stop`` is set; ends healed."""
        try:
            for fault in fault_plan(seed, mean_gap=mean_gap, dead_after=dead_after):
                if await _wait(stop, fault.gap):
                    break
                log.info("fault: %s", fault)
                self.history.append(fault.kind)
                self.injected.set()
                if fault.kind == "delay":
                    self.set_delay(fault.ms)
                    await _wait(stop, fault.seconds)
                    self.set_delay(0)
                elif fault.kind == "drop":
                    self.drop_all()
                elif fault.kind == "cut":
                    self.cut_all()
                else:
                    self.blackhole(True)
                    await _wait(stop, fault.seconds)
                    self.blackhole(False)
        finally:
            self.heal()

    # --- relaying ----------------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        relay = _Relay(reader, writer)
        self._relays.add(relay)
        try:
            up_reader, up_writer = await asyncio.open_connection(
                self.upstream_host, self.upstream_port)
        except OSError:
            writer.transport.abort()  # the server is down: the client sees a reset
            self._relays.discard(relay)
            return
        relay.upstream_writer = up_writer
        if relay not in self._relays:  # dropped while connecting
            up_writer.transport.abort()
            return
        relay.tasks = [
            asyncio.create_task(self._pump(reader, up_writer, relay)),
            asyncio.create_task(self._pump(up_reader, writer, relay)),
        ]

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    relay: _Relay) -> None:
        """Read from one side and hand chunks, delayed and gated, to the other side."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        sender = asyncio.create_task(self._send(queue, writer, relay))
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    data = await reader.read(_CHUNK)
                except (ConnectionError, OSError):
                    data = _EOF
                queue.put_nowait((loop.time() + self.delay_ms / 1000, data))
                if not data:
                    break
            await sender
        finally:
            sender.cancel()

    async def _send(self, queue: asyncio.Queue[tuple[float, bytes]],
                    writer: asyncio.StreamWriter, relay: _Relay) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)  # the injected latency itself
            await self._flowing.wait()
            if not data:  # the other side ended: end this side too, and forget the relay
                self._relays.discard(relay)
                with contextlib.suppress(OSError, RuntimeError):
                    writer.close()
                return
            try:
                writer.write(data)
                await writer.drain()
            except (ConnectionError, OSError):
                self._relays.discard(relay)
                relay.abort()
                return


@dataclass(frozen=True)
class Fault:
    """One scheduled fault: after ``gap`` healthy seconds, ``kind`` for ``seconds``."""

    gap: float
    kind: str
    seconds: float = 0.0
    ms: int = 0


def fault_plan(seed: int, *, mean_gap: float = 3.0, dead_after: float = 5.0) -> Iterator[Fault]:
    """The endless fault sequence of a seed (pure: the same seed, the same faults).

    Healthy gaps are exponentially distributed; a delay of 20-600 ms lasts 1-4 s; a black
    hole lasts 0.5 s to 1.6 x ``dead_after``, so some outlast the clients' dead-link timer.
    """
    rng = random.Random(seed)
    while True:
        gap = rng.expovariate(1.0 / mean_gap)
        kind = rng.choices(("delay", "drop", "cut", "blackhole"), (3, 2, 2, 2))[0]
        if kind == "delay":
            yield Fault(gap, kind, rng.uniform(1.0, 4.0), rng.randint(20, 600))
        elif kind == "blackhole":
            yield Fault(gap, kind, rng.uniform(0.5, dead_after * 1.6))
        else:
            yield Fault(gap, kind)


async def _wait(stop: asyncio.Event, seconds: float) -> bool:
    """Wait ``seconds`` or until ``stop`` is set; True if it was set."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return False
    return True
