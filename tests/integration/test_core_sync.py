"""The client core against the real server: offline edits, conflicts, outbox, roles,
revert, offline search, and a crash right after a local edit."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.core import ClientCore
from app.errors import InvalidEdit, PermissionDenied, UnknownCustomer
from app.events import ErrorReported

from .conftest import DEFAULT_PASSWORD, ServerHandle, both_engines, scaled
from .wire import eventually

ROOT = Path(__file__).resolve().parents[2]
CoreFactory = Callable[..., Awaitable[ClientCore]]


@pytest.fixture
async def make_core(server: ServerHandle, tmp_path: Path) -> AsyncIterator[CoreFactory]:
    """Signed-in client cores, one data folder each; all closed at the end."""
    cores: list[ClientCore] = []

    async def make(username: str, *, role: str = "rep", customer_id: str | None = None,
                   folder: str | None = None, login: bool = True) -> ClientCore:
        from sync.server.auth import AuthService

        with AuthService(server.db_path) as auth:
            if auth.get_user(username) is None:
                auth.add_user(username, DEFAULT_PASSWORD, role, customer_id)
        core = ClientCore.open(tmp_path / (folder or username))
        if login:
            await core.login(server.http_url, username, DEFAULT_PASSWORD)
        cores.append(core)
        return core

    yield make
    for core in cores:
        await core.close()


async def synced(*cores: ClientCore, timeout: float = 20) -> None:
    """Sync every core (concurrently) until each is fully in sync."""
    await asyncio.gather(*(core.sync(scaled(timeout)) for core in cores))


async def shared_customer(a: ClientCore, b: ClientCore, **values: Any) -> str:
    """A customer created by ``a`` and held by both, synced."""
    cid = await a.create_customer({"name": "John Smith", **values})
    await synced(a)
    await synced(b)
    await b.open_customer(cid)
    await synced(b)
    return cid


@both_engines
async def test_offline_edits_converge_and_only_the_loser_records_a_conflict(
    make_core: CoreFactory,
) -> None:
    """Both edit offline (same field and different fields); both converge; exactly the
    side whose value lost holds one conflict with both values and the winner's name."""
    a, b = await make_core("alex"), await make_core("sam")
    cid = await shared_customer(a, b, city="Boston")
    await a.disconnect()
    await b.disconnect()
    await a.set_fields(cid, {"city": "Paris", "zip": "75001"})
    await b.set_fields(cid, {"city": "Lyon", "phone": "555-0100"})
    await synced(a, b)
    await synced(a, b)
    assert a.customer(cid) == b.customer(cid)
    view = a.customer(cid)
    assert view.fields["zip"] == "75001" and view.fields["phone"] == "555-0100"
    winner = view.fields["city"]
    assert winner in {"Paris", "Lyon"}
    loser, loser_value, winner_name = (b, "Lyon", "alex") if winner == "Paris" else (
        a, "Paris", "sam")
    other = a if loser is b else b
    conflicts = loser.conflicts(cid)
    assert [(c.field, c.mine, c.theirs, c.author) for c in conflicts] == [
        ("city", loser_value, winner, winner_name)]
    assert other.conflicts(cid) == []


async def test_use_mine_and_keep_theirs_resolve_the_conflict(make_core: CoreFactory) -> None:
    """'Use mine' writes my value again for everyone; 'keep theirs' only dismisses."""
    a, b = await make_core("alex"), await make_core("sam")
    cid = await shared_customer(a, b)
    for attempt in range(2):
        await a.disconnect()
        await b.disconnect()
        await a.set_fields(cid, {"state": f"A{attempt}"})
        await b.set_fields(cid, {"state": f"B{attempt}"})
        await synced(a, b)
        await synced(a, b)
        loser = a if a.conflicts(cid) else b
        other = b if loser is a else a
        conflict = loser.conflicts(cid)[0]
        use_mine = attempt == 0
        await loser.resolve_conflict(cid, "state", use_mine=use_mine)
        await synced(loser, other)
        await synced(loser, other)
        expected = conflict.mine if use_mine else conflict.theirs
        assert loser.customer(cid).fields["state"] == expected
        assert other.customer(cid).fields["state"] == expected
        assert loser.conflicts(cid) == [] and other.conflicts(cid) == []


async def test_sequential_overwrite_is_not_a_conflict(make_core: CoreFactory) -> None:
    """Overwriting a value one has already seen records no conflict anywhere."""
    a, b = await make_core("alex"), await make_core("sam")
    cid = await shared_customer(a, b)
    await a.set_fields(cid, {"city": "Rome"})
    await synced(a)
    await synced(b)
    await b.set_fields(cid, {"city": "Milan"})
    await synced(b)
    await synced(a)
    assert a.customer(cid).fields["city"] == "Milan"
    assert a.conflicts() == [] and b.conflicts() == []


