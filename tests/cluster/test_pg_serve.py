"""``liveedit server serve --db postgresql://…``: a Postgres outage, the shared login
throttle, and the account commands on a URL (the rest runs in tests/integration with
``both_engines``)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sync.protocol.errors import CloseCode, ErrorCode
from sync.protocol.messages import Ack, Error, Update, customer_doc_id
from tests.integration.conftest import ServerHandle, StartedServers, scaled
from tests.integration.test_server_sync import join
from tests.integration.wire import WireClient, eventually

from .pg import PostgresCluster


@pytest.fixture
def pg_servers(pg_dsn: str) -> Iterator[Any]:
    """Start server nodes on the test's Postgres database; all killed at the end."""
    servers = StartedServers()

    def make(*extra_args: str) -> ServerHandle:
        return servers.start(pg_dsn, extra_args)

    yield make
    servers.kill_all()


def _ready(server: ServerHandle) -> int:
    return httpx.get(f"{server.http_url}/readyz", timeout=scaled(5)).status_code


async def test_a_node_that_loses_postgres_stops_acking_refuses_and_recovers(
    pg_cluster: PostgresCluster, pg_servers: Any,
) -> None:
    """Postgres stopped: no Ack (closed for resync), /readyz 503, new /ws refused with
    retry_after; back: the node recovers by itself and the next update is acked."""
    server = pg_servers()
    server.add_user("alex")
    client = await WireClient.connect(server.ws_url, server.token("alex"))
    doc_id = customer_doc_id(str(uuid.uuid4()))
    replica = await join(client, doc_id)
    await client.send(Update(doc_id, 1, replica.set(name="before")))
    await client.expect(Ack, lambda m: m.ref == 1)
    pg_cluster.stop()
    try:
        await client.send(Update(doc_id, 2, replica.set(name="during")))
        # The room is dropped and its subscribers told to resync (1013); never an Ack.
        code, _ = await client.wait_closed(timeout=20)
        assert code == CloseCode.TRY_AGAIN_LATER
        assert [m.ref for m in client.received(Ack)] == []
        await eventually(lambda: _ready(server) == 503, timeout=10)
        refused = await WireClient.connect(server.ws_url)
        busy = await refused.expect(Error)
        assert busy.code == ErrorCode.SERVER_BUSY and busy.retry_after is not None
        assert "database" in busy.message
        code, _ = await refused.wait_closed()
        assert code == CloseCode.TRY_AGAIN_LATER
    finally:
        pg_cluster.start()
    # Under a loaded CI machine Postgres may take a while to accept connections again, and
    # the bus listener retries with up to 5 s of backoff.
    try:
        await eventually(lambda: _ready(server) == 200, timeout=40)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the node's log:\n" + "\n".join(server.output[-60:])) from None
    again = await WireClient.connect(server.ws_url, server.token("alex"))
    fresh = await join(again, doc_id)
    assert fresh.fields()["name"] == "before"
    await again.send(Update(doc_id, 1, fresh.set(name="after")))
    ack = await again.expect(Ack, lambda m: m.ref == 1)
    assert ack.seq >= 2


def test_failed_logins_on_one_node_lock_the_account_on_the_other(pg_servers: Any) -> None:
    """The login throttle lives in Postgres: 5 failures on node 1, node 2 answers 429."""
    one, two = pg_servers(), pg_servers()
    one.add_user("alex")
    for _ in range(5):
        wrong = httpx.post(f"{one.http_url}/auth/login", timeout=scaled(10),
                           json={"username": "alex", "password": "not the password"})
        assert wrong.status_code == 401
    locked = httpx.post(f"{two.http_url}/auth/login", timeout=scaled(10),
                        json={"username": "alex", "password": "correct horse battery"})
    assert locked.status_code == 429, locked.text


def _refresh(server: ServerHandle, refresh_token: str) -> httpx.Response:
    """POST /auth/refresh with ``refresh_token`` to ``server``."""
    return httpx.post(f"{server.http_url}/auth/refresh", json={"refresh_token": refresh_token},
                      timeout=scaled(10))


def test_a_refresh_token_replayed_on_another_node_revokes_its_family(pg_servers: Any) -> None:
    """Rotate on node 1, replay the old token on node 2: refused, and the family with it."""
    one, two = pg_servers(), pg_servers()
    one.add_user("alex")
    first = one.login("alex")["refresh_token"]
    rotated = _refresh(one, first)
    assert rotated.status_code == 200
    second = rotated.json()["refresh_token"]
    # Past the grace of a lost answer, a second use of ``first`` is a replay.
    second_use = _refresh(two, second)
    assert second_use.status_code == 200
    replay = _refresh(two, first)
    assert replay.status_code == 401
    newest = second_use.json()["refresh_token"]
    after = _refresh(one, newest)
    assert after.status_code == 401, "the replay should have revoked the whole family"


def test_account_commands_take_a_postgres_url(pg_dsn: str) -> None:
    """user add, list, disable, set-role and passwd work on --db postgresql://…"""

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "liveedit", "server", *args, "--db", pg_dsn],
            capture_output=True, text=True, timeout=scaled(60), input=stdin, check=False,
        )

    added = run("user", "add", "alex", "--role", "rep", "--password-stdin",
                stdin="correct horse battery\n")
    assert added.returncode == 0, added.stderr
    assert run("user", "add", "alex", "--role", "rep", "--password-stdin",
               stdin="correct horse battery\n").returncode == 1
    assert run("user", "disable", "alex").returncode == 0
    customer = str(uuid.uuid4())
    assert run("user", "set-role", "alex", "--role", "customer",
               "--customer", customer).returncode == 0, "set-role"
    assert run("user", "passwd", "alex", "--password-stdin",
               stdin="another good password\n").returncode == 0
    listing = run("user", "list")
    assert listing.returncode == 0, listing.stderr
    assert "alex" in listing.stdout and "disabled" in listing.stdout
    assert customer in listing.stdout


def test_demo_data_into_postgres_is_served_and_searchable(pg_dsn: str, pg_servers: Any) -> None:
    """demo-data --db postgresql://… imports customers a node then lists and finds."""
    result = subprocess.run(
        [sys.executable, "-m", "liveedit", "server", "demo-data", "--customers", "30",
         "--db", pg_dsn], capture_output=True, text=True, timeout=scaled(60), check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "imported 30 customers" in result.stdout
    again = subprocess.run(
        [sys.executable, "-m", "liveedit", "server", "demo-data", "--customers", "30",
         "--db", pg_dsn], capture_output=True, text=True, timeout=scaled(60), check=False,
    )
    assert again.returncode == 2 and "already exist" in again.stderr
    server = pg_servers()
    server.add_user("alex")
    http = httpx.Client(base_url=server.http_url, timeout=scaled(10),
                        headers={"Authorization": f"Bearer {server.token('alex')}"})
    feed = http.get("/directory", params={"limit": 100}).json()
    assert len(feed["entries"]) == 30
    name = feed["entries"][0]["name"]
    found = http.get("/customers", params={"q": name.split()[0]}).json()
    assert any(item["name"] == name for item in found["items"])
