"""HAProxy from docs/deploy/haproxy.cfg in front of real server nodes."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import ServerHandle
from tests.integration.wire import WireClient

from .haproxy import HAProxy
from .waiting import scaled


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[list[ServerHandle]]:
    """Two real server processes (each on its own SQLite file for now); killed after."""
    handles = [ServerHandle(tmp_path / f"node{i}.db") for i in (1, 2)]
    for handle in handles:
        handle.start()
        handle.add_user("alex")
    yield handles
    for handle in handles:
        handle.kill()


async def test_websocket_through_haproxy_and_a_dead_node_taken_out(
    nodes: list[ServerHandle],
    haproxy_factory: Callable[[Sequence[tuple[str, int]]], HAProxy],
) -> None:
    """Sample config: /ws passes, /metrics denied, a node drains, a killed one goes DOWN."""
    proxy = haproxy_factory([("127.0.0.1", node.port) for node in nodes])
    proxy.wait_for({"node1": "UP", "node2": "UP"}, timeout=scaled(20))
    async with httpx.AsyncClient(base_url=proxy.http_url, timeout=scaled(10)) as http:
        assert (await http.get("/readyz")).json()["status"] == "ready"
        assert (await http.get("/metrics")).status_code == 404
    # Drain node2 as a rolling upgrade would: new connections go to node1 only. (The two
    # nodes have separate databases and signing keys here, so a token names its node.)
    proxy.admin("set server nodes/node2 state maint")
    proxy.wait_for({"node2": "MAINT"})
    client = await WireClient.connect(proxy.ws_url, nodes[0].token("alex"))
    assert client.welcome is not None
    await client.ws.close()
    proxy.admin("set server nodes/node2 state ready")
    proxy.wait_for({"node2": "UP"})

    nodes[0].kill()
    proxy.wait_for({"node1": "DOWN", "node2": "UP"}, timeout=scaled(20))
    async with httpx.AsyncClient(base_url=proxy.http_url, timeout=scaled(10)) as http:
        for _ in range(4):
            assert (await http.get("/readyz")).status_code == 200
    client = await WireClient.connect(proxy.ws_url, nodes[1].token("alex"))
    assert client.welcome is not None
    await client.ws.close()