async def test_notes_typed_concurrently_merge_without_conflict(make_core: CoreFactory) -> None:
    """Two reps typing into the notes offline merge character by character."""
    a, b = await make_core("alex"), await make_core("sam")
    cid = await shared_customer(a, b)
    await a.notes_append(cid, "Called about invoice. ")
    await synced(a)
    await synced(b)
    await a.disconnect()
    await b.disconnect()
    await a.notes_append(cid, "Alex: refund sent.")
    await b.notes_insert(cid, 0, "[VIP] ")
    await synced(a, b)
    await synced(a, b)
    notes = a.customer(cid).notes
    assert notes == b.customer(cid).notes
    assert notes.startswith("[VIP] Called about invoice.") and "Alex: refund sent." in notes
    assert a.conflicts() == [] and b.conflicts() == []


@both_engines
async def test_outbox_empties_only_on_ack(server: ServerHandle, make_core: CoreFactory) -> None:
    """An edit sent to a frozen server stays queued until the server acks it."""
    a = await make_core("alex")
    cid = await a.create_customer({"name": "Ack Test"})
    await synced(a)
    assert a.outbox() == []
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        await a.set_fields(cid, {"city": "Frozen"})
        assert len(a.outbox()) == 1
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
    await synced(a)
    assert a.outbox() == []


async def test_500_queued_edits_across_50_customers_sync(make_core: CoreFactory) -> None:
    """500 offline edits over 50 customers all reach the server and another client."""
    a, b = await make_core("alex"), await make_core("sam")
    ids = [await a.create_customer({"name": f"Bulk {i:02d}"}) for i in range(50)]
    await synced(a)
    await a.disconnect()
    for round_ in range(10):
        for cid in ids:
            await a.set_fields(cid, {"zip": f"{round_:05d}"})
    assert len(a.outbox()) == 500
    await synced(a, timeout=60)
    assert a.outbox() == []
    await synced(b)
    for cid in ids:
        await b.open_customer(cid)
    await synced(b)
    assert {b.customer(cid).fields["zip"] for cid in ids} == {"00009"}


async def test_customer_user_cannot_reach_another_account(make_core: CoreFactory) -> None:
    """A customer user syncs its own account only; others are refused by every route."""
    rep = await make_core("alex")
    own = await rep.create_customer({"name": "Own Account"})
    other = await rep.create_customer({"name": "Other Account"})
    await synced(rep)
    carol = await make_core("carol", role="customer", customer_id=own)
    await synced(carol)
    assert [r.customer_id for r in carol.search("account")] == [own]
    with pytest.raises(UnknownCustomer):
        carol.customer(other)
    with pytest.raises(PermissionDenied):
        await carol.history(other)
    await carol.open_customer(own)
    await synced(carol)
    assert carol.customer(own).fields["name"] == "Own Account"


async def test_field_the_role_may_not_write_is_refused_and_the_copy_starts_over(
    make_core: CoreFactory,
) -> None:
    """A customer's change to ``tier`` is refused (write_forbidden, reported); its copy
    starts over from the server's, and its next allowed change syncs."""
    rep = await make_core("alex")
    own = await rep.create_customer({"name": "Own Account", "tier": "basic"})
    await synced(rep)
    carol = await make_core("carol", role="customer", customer_id=own)
    await synced(carol)
    await carol.open_customer(own)
    await synced(carol)
    errors: list[ErrorReported] = []
    carol.bus.subscribe(lambda e: errors.append(e) if isinstance(e, ErrorReported) else None)
    await carol.set_fields(own, {"tier": "premium"})
    await eventually(lambda: errors)
    assert "tier" in errors[0].message and errors[0].customer_id == own
    await eventually(lambda: carol.customer(own).fields["tier"] == "basic")
    await carol.set_fields(own, {"phone": "555-0142"})
    await synced(carol)
    await synced(rep)
    await rep.open_customer(own)
    await synced(rep)
    assert rep.customer(own).fields["phone"] == "555-0142"
    assert rep.customer(own).fields["tier"] == "basic"
    assert carol.outbox() == []


async def test_revert_restores_a_field_and_the_other_client_sees_it(
    make_core: CoreFactory,
) -> None:
    """Reverting a field to an old version is a new change that reaches other reps."""
    a, b = await make_core("alex"), await make_core("sam")
    cid = await shared_customer(a, b, city="Boston")
    await a.set_fields(cid, {"city": "Chicago", "zip": "60601"})
    await synced(a)
    history = await a.history(cid)
    first = history[-1].seq
    await a.revert(cid, first, field="city")
    await synced(a)
    await eventually(lambda: b.customer(cid).fields["city"] == "Boston", timeout=10)
    assert b.customer(cid).fields["zip"] == "60601"
    assert (await a.history(cid))[0].author == "alex"


async def test_search_works_with_the_server_stopped(server: ServerHandle,
                                                    make_core: CoreFactory) -> None:
    """The replicated directory answers searches with no server."""
    a = await make_core("alex")
    await a.create_customer({"name": "Ophelia Offline", "city": "Elsinore"})
    await synced(a)
    b = await make_core("sam")
    await synced(b)
    await b.disconnect()
    server.stop()
    assert [r.name for r in b.search("ophel")] == ["Ophelia Offline"]
    assert [r.name for r in b.search("elsin")] == ["Ophelia Offline"]


