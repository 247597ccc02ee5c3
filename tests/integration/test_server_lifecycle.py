"""Running the server: clean stop, one server per database, TLS, idle and rate limits."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import trustme
import websockets

from sync.protocol.connection import ClientProtocol
from sync.protocol.errors import CloseCode
from sync.protocol.messages import Heartbeat, HeartbeatAck, Presence, PresenceChanged, Welcome

from .conftest import DEFAULT_PASSWORD, ServerHandle, scaled
from .test_server_sync import join, new_doc_id, rep
from .wire import WireClient


def test_sigterm_stops_cleanly_with_exit_0(server: ServerHandle) -> None:
    """SIGTERM shuts the server down gracefully and it exits 0."""
    assert server.stop() == 0


def test_second_server_on_same_database_is_refused(server: ServerHandle) -> None:
    """A second server on the same database gets one clear error line, exit 2."""
    result = subprocess.run(
        [sys.executable, "-m", "liveedit", "server", "serve", "--db", str(server.db_path),
         "--port", "0"],
        check=False, capture_output=True, text=True, timeout=scaled(30),
    )
    assert result.returncode == 2
    assert "another Live Edit server" in result.stderr
    assert "Traceback" not in result.stderr


async def test_tls_serves_https_and_wss(server_factory: Any, tmp_path: Path) -> None:
    """With --tls-cert/--tls-key the server speaks https and wss only."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    server = server_factory("--tls-cert", str(cert_file), "--tls-key", str(key_file))
    assert any("listening on https://" in line for line in server.output)
    server.add_user("alex")
    context = ssl.create_default_context()
    ca.configure_trust(context)
    url = f"https://127.0.0.1:{server.port}"
    async with httpx.AsyncClient(verify=context) as http:
        login = await http.post(f"{url}/auth/login",
                                json={"username": "alex", "password": DEFAULT_PASSWORD})
    token = login.json()["access_token"]
    ws = await websockets.connect(f"wss://127.0.0.1:{server.port}/ws", ssl=context)
    protocol = ClientProtocol()
    protocol.start(token, "tls-session-1")
    for frame in protocol.data_to_send():
        await ws.send(frame)
    protocol.receive_data(await ws.recv())  # type: ignore[arg-type]
    assert isinstance(protocol.events_received()[0], Welcome)
    await ws.close()


async def test_silent_connection_is_closed_and_its_presence_expires(
    server_factory: Any,
) -> None:
    """A client that stops sending is closed with 4009 and its presence is withdrawn."""
    server = server_factory("--idle-timeout", "2")
    doc_id = new_doc_id()
    silent, watcher = await rep(server, "alex"), await rep(server, "sam")
    await join(silent, doc_id)
    await join(watcher, doc_id)
    await silent.send(Presence(doc_id, {"field": "name"}))
    await watcher.expect(PresenceChanged, lambda m: m.state is not None)

    async def keep_alive() -> None:
        for nonce in range(100):
            await watcher.send(Heartbeat(nonce))
            await watcher.expect(HeartbeatAck)
            await asyncio.sleep(0.5)  # the client's heartbeat cadence, not synchronisation

    beat = asyncio.create_task(keep_alive())
    code, _ = await silent.wait_closed(timeout=10)
    assert code == CloseCode.HEARTBEAT_TIMEOUT
    gone = await watcher.expect(PresenceChanged, lambda m: m.state is None)
    assert gone.user == "alex"
    beat.cancel()


async def test_flooding_client_is_closed_others_keep_working(server_factory: Any) -> None:
    """Past the rate limit a connection is closed with 4008; another is unaffected."""
    server = server_factory("--rate-limit", "5", "--rate-burst", "20")
    flooder, calm = await rep(server, "alex"), await rep(server, "sam")
    for nonce in range(200):
        try:
            await flooder.send(Heartbeat(nonce))
        except websockets.ConnectionClosed:
            break
    code, _ = await flooder.wait_closed()
    assert code == CloseCode.RATE_LIMITED
    await calm.send(Heartbeat(1))
    assert (await calm.expect(HeartbeatAck)).nonce == 1


async def test_unauthenticated_flood_does_not_block_authenticated_clients(
    server: ServerHandle,
) -> None:
    """200 connections that never authenticate are all closed; a real client still works."""
    idle = [await WireClient.connect(server.ws_url) for _ in range(200)]
    good = await rep(server, "alex")
    await good.send(Heartbeat(7))
    assert (await good.expect(HeartbeatAck)).nonce == 7
    codes = await asyncio.gather(*(c.wait_closed(timeout=15) for c in idle))
    assert {code for code, _ in codes} == {CloseCode.AUTH_TIMEOUT}


async def test_disabling_a_user_closes_its_connections(server: ServerHandle) -> None:
    """`liveedit server user disable` closes the user's open connections with 4006."""
    alex = await rep(server, "alex")
    sam = await rep(server, "sam")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "liveedit", "server", "user", "disable", "alex",
        "--db", str(server.db_path), stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), scaled(30))
    assert process.returncode == 0, stderr
    code, _ = await alex.wait_closed(timeout=10)
    assert code == CloseCode.ACCESS_REVOKED
    await sam.send(Heartbeat(3))
    assert (await sam.expect(HeartbeatAck)).nonce == 3


def test_repeated_wrong_passwords_are_throttled(server: ServerHandle) -> None:
    """After repeated failures login answers 429 with Retry-After, even with the right
    password."""
    server.add_user("alex")
    statuses = []
    with httpx.Client(base_url=server.http_url, timeout=10) as http:
        for _ in range(6):
            statuses.append(http.post("/auth/login", json={"username": "alex",
                                                           "password": "wrong password"}))
        blocked = http.post("/auth/login", json={"username": "alex",
                                                 "password": DEFAULT_PASSWORD})
    assert [r.status_code for r in statuses[:5]] == [401] * 5
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) >= 1
    assert "try again" in blocked.json()["message"].lower()
