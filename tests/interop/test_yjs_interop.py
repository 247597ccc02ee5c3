"""The real ``y-websocket`` + ``yjs`` npm packages under Node against ``/yjs/{customer_id}``
of the real server, editing together with ``liveedit client`` and with each other.

Each Node client is ``yclient.mjs``: the stock WebsocketProvider on a stock ``Y.Doc``, with
taps that report every frame and the permission-denied reason (see its header). The server
is a real subprocess on 127.0.0.1 with a temp SQLite file; ``liveedit client`` runs as real
subprocesses with their own profiles (``tests/integration/test_client_cli.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from sync.server.auth import AuthService
from tests.integration.conftest import scaled
from tests.integration.test_client_cli import Profile

from .conftest import Event, ServerHandle, YClient, create_customer

YFactory = Callable[..., YClient]

#: The y-protocols frames that carry document content (a denied client must get none).
CONTENT_KINDS = {"sync-step1", "sync-step2", "sync-update", "awareness"}


def fields_are(**expected: Any) -> Callable[[Event], bool]:
    """A document predicate: these fields have these values."""
    return lambda e: all(e["fields"].get(k) == v for k, v in expected.items())


def cli_profile(server: ServerHandle, tmp_path: Path, user: str) -> Profile:
    """A signed-in ``liveedit client`` profile of a new rep."""
    server.add_user(user)
    profile = Profile(server, user, tmp_path / f"profile-{user}")
    profile.login()
    return profile


def test_node_client_and_liveedit_client_edit_one_customer(
    server: ServerHandle, yclient: YFactory, tmp_path: Path,
) -> None:
    """A Node y-websocket client and a ``liveedit client`` rep on one customer: the Node
    client syncs the stored document; a field set from Node shows in ``liveedit client
    show``; a field set with ``liveedit client set`` reaches Node live; notes typed in both
    at once converge to the same text with both parts."""
    alex = cli_profile(server, tmp_path, "alex")
    server.add_user("sam")
    cid = create_customer(server, server.token("alex"), name="Ada Lovelace",
                          address={"city": "London"})
    alex.sync()
    alex.hold(cid)
    node = yclient(server, cid, server.token("sam"), name="sam-node")
    synced = node.wait_synced()
    assert synced["fields"].get("name") == "Ada Lovelace", node.log_tail()
    assert synced["fields"].get("city") == "London"

    # Node -> server -> liveedit client
    mark = node.mark()
    node.wait_echo(node.set("name", "Ada King"), after=mark)
    alex.sync()
    assert alex.field(cid, "name") == "Ada King"
    assert alex.field(cid, "city") == "London"

    # liveedit client -> server -> Node (live, no reconnect)
    mark = node.mark()
    alex.ok("set", cid, "city=Paris", "phone=555-0199")
    alex.sync()
    node.wait_doc(fields_are(city="Paris", phone="555-0199"), "the rep's city and phone",
                  after=mark)

    # Notes typed at the same time on both sides: neither has seen the other's yet.
    mark = node.mark()
    node.wait_echo(node.insert_note(0, "Node says hi."), after=mark)
    alex.ok("notes", cid, "--append", "Rep called back.")
    alex.sync()
    node.wait_doc(lambda e: "Rep called back." in e["notes"], "the rep's note", after=mark)
    node.wait_echo(node.insert_note(-1, " Node again."), after=node.mark())
    alex.sync()
    rep_notes = alex.json("show", cid)["notes"]
    node_notes = node.dump()["notes"]
    assert rep_notes == node_notes, (rep_notes, node_notes)
    for part in ("Node says hi.", "Rep called back.", " Node again."):
        assert part in rep_notes
    dump = node.dump()
    assert dump["synced"] and dump["connected"], node.log_tail()
    assert node.since(0, "connection-close") == [], node.log_tail()


def test_two_node_clients_converge_and_see_each_others_awareness(
    server: ServerHandle, yclient: YFactory,
) -> None:
    """Two Node clients see each other's awareness (query-awareness is answered with both);
    one goes offline (the other sees it leave), both edit the same field and the notes, and
    after it reconnects both have equal documents with every edit and it is present again;
    when its process is killed, the other sees it leave."""
    server.add_user("alex")
    server.add_user("sam")
    cid = create_customer(server, server.token("alex"), name="Grace Hopper")
    alice = yclient(server, cid, server.token("alex"), name="alex-node")
    bob = yclient(server, cid, server.token("sam"), name="sam-node")
    alice.wait_synced()
    bob.wait_synced()

    a_state = {"user": {"name": "alex", "color": "#d33"}}
    b_state: dict[str, Any] = {"user": {"name": "sam", "color": "#33d"}}
    mark_a, mark_b = alice.mark(), bob.mark()
    alice.send("awareness", state=a_state)
    bob.send("awareness", state=b_state)

    def shows(client: YClient, state: dict[str, Any]) -> Callable[[Event], bool]:
        return lambda e: (e["event"] == "awareness"
                          and e["states"].get(str(client.client_id)) == state)

    def removes(client: YClient) -> Callable[[Event], bool]:
        return lambda e: e["event"] == "awareness" and client.client_id in e["removed"]

    alice.wait_for(shows(bob, b_state), "sam's awareness", after=mark_a)
    bob.wait_for(shows(alice, a_state), "alex's awareness", after=mark_b)

    # query-awareness (which the stock provider never sends) is answered with both states.
    mark_a = alice.mark()
    alice.send("queryAwareness")
    answer = alice.wait_for(
        lambda e: e["event"] == "frame" and e["dir"] == "in" and e.get("kind") == "awareness",
        "an awareness answer to query-awareness", after=mark_a)
    assert answer["states"].get(str(bob.client_id)) == b_state, alice.log_tail()
    assert answer["states"].get(str(alice.client_id)) == a_state, alice.log_tail()

    # Sam goes offline (a goodbye: his state is removed at alex's), then both edit: the
    # edits are concurrent for certain.
    mark_a, mark_b = alice.mark(), bob.mark()
    bob.send("disconnect")
    bob.wait_for(lambda e: e["event"] == "status" and e["status"] == "disconnected",
                 "disconnected", after=mark_b)
    alice.wait_for(removes(bob), "sam's awareness removed when he went offline", after=mark_a)
    alice.send("set", key="city", value="Arlington")
    alice.wait_echo(alice.insert_note(0, "alpha "))
    bob.send("set", key="city", value="New York")
    bob.send("insertNote", index=0, text="beta ")
    bob.send("set", key="zip", value="10001")
    mark_a, mark_b = alice.mark(), bob.mark()
    bob.send("reconnect")

    def has_all(e: Event) -> bool:
        return ("alpha " in e["notes"] and "beta " in e["notes"]
                and e["fields"].get("zip") == "10001")

    alice.wait_doc(has_all, "sam's offline edits", after=mark_a)
    bob.wait_doc(has_all, "alex's edits", after=mark_b)
    # Each has every edit of both (one client's updates arrive in order, zip last).
    a, b = alice.dump(), bob.dump()
    assert (a["fields"], a["notes"]) == (b["fields"], b["notes"])
    assert a["fields"]["city"] in {"Arlington", "New York"}
    assert a["fields"]["name"] == "Grace Hopper"
    # Back online, his next awareness change reaches alex. (The state the stock provider
    # re-sends on reconnecting keeps the clock of its goodbye, so stock clients ignore it
    # until the next change or the 15 s renewal: y-protocols' rule, as on the Node server.)
    b_state = {**b_state, "cursor": 6}
    mark_a = alice.mark()
    bob.send("awareness", state=b_state)
    alice.wait_for(shows(bob, b_state), "sam's awareness after he reconnected", after=mark_a)

    # A client that vanishes without a goodbye is removed from the others' awareness.
    mark_a = alice.mark()
    bob.kill()
    alice.wait_for(removes(bob), "sam's awareness removed after his client vanished",
                   after=mark_a)


def _expect_denied(client: YClient, *, timeout: float = 10) -> Event:
    """The client got y-protocols' permission-denied and its socket was closed by the
    server, and not one frame of document content or awareness arrived before that."""
    denied = client.wait_for(lambda e: e["event"] == "permission-denied",
                             "permission denied", timeout=timeout)
    assert denied["reason"].strip(), client.log_tail()
    closed = client.wait_for(lambda e: e["event"] == "connection-close" and not e["local"],
                             "the server closing the socket")
    # A code the stock provider takes as final (4400-4499): no reconnect loop.
    assert 4400 <= closed["code"] < 4500, client.log_tail()
    incoming = [e for e in client.since(0, "frame") if e["dir"] == "in"]
    assert not [e for e in incoming if e.get("kind") in CONTENT_KINDS], client.log_tail()
    dump = client.dump()
    assert (dump["fields"], dump["notes"], dump["synced"]) == ({}, "", False), dump
    assert client.since(0, "synced") == [], client.log_tail()
    return denied


def test_customer_user_is_denied_another_customers_document(
    server: ServerHandle, yclient: YFactory,
) -> None:
    """A ``customer`` user opening another customer's document gets permission denied, the
    socket closed and none of its content (nor its readers' awareness), while its own
    document opens; the watching rep never sees the intruder's awareness."""
    server.add_user("alex")
    rep_token = server.token("alex")
    own = create_customer(server, rep_token, name="Carol Own")
    other = create_customer(server, rep_token, name="Secret Person",
                            address={"city": "Hidden Town"})
    server.add_user("carol", role="customer", customer_id=own)
    carol_token = server.token("carol")

    rep = yclient(server, other, rep_token, name="rep-node")
    rep.wait_synced()
    mark = rep.mark()
    rep.send("awareness", state={"user": {"name": "alex"}})
    rep.wait_for(lambda e: (e["event"] == "frame" and e["dir"] == "in"
                            and e.get("kind") == "awareness"
                            and e["states"].get(str(rep.client_id)) is not None),
                 "own awareness back", after=mark)
    rep.wait_echo(rep.insert_note(0, "private note"))

    intruder = yclient(server, other, carol_token, name="carol-on-other")
    denied = _expect_denied(intruder)
    assert "Secret" not in denied["reason"]
    dump = intruder.dump()
    assert str(rep.client_id) not in dump["awareness"], dump

    # The rep's view of the room, asked after the denial: no trace of the intruder.
    mark = rep.mark()
    rep.send("queryAwareness")
    answer = rep.wait_for(
        lambda e: e["event"] == "frame" and e["dir"] == "in" and e.get("kind") == "awareness",
        "awareness answer", after=mark)
    assert set(answer["states"]) == {str(rep.client_id)}, answer

    # Positive control: the same token opens carol's own document.
    mine = yclient(server, own, carol_token, name="carol-on-own")
    assert mine.wait_synced()["fields"].get("name") == "Carol Own"
    assert mine.since(0, "permission-denied") == []


def test_forged_expired_and_missing_tokens_are_denied(
    server_factory: Callable[..., ServerHandle], yclient: YFactory,
) -> None:
    """A token signed with another key, an expired token of the real key, garbage and no
    token at all: each client gets permission denied and no content. (The server's auth
    deadline is shortened to 1 s so the no-token case is told quickly.)"""
    server = server_factory("--auth-timeout", "1")
    server.add_user("alex")
    cid = create_customer(server, server.token("alex"), name="Linus Pauling",
                          address={"city": "Portland"})
    now = time.time()
    forged = jwt.encode({"sub": "alex", "role": "rep", "cid": None, "tv": 0,
                         "iat": now, "exp": now + 600}, "not the server's key" * 2,
                        algorithm="HS256")
    with AuthService(server.db_path) as auth:
        user = auth.get_user("alex")
        assert user is not None
        expired, _ = auth.issue_access(user, now=now - 3600)
    tokens: dict[str, str | None] = {"forged": forged, "expired": expired,
                                     "garbage": "not-a-jwt", "none": None}
    clients = {kind: yclient(server, cid, token, name=f"token-{kind}")
               for kind, token in tokens.items()}
    reasons = {kind: _expect_denied(client)["reason"] for kind, client in clients.items()}
    assert "expired" in reasons["expired"].lower(), reasons
    good = yclient(server, cid, server.token("alex"), name="control")
    assert good.wait_synced()["fields"].get("city") == "Portland"


def test_token_in_an_auth_message_instead_of_the_url(
    server: ServerHandle, yclient: YFactory,
) -> None:
    """No token in the URL, then the auth message ``[2, 1, token]`` on the open socket: what
    the stock provider sent before it (sync step 1, awareness) is answered after it, so the
    provider syncs; a forged token in that message is denied like one in the URL."""
    server.add_user("alex")
    cid = create_customer(server, server.token("alex"), name="Marie Curie")
    for token, expect_ok in ((server.token("alex"), True), ("forged." * 20, False)):
        node = yclient(server, cid, None, name=f"auth-message-{expect_ok}")
        node.wait_for(lambda e: e["event"] == "status" and e["status"] == "connected",
                      "connected")
        node.send("authMessage", token=token)
        if expect_ok:
            assert node.wait_synced()["fields"].get("name") == "Marie Curie"
        else:
            _expect_denied(node)


def test_writer_gets_its_update_back_once_stored(
    server: ServerHandle, yclient: YFactory,
) -> None:
    """The stock provider's own update comes back from the server (its confirmation) and
    the provider stays synced and connected; its awareness comes back too; edits made while
    disconnected are echoed after it reconnects; the echoed edits are durable: after a crash
    (SIGKILL) and restart of the server, HTTP and a fresh Node client both have them."""
    server.add_user("alex")
    token = server.token("alex")
    cid = create_customer(server, token, name="Rosalind Franklin")
    node = yclient(server, cid, token, name="writer")
    node.wait_synced()
    for value in ("Cambridge", "London", "Paris"):
        mark = node.mark()
        echo = node.wait_echo(node.set("city", value), after=mark)
        assert echo["kind"] == "sync-update", echo
    mark = node.mark()
    node.wait_echo(node.insert_note(0, "stored before the echo"), after=mark)
    # Alone in the room, its awareness comes back too: the provider's 30 s watchdog counts
    # any incoming message as a sign of life, and the 15 s awareness renewal is its only
    # message when nobody edits.
    mark = node.mark()
    state = {"user": {"name": "alex"}}
    node.send("awareness", state=state)
    node.wait_for(lambda e: (e["event"] == "frame" and e["dir"] == "in"
                             and e.get("kind") == "awareness"
                             and e["states"].get(str(node.client_id)) == state),
                  "own awareness back from the server", after=mark)
    dump = node.dump()
    assert dump["synced"] and dump["connected"], node.log_tail()
    assert [e for e in node.since(0, "synced") if not e["synced"]] == [], node.log_tail()
    assert node.since(0, "connection-close") == [], node.log_tail()

    # Edits made while disconnected (offline) reach the server in the provider's sync
    # step 2 after it reconnects, and are echoed like any update.
    mark = node.mark()
    node.send("disconnect")
    node.wait_for(lambda e: e["event"] == "status" and e["status"] == "disconnected",
                  "disconnected", after=mark)
    clock = node.set("state", "MA")
    mark = node.mark()
    node.send("reconnect")
    node.wait_synced(after=mark)
    node.wait_echo(clock, after=mark)
    assert node.dump()["fields"]["state"] == "MA", node.log_tail()

    server.kill()
    server.restart()
    response = httpx.get(f"{server.http_url}/customers/{cid}", timeout=scaled(10),
                         headers={"Authorization": f"Bearer {server.token('alex')}"})
    assert response.status_code == 200, response.text
    assert response.json()["address"]["city"] == "Paris"
    assert response.json()["address"]["state"] == "MA"
    fresh = yclient(server, cid, server.token("alex"), name="after-restart")
    synced = fresh.wait_synced()
    assert synced["fields"].get("city") == "Paris"
    assert synced["notes"] == "stored before the echo"
    assert synced["fields"].get("state") == "MA"


# Any letter case names the same customer (issue 11), so an upper-case UUID is a valid
# room; a UUID with a letter that is not hex, or one digit short, is not.
@pytest.mark.parametrize("room", ["not-a-uuid", "0B9E4C2A-5F1D-4E3B-9A7C-2D8F6E1A4B3G",
                                  "0b9e4c2a-5f1d-4e3b-9a7c-2d8f6e1a4b3"])
def test_room_that_is_not_a_customer_id_is_refused(
    server: ServerHandle, yclient: YFactory, room: str,
) -> None:
    """A room name that is not a customer UUID gets permission denied (with a
    reason that says what is expected) and no content, even with a valid rep token."""
    server.add_user("alex")
    node = yclient(server, room, server.token("alex"), name="bad-room")
    denied = _expect_denied(node)
    assert "customer" in denied["reason"].lower(), denied