async def test_invalid_edit_changes_nothing(make_core: CoreFactory) -> None:
    """An invalid value is refused with a message naming the field; nothing is queued."""
    a = await make_core("alex")
    cid = await a.create_customer({"name": "Valid"})
    await synced(a)
    with pytest.raises(InvalidEdit, match="email"):
        await a.set_fields(cid, {"name": "Changed", "email": "not an email"})
    assert a.customer(cid).fields["name"] == "Valid" and a.outbox() == []


async def test_edit_survives_sigkill_right_after_it(server: ServerHandle,
                                                    tmp_path: Path) -> None:
    """A process killed right after a local edit delivers it after restart."""
    server.add_user("alex")
    folder = tmp_path / "crashy"
    script = textwrap.dedent(f"""
        import asyncio, sys
        from tests.memory_keyring import memory_keyring
        from app.core import ClientCore
        async def main():
            core = ClientCore.open({str(folder)!r})
            await core.login({server.http_url!r}, "alex", {DEFAULT_PASSWORD!r})
            cid = await core.create_customer({{"name": "Before Crash"}})
            await core.set_fields(cid, {{"city": "Kill Nine"}})
            print(cid, flush=True)
            await asyncio.Event().wait()
        with memory_keyring():
            asyncio.run(main())
    """)
    root = str(ROOT)
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE, cwd=root,
    )
    assert child.stdout is not None
    cid = (await asyncio.wait_for(child.stdout.readline(), scaled(30))).decode().strip()
    child.send_signal(signal.SIGKILL)
    await asyncio.wait_for(child.wait(), scaled(10))
    core = ClientCore.open(folder)
    try:
        assert len(core.outbox()) == 2
        await core.login(server.http_url, "alex", DEFAULT_PASSWORD)
        await core.sync(scaled(20))
        assert core.outbox() == []
    finally:
        await core.close()
    headers = {"Authorization": f"Bearer {server.token('alex')}"}
    async with httpx.AsyncClient(base_url=server.http_url, headers=headers) as http:
        got = (await http.get(f"/customers/{cid}")).json()
        history = (await http.get(f"/customers/{cid}/history")).json()["items"]
    assert got["address"]["city"] == "Kill Nine" and got["name"] == "Before Crash"
    # Both queued edits went out merged, once: one logged change, nothing duplicated.
    assert len(history) == 1


async def test_login_without_keyring_still_signs_in_for_the_session(
    server: ServerHandle, tmp_path: Path,
) -> None:
    """With no OS keyring, login says so, stores no secret, and the session still syncs."""
    import keyring
    from keyring.backends import fail

    from app.credentials import CredentialsUnavailable

    keyring.set_keyring(fail.Keyring())  # type: ignore[no-untyped-call]
    server.add_user("alex")
    core = ClientCore.open(tmp_path / "nokeyring")
    try:
        with pytest.raises(CredentialsUnavailable, match="no OS keyring"):
            await core.login(server.http_url, "alex", DEFAULT_PASSWORD)
        assert core.username == "alex" and core.server_url == server.http_url
        await core.create_customer({"name": "No Keyring"})
        await core.sync(scaled(20))
        assert core.outbox() == []
        secret = core.authenticator()._refresh  # the token that must not reach the disk
    finally:
        await core.close()
    assert secret
    stored = b"".join(p.read_bytes() for p in (tmp_path / "nokeyring").rglob("*") if p.is_file())
    assert secret.encode() not in stored


@both_engines
async def test_presence_and_offline_notifications(make_core: CoreFactory) -> None:
    """Presence of another rep is observable; changes made while away arrive as offline
    notifications that read as a sentence."""
    from app.notifications import describe

    a, b = await make_core("alex"), await make_core("sam")
    cid = await shared_customer(a, b)
    await a.set_presence(cid, {"field": "city"})
    await eventually(lambda: [u for u, _ in b.presence(cid).values()] == ["alex"])
    await b.disconnect()
    await a.set_fields(cid, {"city": "Seattle"})
    await synced(a)
    await synced(b)
    offline = [n for n in b.notifications() if n.offline]
    assert "alex changed City on John Smith" in [describe(n) for n in offline]


async def test_presence_is_announced_again_after_a_reconnect(make_core: CoreFactory) -> None:
    """A rep's presence comes back for the others after that rep's connection drops."""
    a, b = await make_core("alex"), await make_core("sam")
    cid = await shared_customer(a, b)
    await a.set_presence(cid, {"field": "zip"})
    await eventually(lambda: [u for u, _ in b.presence(cid).values()] == ["alex"])
    await a.disconnect()
    await eventually(lambda: b.presence(cid) == {})
    await a.connect()
    await eventually(lambda: [s.get("field") for _, s in b.presence(cid).values()] == ["zip"])
