"""ClientConnection against the real reference server: online, reconnect, resume, fatal
refusals, in-band token renewal and heartbeats (docs/protocol.md §3, §8)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from websockets.asyncio.client import connect

from sync.client import (
    AccessRevoked,
    AuthenticationFailed,
    ClientConnection,
    ConnectionState,
    NotConnected,
    SessionReplaced,
    Status,
)
from sync.protocol.messages import (
    DIRECTORY_FEED,
    PROTOCOL_VERSION,
    Authenticate,
    Message,
    Subscribe,
    Subscribed,
    Welcome,
    decode,
    encode,
)

from .conftest import ServerHandle, scaled

USER = "alice"


async def wait_until(predicate: Callable[[], bool], within: float, what: str) -> None:
    """Poll ``predicate`` until true; fail the test after ``within`` (scaled) seconds."""
    try:
        async with asyncio.timeout(scaled(within)):
            # Polling is the point: the predicates mix several sources of state.
            while not predicate():  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    except TimeoutError:
        pytest.fail(f"timed out after {scaled(within):.1f} s waiting for {what}")


@dataclass
class Probe:
    """Records what a ClientConnection reports: opens, messages, statuses, token calls."""

    server: ServerHandle
    user: str = USER
    subscribe: bool = True
    opens: list[Welcome] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    statuses: list[Status] = field(default_factory=list)
    token_calls: list[bool] = field(default_factory=list)
    bad_token: str | None = None
    conn: ClientConnection | None = None

    async def token(self, force_new: bool) -> str:
        """Token provider: logs in over real HTTP (off the event loop)."""
        self.token_calls.append(force_new)
        if self.bad_token is not None:
            return self.bad_token
        return await asyncio.to_thread(self.server.token, self.user)

    async def on_open(self, welcome: Welcome) -> None:
        """Like the app core: re-subscribe unless the server resumed the session."""
        self.opens.append(welcome)
        if self.subscribe and not welcome.resumed:
            assert self.conn is not None
            await self.conn.send(Subscribe((DIRECTORY_FEED,)))

    async def on_message(self, message: Message) -> None:
        """Keep every dispatched message."""
        self.messages.append(message)

    def states(self) -> list[ConnectionState]:
        """The sequence of states reported, without repeats."""
        out: list[ConnectionState] = []
        for status in self.statuses:
            if not out or out[-1] is not status.state:
                out.append(status.state)
        return out


@pytest.fixture
async def make_client() -> AsyncIterator[Callable[..., Probe]]:
    """Build started-later ClientConnections with a Probe; all are closed at the end."""
    probes: list[Probe] = []

    def make(server: ServerHandle, *, session_id: str | None = None, user: str = USER,
             subscribe: bool = True, **kwargs: Any) -> Probe:
        probe = Probe(server, user=user, subscribe=subscribe)
        kwargs.setdefault("backoff_initial", 0.1)
        kwargs.setdefault("backoff_max", 1.0)
        probe.conn = ClientConnection(
            server.ws_url, session_id=session_id or f"test-{uuid.uuid4().hex[:12]}",
            token_provider=probe.token, on_open=probe.on_open, on_message=probe.on_message,
            client_name="pytest", **kwargs,
        )
        probe.conn.add_status_listener(probe.statuses.append)
        probes.append(probe)
        return probe

    yield make
    for probe in probes:
        assert probe.conn is not None
        await probe.conn.close()


def _conn(probe: Probe) -> ClientConnection:
    assert probe.conn is not None
    return probe.conn


async def test_connects_and_goes_online(server: ServerHandle, make_client: Any) -> None:
    """start() authenticates, calls on_open with the Welcome, goes ONLINE, dispatches."""
    server.add_user(USER)
    probe = make_client(server, session_id="session-online-1")
    conn = _conn(probe)
    await conn.start()
    welcome = await conn.wait_online(scaled(10))
    assert welcome.user == USER
    assert welcome.session_id == "session-online-1"
    assert welcome.resumed is False
    assert welcome.heartbeat_interval > 0
    assert conn.welcome is welcome
    assert probe.opens == [welcome]
    assert conn.status == Status(ConnectionState.ONLINE)
    assert probe.states() == [ConnectionState.CONNECTING, ConnectionState.ONLINE]
    assert probe.token_calls == [False]
    # The Subscribe sent from on_open is answered and dispatched to on_message.
    await wait_until(
        lambda: any(isinstance(m, Subscribed) for m in probe.messages), 10, "Subscribed",
    )
    assert Subscribed((DIRECTORY_FEED,)) in probe.messages


async def test_reconnects_after_server_kill_and_restart(
    server: ServerHandle, make_client: Any,
) -> None:
    """Killing the server shows CONNECTING with retry_in; a restart brings it back ONLINE."""
    server.add_user(USER)
    probe = make_client(server)
    conn = _conn(probe)
    await conn.start()
    await conn.wait_online(scaled(10))
    await wait_until(lambda: Subscribed((DIRECTORY_FEED,)) in probe.messages, 10, "Subscribed")

    await asyncio.to_thread(server.kill)
    await wait_until(
        lambda: conn.status.state is ConnectionState.CONNECTING
        and conn.status.retry_in is not None, 10, "CONNECTING with retry_in",
    )
    waiting = conn.status
    assert waiting.error  # says why, for the status indicator
    assert waiting.attempt >= 1
    assert waiting.retry_in is not None and 0 <= waiting.retry_in <= 1.0  # backoff_max

    await asyncio.to_thread(server.restart)
    welcome = await conn.wait_online(scaled(15))
    assert len(probe.opens) == 2
    assert probe.opens[1] is welcome
    assert conn.status == Status(ConnectionState.ONLINE)
    # After a restart the server no longer knows the session; on_open re-subscribed.
    await wait_until(
        lambda: sum(isinstance(m, Subscribed) for m in probe.messages) == 2, 10,
        "Subscribed after the restart",
    )


@pytest.mark.skipif(sys.platform == "win32", reason="needs SIGSTOP/SIGCONT")
async def test_dead_link_reconnects_and_resumes_session(
    server: ServerHandle, make_client: Any,
) -> None:
    """A frozen server is detected by dead_after; the reconnect resumes the session."""
    server.add_user(USER)
    probe = make_client(server, dead_after=1.0)
    conn = _conn(probe)
    await conn.start()
    await conn.wait_online(scaled(10))
    await wait_until(lambda: Subscribed((DIRECTORY_FEED,)) in probe.messages, 10, "Subscribed")

    assert server.process is not None
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        await wait_until(
            lambda: conn.status.state is ConnectionState.CONNECTING, 15, "dead link noticed",
        )
        assert "no frame received" in (conn.status.error or "")
    finally:
        os.kill(server.process.pid, signal.SIGCONT)

    welcome = await conn.wait_online(scaled(20))
    assert len(probe.opens) == 2
    assert welcome.resumed is True
    assert DIRECTORY_FEED in welcome.subscriptions


async def test_session_id_reused_within_grace_is_resumed(
    server: ServerHandle, make_client: Any,
) -> None:
    """A new connection with a recently used session id gets resumed=True and its subs."""
    server.add_user(USER)
    first = make_client(server, session_id="session-resume-1")
    await _conn(first).start()
    await _conn(first).wait_online(scaled(10))
    await wait_until(lambda: Subscribed((DIRECTORY_FEED,)) in first.messages, 10, "Subscribed")
    await _conn(first).close()

    second = make_client(server, session_id="session-resume-1")
    await _conn(second).start()
    welcome = await _conn(second).wait_online(scaled(10))
    assert welcome.resumed is True
    assert welcome.subscriptions == (DIRECTORY_FEED,)
    assert second.opens == [welcome]


async def test_session_taken_over_elsewhere_is_fatal(
    server: ServerHandle, make_client: Any,
) -> None:
    """A second live connection with the same session id stops the first (4010), no loop."""
    server.add_user(USER)
    first = make_client(server, session_id="session-twice-1")
    await _conn(first).start()
    await _conn(first).wait_online(scaled(10))

    second = make_client(server, session_id="session-twice-1")
    await _conn(second).start()
    assert (await _conn(second).wait_online(scaled(10))).resumed is True

    await wait_until(
        lambda: _conn(first).status.state is ConnectionState.OFFLINE, 10, "first stopped",
    )
    with pytest.raises(SessionReplaced):
        await _conn(first).wait_online(scaled(1))
    assert "another connection" in (_conn(first).status.error or "")
    assert first.token_calls == [False]
    assert _conn(second).status.state is ConnectionState.ONLINE


async def test_bad_token_is_fatal_without_reconnect_loop(
    server: ServerHandle, make_client: Any,
) -> None:
    """A token the server refuses stops the connection: OFFLINE with a clear error."""
    server.add_user(USER)
    probe = make_client(server)
    probe.bad_token = "not-a-valid-token"
    conn = _conn(probe)
    await conn.start()
    with pytest.raises(AuthenticationFailed) as info:
        await conn.wait_online(scaled(10))
    assert info.value.close_code == 4003 or info.value.error_code == "auth_failed"
    assert conn.status.state is ConnectionState.OFFLINE
    assert (conn.status.error or "").startswith("authentication failed")
    # OFFLINE after a fatal error is final: one attempt, no CONNECTING after it.
    assert probe.token_calls == [False]
    assert probe.states() == [ConnectionState.CONNECTING, ConnectionState.OFFLINE]
    assert probe.opens == []
    with pytest.raises(NotConnected):
        await conn.send(Subscribe((DIRECTORY_FEED,)))


async def test_disabled_account_is_revoked_and_fatal(
    server: ServerHandle, make_client: Any,
) -> None:
    """Disabling the user closes the live connection with 4006: AccessRevoked, OFFLINE."""
    from sync.server.auth import AuthService

    server.add_user(USER)
    probe = make_client(server)
    conn = _conn(probe)
    await conn.start()
    await conn.wait_online(scaled(10))

    auth = AuthService(server.db_path)
    try:
        auth.set_disabled(USER, True)
    finally:
        auth.close()
    await wait_until(
        lambda: conn.status.state is ConnectionState.OFFLINE, 15, "revocation",
    )
    with pytest.raises(AccessRevoked):
        await conn.wait_online(scaled(1))
    assert (conn.status.error or "").startswith("access revoked")
    assert probe.token_calls == [False]


async def _idle_witness(server: ServerHandle, session_id: str) -> int:
    """A raw authenticated connection that never sends again; returns its close code.

    It shows, event-driven, that the server's idle timeout or token expiry has passed.
    """
    token = await asyncio.to_thread(server.token, USER)
    async with connect(server.ws_url, ping_interval=None) as ws:
        await ws.send(encode(Authenticate((PROTOCOL_VERSION,), token, session_id, "witness")))
        assert isinstance(decode(await ws.recv(decode=False)), Welcome)
        await asyncio.wait_for(ws.wait_closed(), scaled(30))
        assert ws.close_code is not None
        return ws.close_code


async def test_token_renewed_in_band_before_expiry(
    server_factory: Any, make_client: Any,
) -> None:
    """With 3 s tokens the link outlives several expiries by RenewToken, never reconnecting."""
    server = server_factory("--access-token-ttl", "3")
    server.add_user(USER)
    probe = make_client(server)
    conn = _conn(probe)
    await conn.start()
    welcome = await conn.wait_online(scaled(10))
    assert welcome.token_expires_at - welcome.server_time <= 3.0

    # The witness never renews: the server closes it with 4005 once its token expires.
    assert await _idle_witness(server, "witness-renewal-1") == 4005
    await wait_until(lambda: probe.token_calls.count(True) >= 4, 20, "four renewals")
    assert probe.token_calls[0] is False
    assert len(probe.opens) == 1
    assert probe.states() == [ConnectionState.CONNECTING, ConnectionState.ONLINE]
    expires_at = conn.token_expires_at
    assert expires_at is not None and expires_at > welcome.token_expires_at + 6.0


async def test_heartbeat_keeps_idle_connection_open(
    server_factory: Any, make_client: Any,
) -> None:
    """Heartbeats keep an otherwise idle link open past the server's idle timeout."""
    server = server_factory("--idle-timeout", "3", "--heartbeat-interval", "1")
    server.add_user(USER)
    probe = make_client(server, subscribe=False)
    conn = _conn(probe)
    await conn.start()
    welcome = await conn.wait_online(scaled(10))
    assert welcome.heartbeat_interval == 1.0

    # The witness, opened after we went online, is closed as idle (4009) ...
    assert await _idle_witness(server, "witness-idle-1") == 4009
    # ... while our equally idle connection is still up on its first authentication.
    assert conn.status == Status(ConnectionState.ONLINE)
    assert len(probe.opens) == 1
    assert probe.states() == [ConnectionState.CONNECTING, ConnectionState.ONLINE]


async def test_close_is_clean_idempotent_and_final(
    server: ServerHandle, make_client: Any,
) -> None:
    """close() goes OFFLINE without error, twice is fine, then send/wait_online refuse."""
    server.add_user(USER)
    probe = make_client(server)
    conn = _conn(probe)
    with pytest.raises(NotConnected):
        await conn.send(Subscribe((DIRECTORY_FEED,)))
    await conn.start()
    await conn.wait_online(scaled(10))
    await conn.close()
    await conn.close()
    assert conn.status == Status(ConnectionState.OFFLINE)
    assert probe.states() == [
        ConnectionState.CONNECTING, ConnectionState.ONLINE, ConnectionState.OFFLINE,
    ]
    with pytest.raises(NotConnected):
        await conn.send(Subscribe((DIRECTORY_FEED,)))
    with pytest.raises(NotConnected):
        await conn.wait_online(scaled(1))
