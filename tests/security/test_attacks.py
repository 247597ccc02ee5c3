"""Attackers against the real server on 127.0.0.1: forged and expired tokens, replayed
refresh tokens, password guessing, a customer user reaching for another account by every
route, SQL injection, path tricks in file arguments, revocation and connection floods."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from sync.protocol.connection import ClientProtocol
from sync.protocol.errors import CloseCode, ErrorCode
from sync.protocol.messages import (
    PROTOCOL_VERSION,
    Authenticate,
    DirectoryPage,
    DirectorySubscribe,
    Error,
    Heartbeat,
    HeartbeatAck,
    Notifications,
    Presence,
    ReadNotifications,
    RenewToken,
    Subscribe,
    Subscribed,
    SyncStep1,
    Update,
    Welcome,
    customer_doc_id,
    encode,
)
from tests.integration.conftest import ServerHandle, scaled
from tests.integration.test_server_sync import Replica, join
from tests.integration.wire import WireClient

SQL_NAMES = ["'); DROP TABLE users; --", "Robert'); DROP TABLE directory;--",
             "x' OR '1'='1", 'quote " and \\ backslash', "name -- comment; /* c */"]


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for a token."""
    return {"Authorization": f"Bearer {token}"}


def liveedit(*args: str, stdin: str = "", timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run ``python -m liveedit ARGS`` (bounded by ``timeout``)."""
    return subprocess.run([sys.executable, "-m", "liveedit", *args], input=stdin,
                          capture_output=True, text=True, timeout=scaled(timeout), check=False)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(real: str, kind: str) -> str:
    """A forged variant of a real access token."""
    header_b64, payload_b64, signature = real.split(".")
    payload = json.loads(base64.urlsafe_b64decode(payload_b64 + "=="))
    if kind == "alg_none":
        return (_b64(json.dumps({"alg": "none", "typ": "JWT"}).encode()) + "."
                + payload_b64 + ".")
    if kind == "other_key":
        return jwt.encode(payload, b"k" * 32, algorithm="HS256")
    if kind == "tampered":  # a customer's token made into a rep's, original signature kept
        payload.update(role="rep", cid=None)
        return header_b64 + "." + _b64(json.dumps(payload).encode()) + "." + signature
    if kind == "rs256":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return jwt.encode(payload, key, algorithm="RS256")
    if kind == "future_iat":
        payload.update(iat=time.time() + 3600, exp=time.time() + 7200)
        return jwt.encode(payload, b"k" * 32, algorithm="HS256")
    raise ValueError(kind)


async def ws_authenticate(server: ServerHandle, token: str) -> tuple[list[Error], int | None]:
    """Authenticate with ``token``; returns the Errors received and the close code."""
    client = await WireClient.connect(server.ws_url)
    protocol = ClientProtocol()
    protocol.start(token, "attack-session-1", "tests")
    for frame in protocol.data_to_send():
        await client.send_raw(frame)
    code, _ = await client.wait_closed()
    return client.received(Error), code


def no_traceback(server: ServerHandle) -> None:
    """The server logged no Python traceback."""
    assert not [line for line in server.output if "Traceback" in line], server.output[-40:]


# --- tokens ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["alg_none", "other_key", "tampered", "rs256", "future_iat"])
async def test_forged_tokens_are_refused_on_http_and_ws(server: ServerHandle, kind: str) -> None:
    """Forged JWTs get 401 auth_failed over HTTP and Error(auth_failed) + 4003 over WS."""
    own = str(uuid.uuid4())
    server.add_user("carol", role="customer", customer_id=own)
    token = forge(server.token("carol"), kind)
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        response = await http.get("/customers", headers=bearer(token))
    assert response.status_code == 401
    assert response.json()["error"] == "auth_failed"
    assert "log in again" in response.json()["message"] or "clock" in response.json()["message"]
    assert "items" not in response.json()
    errors, code = await ws_authenticate(server, token)
    assert code == CloseCode.AUTH_FAILED
    assert [e.code for e in errors] == [ErrorCode.AUTH_FAILED] and errors[0].message
    no_traceback(server)


async def test_expired_token_is_refused_on_http_and_ws(server_factory: Any) -> None:
    """An expired access token: 401 token_expired over HTTP, 4005 over WS."""
    server = server_factory("--access-token-ttl", "1")
    server.add_user("alex")
    token = server.token("alex")
    await asyncio.sleep(1.2)  # let the 1 s lifetime run out (the rule under test is time)
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        response = await http.get("/customers", headers=bearer(token))
    assert (response.status_code, response.json()["error"]) == (401, "token_expired")
    assert "expired" in response.json()["message"]
    errors, code = await ws_authenticate(server, token)
    assert code == CloseCode.TOKEN_EXPIRED
    assert [e.code for e in errors] == [ErrorCode.TOKEN_EXPIRED]


def test_refresh_token_replayed_after_logout_is_refused(server: ServerHandle) -> None:
    """After logout the refresh token (and a rotated one) gets 401, never new tokens."""
    server.add_user("alex")
    first = server.login("alex")
    with httpx.Client(base_url=server.http_url, timeout=10) as http:
        rotated = http.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
        assert rotated.status_code == 200
        second = rotated.json()["refresh_token"]
        assert http.post("/auth/logout", json={"refresh_token": second}).status_code == 204
        for token in (second, first["refresh_token"]):
            replay = http.post("/auth/refresh", json={"refresh_token": token})
            assert replay.status_code == 401, replay.text
            assert "access_token" not in replay.json() and replay.json()["message"]


def test_guessing_unknown_usernames_is_throttled_with_a_clear_message(
    server: ServerHandle,
) -> None:
    """Failed logins for a username that does not exist are throttled like a real one."""
    with httpx.Client(base_url=server.http_url, timeout=10) as http:
        answers = [http.post("/auth/login", json={"username": "ghost", "password": f"pw{i}"})
                   for i in range(6)]
    assert [r.status_code for r in answers[:5]] == [401] * 5
    assert answers[0].json()["message"] == "wrong username or password"
    blocked = answers[5]
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) >= 1
    assert blocked.json()["error"] == "rate_limited"
    assert "try again" in blocked.json()["message"]


# --- a customer user reaching for another account ---------------------------------------


@pytest.fixture
def two_accounts(server: ServerHandle) -> dict[str, Any]:
    """A rep, a customer user 'carol' for account OWN, and another account OTHER with
    history, a notification and a directory entry."""
    server.add_user("alex")
    rep = server.token("alex")
    own, other = str(uuid.uuid4()), str(uuid.uuid4())
    with httpx.Client(base_url=server.http_url, timeout=10) as http:
        for cid, name in ((own, "Carol Own"), (other, "Secret Othername")):
            created = http.post("/customers", json={"id": cid, "name": name,
                                                     "email": f"{cid[:8]}@example.com"},
                                headers=bearer(rep))
            assert created.status_code == 201, created.text
        http.patch(f"/customers/{other}", json={"phone": "555 0100"}, headers=bearer(rep))
    server.add_user("carol", role="customer", customer_id=own)
    return {"own": own, "other": other, "rep": rep, "carol": server.token("carol")}


def test_customer_user_gets_nothing_of_another_account_over_http(
    server: ServerHandle, two_accounts: dict[str, Any],
) -> None:
    """Every HTTP route, every method: no byte of the other account in any response."""
    other, own = two_accounts["other"], two_accounts["own"]
    carol = bearer(two_accounts["carol"])
    secrets = (other, "Othername", "555 0100", other[:8])
    with httpx.Client(base_url=server.http_url, timeout=10) as http:
        routes = [
            ("GET", f"/customers/{other}"), ("PATCH", f"/customers/{other}"),
            ("DELETE", f"/customers/{other}"), ("POST", f"/customers/{other}/restore"),
            ("GET", f"/customers/{other}/history"), ("GET", f"/customers/{other}/versions/1"),
            ("GET", f"/customers/{other}/versions/2"), ("GET", f"/customers/{other.upper()}"),
            ("GET", "/customers?q=Othername"), ("GET", "/customers?q=555"),
            ("GET", "/customers?limit=500"), ("GET", "/directory?cursor=0&limit=5000"),
            ("GET", "/notifications?since=0&limit=5000"),
        ]
        for method, path in routes:
            response = http.request(method, path, headers=carol, json={"name": "Hacked"})
            assert response.status_code in {200, 403}, (method, path, response.text)
            assert not any(s in response.text for s in secrets), (method, path, response.text)
        own_view = http.get(f"/customers/{own}", headers=carol).json()
        rep_view = http.get(f"/customers/{other}", headers=bearer(two_accounts["rep"])).json()
    assert own_view["name"] == "Carol Own"
    assert rep_view["name"] == "Secret Othername" and rep_view["deleted"] is False


async def test_customer_user_gets_nothing_of_another_account_over_ws(
    server: ServerHandle, two_accounts: dict[str, Any],
) -> None:
    """Subscribe, sync, update, presence, notifications, directory: nothing of OTHER."""
    own_doc, other_doc = (customer_doc_id(two_accounts[k]) for k in ("own", "other"))
    rep = await WireClient.connect(server.ws_url, two_accounts["rep"])
    replica = await join(rep, other_doc)
    carol = await WireClient.connect(server.ws_url, two_accounts["carol"])
    await carol.send(Subscribe((other_doc, "directory")))
    forbidden = await carol.expect(Error)
    assert (forbidden.code, forbidden.doc) == (ErrorCode.FORBIDDEN, other_doc)
    assert (await carol.expect(Subscribed)).docs == ("directory",)
    await carol.send(SyncStep1(other_doc, b"\x00"))
    await carol.send(Update(other_doc, 1, Replica().set(name="Hacked")))
    await carol.send(Presence(other_doc, {"field": "name"}))
    for _ in range(3):
        assert (await carol.expect(Error)).code == ErrorCode.NOT_SUBSCRIBED
    await join(carol, own_doc)
    await carol.send(ReadNotifications(0, 5000))
    page = await carol.expect(Notifications)
    assert page.items and {n.doc for n in page.items} == {own_doc}
    await carol.send(DirectorySubscribe(0))
    feed = await carol.expect(DirectoryPage)
    assert [e.customer_id for e in feed.entries()] == [two_accounts["own"]]
    # Live: the rep edits OTHER (and presence there); carol's barrier is a heartbeat after
    # the rep's own ack, so anything fanned out to her would have arrived before it.
    await rep.send(Presence(other_doc, {"field": "phone"}))
    await rep.send(Update(other_doc, 2, replica.set(city="Leakville")))
    await rep.send(Heartbeat(1))
    await rep.expect(HeartbeatAck)
    await asyncio.sleep(0.3)  # the directory change follows the commit (group commit)
    await carol.send(Heartbeat(2))
    await carol.expect(HeartbeatAck)
    leaked = [m for m in carol.inbox if two_accounts["other"] in repr(m)]
    assert leaked == [] and "Leakville" not in repr(carol.inbox)
    no_traceback(server)


# --- SQL injection and path tricks ------------------------------------------------------------


def test_sql_injection_in_search_and_import_is_literal(server: ServerHandle,
                                                       tmp_path: Path) -> None:
    """Names that look like SQL are stored and searched literally; the tables survive."""
    server.add_user("alex")
    token = server.token("alex")
    with httpx.Client(base_url=server.http_url, timeout=10) as http:
        for name in SQL_NAMES:
            assert http.post("/customers", json={"name": name},
                             headers=bearer(token)).status_code == 201
        for query in [*SQL_NAMES, "' OR 1=1 --", "\"*", "NEAR(a b)", "a AND b OR NOT c",
                      "x\x00y", "%", "_", "*", "^", "'" * 200]:
            response = http.get("/customers", params={"q": query}, headers=bearer(token))
            assert response.status_code in {200, 422}, (query, response.text)
        found = http.get("/customers", params={"q": "DROP TABLE users"},
                         headers=bearer(token)).json()["items"]
        assert [c["name"] for c in found] == ["'); DROP TABLE users; --"]
        everyone = http.get("/customers", params={"limit": 500}, headers=bearer(token))
        assert sorted(c["name"] for c in everyone.json()["items"]) == sorted(SQL_NAMES)
    server.stop()
    records = [{"name": name, "address": {"city": name[:100]}} for name in SQL_NAMES]
    path = tmp_path / "evil.json"
    path.write_text(json.dumps(records))
    result = liveedit("server", "import", str(path), "--db", str(server.db_path))
    assert (result.returncode, result.stdout.strip()) == (0, f"imported {len(SQL_NAMES)} customers")
    with sqlite3.connect(server.db_path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        names = [r[0] for r in conn.execute("SELECT name FROM directory")]
        users = conn.execute("SELECT COUNT(*) FROM users").fetchone()[0]
    assert {"users", "directory", "updates", "refresh_tokens"} <= tables and users == 1
    assert sorted(names) == sorted(SQL_NAMES * 2)


@pytest.mark.parametrize("kind", ["traversal", "directory", "fifo", "dev_zero", "deep"])
def test_import_path_tricks_get_one_clear_error_line(tmp_path: Path, kind: str) -> None:
    """``server import`` of /etc/passwd via ../, a directory, a FIFO, /dev/zero or deeply
    nested JSON: exit 2, one error line naming the file, no hang, no traceback."""
    db = tmp_path / "server.db"
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    target = {"traversal": "../../" * 12 + "etc/passwd", "directory": str(tmp_path),
              "fifo": str(tmp_path / "pipe.json"), "dev_zero": "/dev/zero",
              "deep": str(tmp_path / "deep.json")}[kind]
    if kind == "fifo":
        os.mkfifo(target)
    if kind == "deep":
        Path(target).write_text("[" * 200_000 + "]" * 200_000)
    result = subprocess.run(
        [sys.executable, "-m", "liveedit", "server", "import", target, "--db", str(db)],
        capture_output=True, text=True, timeout=scaled(20), check=False, cwd=work)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("liveedit server: error: "), result.stderr
    assert target in lines[0] and "Traceback" not in result.stderr


# --- revocation -------------------------------------------------------------------------------


async def _admin(server: ServerHandle, *args: str, stdin: bytes = b"") -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "liveedit", "server", "user", *args, "--db", str(server.db_path),
        stdin=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL)
    _, stderr = await asyncio.wait_for(process.communicate(stdin), scaled(30))
    assert process.returncode == 0, stderr


@pytest.mark.parametrize("change", ["set-role", "passwd"])
async def test_role_or_password_change_closes_open_connections(
    server: ServerHandle, change: str,
) -> None:
    """set-role (rep → customer) or passwd closes the user's connection with 4006 in ~3 s."""
    server.add_user("alex")
    server.add_user("sam")
    alex = await WireClient.connect(server.ws_url, server.token("alex"))
    sam = await WireClient.connect(server.ws_url, server.token("sam"))
    if change == "set-role":
        await _admin(server, "set-role", "alex", "--role", "customer",
                     "--customer", str(uuid.uuid4()))
    else:
        await _admin(server, "passwd", "alex", "--password-stdin", stdin=b"another password\n")
    started = asyncio.get_running_loop().time()
    code, _ = await alex.wait_closed(timeout=10)
    assert code == CloseCode.ACCESS_REVOKED
    assert asyncio.get_running_loop().time() - started <= scaled(3.5)
    assert alex.received(Error)[-1].code == ErrorCode.ACCESS_REVOKED
    await sam.send(Heartbeat(3))
    assert (await sam.expect(HeartbeatAck)).nonce == 3


async def test_resumed_session_after_role_change_keeps_no_foreign_subscription(
    server: ServerHandle,
) -> None:
    """A rep made a customer user resumes its session without the other accounts."""
    server.add_user("alex")
    other = customer_doc_id(str(uuid.uuid4()))
    alex = await WireClient.connect(server.ws_url, server.token("alex"), "resume-role-1")
    await join(alex, other)
    await _admin(server, "set-role", "alex", "--role", "customer", "--customer",
                 str(uuid.uuid4()))
    await alex.wait_closed(timeout=10)
    again = await WireClient.connect(server.ws_url, server.token("alex"), "resume-role-1")
    assert again.welcome is not None and again.welcome.resumed
    assert other not in again.welcome.subscriptions
    await again.send(SyncStep1(other, b"\x00"))
    assert (await again.expect(Error)).code == ErrorCode.NOT_SUBSCRIBED


async def test_renewing_with_a_token_of_a_changed_role_is_revoked(server: ServerHandle) -> None:
    """RenewToken with a token whose role changed closes with 4006 (before the sweeper)."""
    server.add_user("alex")
    alex = await WireClient.connect(server.ws_url, server.token("alex"))
    from sync.server.auth import AuthService

    with AuthService(server.db_path) as auth:
        auth.set_role("alex", "customer", str(uuid.uuid4()))
        fresh = auth.issue_access(auth.get_user("alex"))[0]  # type: ignore[arg-type]
    await alex.send(RenewToken(fresh))
    code, _ = await alex.wait_closed(timeout=10)
    assert code == CloseCode.ACCESS_REVOKED


# --- floods ------------------------------------------------------------------------------------


async def test_300_unauthenticated_connections_close_while_a_client_works(
    server: ServerHandle,
) -> None:
    """300 silent connections: 256 (--max-authenticating) are admitted and closed with 4001
    within ~6 s, the other 44 are refused at once (server_busy, retry_after, 1013);
    heartbeats keep flowing."""
    server.add_user("alex")
    good = await WireClient.connect(server.ws_url, server.token("alex"))
    started = asyncio.get_running_loop().time()
    idle = await asyncio.gather(*(WireClient.connect(server.ws_url) for _ in range(300)))
    closing = asyncio.gather(*(c.wait_closed(timeout=15) for c in idle))
    nonce = 0
    while not closing.done():
        nonce += 1
        await good.send(Heartbeat(nonce))
        await good.expect(HeartbeatAck, lambda m, n=nonce: m.nonce == n, timeout=2)
        await asyncio.sleep(0.1)  # a heartbeat cadence, not a wait for a condition
    codes = [code for code, _ in await closing]
    assert codes.count(CloseCode.AUTH_TIMEOUT) == 256
    assert codes.count(CloseCode.TRY_AGAIN_LATER) == 44
    for client in idle:
        if client.closed.result()[0] == CloseCode.TRY_AGAIN_LATER:
            (busy,) = client.received(Error)
            assert busy.code is ErrorCode.SERVER_BUSY and 2.0 <= (busy.retry_after or 0) <= 4.0
    assert asyncio.get_running_loop().time() - started <= scaled(6.5)
    assert nonce >= 20


async def test_messages_pipelined_before_welcome_are_kept_in_order(
    server: ServerHandle,
) -> None:
    """Authenticate plus 32 pipelined Heartbeats (the most held before Welcome, §8): Welcome,
    then 32 acks in order. One more: tests/integration/test_server_limits.py."""
    server.add_user("alex")
    token = server.token("alex")
    frames = [encode(Authenticate((PROTOCOL_VERSION,), token, "pipeline-1", "tests"))]
    frames += [encode(Heartbeat(n)) for n in range(32)]
    client = await WireClient.connect(server.ws_url)
    for frame in frames:
        await client.send_raw(frame)
    assert isinstance(client.welcome or await client.expect(Welcome), Welcome)
    for n in range(32):
        assert (await client.expect(HeartbeatAck)).nonce == n
    assert not client.closed.done()
