"""Benchmark: the server on SQLite, on Postgres, and as three Postgres nodes (issue 12 §6).

Starts real server processes (``liveedit server serve``) on a temporary SQLite file and on
a throwaway Postgres cluster (tests/cluster/pg.py, fsync on), HAProxy from
docs/deploy/haproxy.cfg for the failover run, and real WebSocket clients; prints figures
(never asserts):

1. durable acked updates/s: C clients each send M updates to their own customer, on
   SQLite (one node), Postgres (one node) and Postgres (three nodes, clients spread);
2. delivery latency, 100 clients spread over three nodes, ten per customer: send-to-
   receive time of each update, to subscribers on the writer's node and on other nodes
   (p50/p99 each);
3. failover: N clients through HAProxy over three nodes, each with one acked edit; one
   node is killed with SIGKILL; time until every client it held has resumed its session on
   another node (p50/p99/max), then every acked edit is checked on the survivors.

Usage: .venv/bin/python bench/cluster.py [--clients 10] [--per-client 1000]
       [--failover-clients 500]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import secrets
import statistics
import subprocess
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
sys.path.insert(0, str(ROOT / "bench"))

from server_acks import connect, send_and_wait, subscribe  # noqa: E402

from bench.shared import PASSWORD, make_updates, start_server  # noqa: E402
from sync.protocol import document  # noqa: E402
from sync.protocol.messages import (  # noqa: E402
    PROTOCOL_VERSION,
    Ack,
    Authenticate,
    RemoteUpdate,
    Update,
    Welcome,
    customer_doc_id,
    decode,
    encode,
)
from tests.cluster.haproxy import HAProxy  # noqa: E402
from tests.cluster.pg import PostgresCluster  # noqa: E402

TUNING = ["--log-level", "warning", "--rate-limit", "100000", "--rate-burst", "100000",
          "--max-authenticating", "1000"]


class Node:
    """One server process."""

    def __init__(self, db: str, name: str) -> None:
        self.proc, self.url = start_server(db, "--node-id", name, *TUNING)
        self.port = int(self.url.rsplit(":", 1)[1])
        self.ws_url = self.url.replace("http", "ws") + "/ws"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def add_user(db: str) -> None:
    from sync.server.auth import AuthService, Role

    with AuthService(db) as auth:
        auth.add_user("bench", PASSWORD, Role.REP)


async def bench_database(cluster: PostgresCluster, name: str) -> str:
    """The URL of a new database ``name`` on ``cluster``, migrated, with the bench account."""
    from sync.server.storage.postgres.schema import migrate_database

    url = cluster.dsn(cluster.create_database(name))
    await migrate_database(url)
    add_user(url)
    return url


def token_of(base: str) -> str:
    response = httpx.post(f"{base}/auth/login", timeout=30,
                          json={"username": "bench", "password": PASSWORD})
    response.raise_for_status()
    return str(response.json()["access_token"])


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


# -- 1. durable acked updates per second -------------------------------------------------


async def throughput(nodes: list[Node], clients: int, per_client: int) -> float:
    token = token_of(nodes[0].url)
    work = []
    for i in range(clients):
        ws = await connect(nodes[i % len(nodes)].ws_url, token)
        doc_id = customer_doc_id(str(uuid.uuid4()))
        await subscribe(ws, [doc_id])
        work.append((ws, [(doc_id, u) for u in make_updates(per_client)]))
    started = time.perf_counter()
    await asyncio.gather(*(send_and_wait(ws, items) for ws, items in work))
    elapsed = time.perf_counter() - started
    for ws, _ in work:
        await ws.close()
    return clients * per_client / elapsed


# -- 2. same-node vs cross-node delivery latency ------------------------------------------


async def latency(nodes: list[Node], clients: int = 100, docs: int = 10,
                  rounds: int = 20) -> tuple[list[float], list[float]]:
    """Send-to-receive times of updates to subscribers on the writer's node and on others.

    Each update is recognised by the sequence number its writer's Ack carries (the update
    a subscriber gets is the one the server integrated, re-encoded)."""
    token = token_of(nodes[0].url)
    sent: dict[tuple[int, int], tuple[float, int]] = {}  # (writer, ref) -> (time, node)
    acked: dict[tuple[int, int], int] = {}  # (writer, ref) -> seq
    arrivals: list[tuple[int, float, int]] = []  # (seq, time, receiver's node)
    members: list[tuple[Any, int, str]] = []
    for i in range(clients):
        node = i % len(nodes)
        ws = await connect(nodes[node].ws_url, token)
        members.append((ws, node, customer_doc_id(f"00000000-0000-4000-8000-{i % docs:012d}")))
    for ws, _, doc_id in members:
        await subscribe(ws, [doc_id])

    async def read(index: int, ws: Any, node: int) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for frame in ws:
                message = decode(frame)
                if isinstance(message, RemoteUpdate):
                    arrivals.append((message.seq, time.perf_counter(), node))
                elif isinstance(message, Ack):
                    acked[(index, message.ref)] = message.seq

    readers = [asyncio.create_task(read(i, ws, node))
               for i, (ws, node, _) in enumerate(members)]
    for r in range(rounds):
        for d in range(docs):
            writer = (r * docs + d) % clients
            writer_ws, writer_node, doc_id = members[writer]
            doc = document.new_document()  # a fresh writer: depends on nobody's changes
            updates: list[bytes] = []
            sub = doc.observe(lambda event, out=updates: out.append(event.update))
            document.set_fields(doc, {"name": f"Round {r}"})
            del sub
            sent[(writer, r + 1)] = (time.perf_counter(), writer_node)
            await writer_ws.send(encode(Update(doc_id, r + 1, updates[-1])))
        await asyncio.sleep(0.05)  # pacing: measure delivery, not a queue
    await asyncio.sleep(1.0)  # the last round's deliveries
    for task in readers:
        task.cancel()
    for ws, _, _ in members:
        await ws.close()
    origin = {seq: sent[key] for key, seq in acked.items() if key in sent}
    same: list[float] = []
    cross: list[float] = []
    for seq, arrived, node in arrivals:
        if seq in origin:
            at, writer_node = origin[seq]
            (same if writer_node == node else cross).append(arrived - at)
    return same, cross


# -- 3. failover -----------------------------------------------------------------------


async def open_session(url: str, token: str, session_id: str) -> tuple[Any, Welcome]:
    ws = await websockets.connect(url, max_size=None, open_timeout=10)
    await ws.send(encode(Authenticate((PROTOCOL_VERSION,), token, session_id, "bench")))
    message = decode(await ws.recv())
    if not isinstance(message, Welcome):
        await ws.close()
        raise ConnectionError(f"refused: {message}")
    return ws, message


async def acked_client(url: str, token: str, i: int) -> dict[str, Any]:
    """A client with its own session and customer, whose one edit is acked."""
    session_id = f"failover-{i}-{secrets.token_hex(4)}"
    ws, _ = await open_session(url, token, session_id)
    doc_id = customer_doc_id(str(uuid.uuid4()))
    await subscribe(ws, [doc_id])
    value = f"acked {i}"
    doc = document.new_document()
    updates: list[bytes] = []
    sub = doc.observe(lambda event: updates.append(event.update))
    document.set_fields(doc, {"name": value})
    del sub
    await ws.send(encode(Update(doc_id, 1, updates[-1])))
    while not isinstance(decode(await ws.recv()), Ack):
        pass
    return {"ws": ws, "session": session_id, "doc": doc_id, "value": value}


async def failover(nodes: list[Node], proxy: HAProxy, count: int) -> None:
    token = token_of(nodes[0].url)
    clients: list[dict[str, Any]] = []

    for chunk in range(0, count, 50):
        clients += await asyncio.gather(*(
            acked_client(proxy.ws_url, token, i) for i in range(chunk, min(count, chunk + 50))))
    victim = nodes[0]
    killed_at = time.perf_counter()
    victim.proc.kill()
    victim.proc.wait()

    resumed: list[float] = []

    async def watch(client: dict[str, Any]) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for _ in client["ws"]:
                pass
        client["dropped"] = True
        # The connection dropped: reconnect through HAProxy until the session resumes.
        while True:
            try:
                ws, welcome = await open_session(proxy.ws_url, token, client["session"])
            except (OSError, ConnectionError, websockets.InvalidStatus,
                    websockets.ConnectionClosed, TimeoutError):
                await asyncio.sleep(0.2 + random.random() * 0.3)  # client backoff
                continue
            if not welcome.resumed or client["doc"] not in welcome.subscriptions:
                print(f"  session {client['session']} came back without its subscriptions")
            resumed.append(time.perf_counter() - killed_at)
            client["ws"] = ws
            return

    # Clients of the surviving nodes never drop: wait until every dropped one resumed.
    watchers = [asyncio.create_task(watch(c)) for c in clients]
    last_len, last_change = 0, time.perf_counter()
    while time.perf_counter() - killed_at < 60:
        await asyncio.sleep(0.2)
        now = time.perf_counter()
        if len(resumed) != last_len:
            last_len, last_change = len(resumed), now
        dropped = sum(1 for c in clients if c.get("dropped"))
        if dropped and len(resumed) == dropped and now - last_change > 2:
            break
    moved = sum(1 for c in clients if c.get("dropped"))
    for w in watchers:
        w.cancel()
    lost = 0
    survivor = nodes[1].url
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=survivor, timeout=30, headers=auth) as http:
        for client in clients:
            body = (await http.get(f"/customers/{client['doc'].partition(':')[2]}")).json()
            lost += body.get("name") != client["value"]
    if resumed:
        print(f"failover: killed 1 of 3 nodes holding {moved} of {count} clients; "
              f"{len(resumed)} resumed on another node: "
              f"p50 {statistics.median(resumed):.2f} s, p99 "
              f"{percentile(resumed, 0.99):.2f} s, max {max(resumed):.2f} s; "
              f"acked edits lost: {lost} of {count}")
    else:
        print(f"failover: no client was on the killed node; acked edits lost: {lost}")
    for client in clients:
        with contextlib.suppress(Exception):
            await client["ws"].close()


# -- the run ---------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> None:
    cluster = PostgresCluster(fsync=True)
    cluster.start()
    tmp = tempfile.TemporaryDirectory()
    started: list[Node] = []
    try:
        sqlite_db = str(Path(tmp.name) / "bench.db")
        add_user(sqlite_db)
        started.append(node := Node(sqlite_db, "sqlite"))
        sqlite_rate = await throughput([node], args.clients, args.per_client)
        node.stop()

        single_url = await bench_database(cluster, "single")
        started.append(node := Node(single_url, "pg1"))
        pg_rate = await throughput([node], args.clients, args.per_client)
        node.stop()

        three_url = await bench_database(cluster, "three")
        three = [Node(three_url, f"node{i}") for i in (1, 2, 3)]
        started += three
        three_rate = await throughput(three, args.clients, args.per_client)
        print(f"durable acked updates/s ({args.clients} clients x {args.per_client}): "
              f"SQLite 1 node {sqlite_rate:,.0f}; Postgres 1 node {pg_rate:,.0f} "
              f"({pg_rate / sqlite_rate:.2f}x SQLite); Postgres 3 nodes {three_rate:,.0f} "
              f"({three_rate / sqlite_rate:.2f}x SQLite)")

        same, cross = await latency(three)
        if same and cross:
            print(f"delivery, 100 clients over 3 nodes: same node p50 "
                  f"{statistics.median(same) * 1000:.1f} ms p99 {percentile(same, 0.99) * 1000:.1f}"
                  f" ms ({len(same)}); other node p50 {statistics.median(cross) * 1000:.1f} ms "
                  f"p99 {percentile(cross, 0.99) * 1000:.1f} ms ({len(cross)}); p99 ratio "
                  f"{percentile(cross, 0.99) / percentile(same, 0.99):.2f}")

        proxy = HAProxy([("127.0.0.1", n.port) for n in three])
        proxy.start()
        try:
            proxy.wait_for({"node1": "UP", "node2": "UP", "node3": "UP"}, timeout=30)
            await failover(three, proxy, args.failover_clients)
        finally:
            proxy.stop()
    finally:
        for node in started:
            node.stop()
        cluster.remove()
        tmp.cleanup()


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--per-client", type=int, default=1000)
    parser.add_argument("--failover-clients", type=int, default=500)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
