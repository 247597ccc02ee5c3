"""The fault proxy relays bytes faithfully and injects each kind of fault on demand."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator

import pytest

from tests.faults.proxy import FaultProxy, fault_plan


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


@pytest.fixture
async def proxy() -> AsyncIterator[FaultProxy]:
    """A proxy in front of an echo server, both on 127.0.0.1."""
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    fault_proxy = FaultProxy(server.sockets[0].getsockname()[1])
    await fault_proxy.start()
    yield fault_proxy
    await fault_proxy.stop()
    server.close()
    await server.wait_closed()


async def _connect(proxy: FaultProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", proxy.port)


async def test_relays_bytes_both_ways(proxy: FaultProxy) -> None:
    """What a client sends reaches the server and the answer comes back unchanged."""
    reader, writer = await _connect(proxy)
    writer.write(b"hello" * 1000)
    assert await asyncio.wait_for(reader.readexactly(5000), 5) == b"hello" * 1000
    assert proxy.connections == 1
    writer.close()


async def test_delay_holds_every_chunk(proxy: FaultProxy) -> None:
    """With a 300 ms delay each way, an echo takes at least 600 ms and arrives intact."""
    reader, writer = await _connect(proxy)
    proxy.set_delay(300)
    started = time.monotonic()
    writer.write(b"ping")
    assert await asyncio.wait_for(reader.readexactly(4), 5) == b"ping"
    assert time.monotonic() - started >= 0.6
    assert proxy.faults["delay"] == 1
    writer.close()


async def test_drop_resets_current_connections(proxy: FaultProxy) -> None:
    """drop_all() aborts the connection: the client reads a reset or an end, never data."""
    reader, writer = await _connect(proxy)
    writer.write(b"x")
    await asyncio.wait_for(reader.readexactly(1), 5)
    assert proxy.drop_all() == 1
    try:
        data = await asyncio.wait_for(reader.read(10), 5)
    except ConnectionResetError:
        data = b""
    assert data == b""
    writer.close()


async def test_cut_closes_current_connections(proxy: FaultProxy) -> None:
    """cut_all() closes the connection: the client reads end of stream."""
    reader, writer = await _connect(proxy)
    writer.write(b"x")
    await asyncio.wait_for(reader.readexactly(1), 5)
    assert proxy.cut_all() == 1
    assert await asyncio.wait_for(reader.read(10), 5) == b""
    writer.close()


async def test_blackhole_holds_bytes_until_healed(proxy: FaultProxy) -> None:
    """In a black hole nothing is relayed; once healed the held bytes arrive in order."""
    reader, writer = await _connect(proxy)
    proxy.blackhole(True)
    writer.write(b"abc")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.readexactly(3), 0.5)
    proxy.blackhole(False)
    assert await asyncio.wait_for(reader.readexactly(3), 5) == b"abc"
    assert proxy.faults["blackhole"] == 1
    writer.close()


async def test_upstream_down_resets_the_client(proxy: FaultProxy) -> None:
    """When nothing listens upstream, the proxy resets the client's connection."""
    proxy.upstream_port = 1  # nothing listens on port 1 of 127.0.0.1
    reader, writer = await _connect(proxy)
    try:
        data = await asyncio.wait_for(reader.read(10), 5)
    except ConnectionResetError:
        data = b""
    assert data == b""
    writer.close()


def test_fault_plan_is_reproducible_from_the_seed() -> None:
    """The same seed gives the same faults; another seed gives others."""
    first = list(itertools.islice(fault_plan(7), 50))
    assert first == list(itertools.islice(fault_plan(7), 50))
    assert first != list(itertools.islice(fault_plan(8), 50))
    assert {f.kind for f in first} == {"delay", "drop", "cut", "blackhole"}


async def test_schedule_injects_faults_and_ends_healed(proxy: FaultProxy) -> None:
    """schedule() plays the plan until stopped and leaves the network healthy."""
    stop = asyncio.Event()
    task = asyncio.create_task(proxy.schedule(3, stop, mean_gap=0.01, dead_after=0.2))
    async with asyncio.timeout(30):
        while len(proxy.history) < 3:
            proxy.injected.clear()
            await proxy.injected.wait()
    stop.set()
    await task
    assert sum(proxy.faults.values()) >= 3
    assert proxy.delay_ms == 0
    reader, writer = await _connect(proxy)
    writer.write(b"ok")
    assert await asyncio.wait_for(reader.readexactly(2), 5) == b"ok"
    writer.close()
