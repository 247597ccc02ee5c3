"""``liveedit client …`` as real subprocesses against the real server, one temp profile each.

The subprocesses get keyring's fail backend (no OS keyring, as on CI), so every ``login``,
``sync``, ``history`` and ``revert`` reads the password from stdin: the documented
no-keyring path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import DEFAULT_PASSWORD, ServerHandle, scaled

NO_KEYRING = ("liveedit client: warning: no OS keyring: your sign-in is not saved; "
              "pass --password-stdin to sync")
ERROR = "liveedit client: error: "
_ENV = {**os.environ, "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}


@dataclass
class Profile:
    """One user's ``--data-dir`` on one server, driven through the CLI."""

    server: ServerHandle
    user: str
    data_dir: Path

    def run(self, *args: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``liveedit client ARGS --data-dir DIR`` (``--password-stdin`` if a password)."""
        extra = ["--password-stdin"] if password is not None else []
        return subprocess.run(
            [sys.executable, "-m", "liveedit", "client", *args, *extra,
             "--data-dir", str(self.data_dir)],
            input="" if password is None else password + "\n", capture_output=True,
            text=True, timeout=scaled(90), check=False, env=_ENV,
        )

    def ok(self, *args: str, password: str | None = None) -> str:
        """Run a command that must succeed; its stdout."""
        result = self.run(*args, password=password)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result.stdout

    def json(self, *args: str) -> Any:
        """Run a command with ``--json`` and parse its stdout."""
        return json.loads(self.ok(*args, "--json"))

    def login(self) -> subprocess.CompletedProcess[str]:
        """Sign in with the right password from stdin."""
        result = self.run("login", self.server.http_url, self.user, password=DEFAULT_PASSWORD)
        assert result.returncode == 0, result.stderr
        return result

    def sync(self) -> None:
        """Sync until fully in sync (the password comes from stdin: no keyring)."""
        self.ok("sync", "--timeout", str(scaled(20)), password=DEFAULT_PASSWORD)

    def hold(self, customer_id: str) -> None:
        """Open a customer (so it is held offline) and sync it here."""
        self.ok("show", customer_id)
        self.sync()

    def field(self, customer_id: str, name: str) -> Any:
        """A field of the customer as ``show --json`` prints it."""
        view = self.json("show", customer_id)
        return view["address"][name] if name in view["address"] else view[name]


@pytest.fixture
def profile(server: ServerHandle, tmp_path: Path) -> Any:
    """Make signed-in profiles: ``profile("alex")`` adds the user and logs in."""

    def make(user: str, *, login: bool = True) -> Profile:
        server.add_user(user)
        p = Profile(server, user, tmp_path / f"profile-{user}")
        if login:
            p.login()
        return p

    return make


def assert_one_error(result: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    """The command failed with ``code`` and one stderr line ``liveedit client: error: …``."""
    assert result.returncode == code, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(ERROR), lines[0]
    assert text in lines[0], lines[0]


def create(p: Profile, *values: str) -> str:
    """Create a customer through the CLI, sync it to the server; its id."""
    customer_id = p.ok("create", *values).strip()
    p.sync()
    return str(uuid.UUID(customer_id))


def test_login_sync_search_and_show_json(server: ServerHandle, profile: Any) -> None:
    """Login warns about the missing keyring; sync fetches the directory; search and show
    --json give the customer in the API shape plus notes, tasks and comments."""
    server.add_user("alex")
    body = {"name": "Ada Lovelace", "email": "ada@example.com", "phone": "555-0100",
            "address": {"street1": "12 Analytical Way", "street2": None, "city": "London",
                        "state": "LDN", "zip": "N1 9GU"}}
    created = httpx.post(f"{server.http_url}/customers", json=body, timeout=scaled(10),
                         headers={"Authorization": f"Bearer {server.token('alex')}"})
    assert created.status_code == 201, created.text
    cid = created.json()["id"]
    sam = profile("sam", login=False)
    login = sam.login()
    assert login.stderr.splitlines() == [NO_KEYRING]
    assert "signed in" in login.stdout
    sam.sync()
    hits = sam.json("search", "lovel")
    assert [(h["id"], h["name"], h["city"]) for h in hits] == [(cid, "Ada Lovelace", "London")]
    early = sam.run("show", cid, "--json")
    assert early.returncode == 0 and "next 'liveedit client sync'" in early.stderr
    assert json.loads(early.stdout)["name"] == "Ada Lovelace"
    sam.sync()
    view = sam.json("show", cid)
    assert set(view) >= {"id", "name", "address", "notes", "tasks", "comments"}
    assert view["id"] == cid and view["name"] == "Ada Lovelace"
    assert view["address"] == body["address"]
    assert (view["notes"], view["tasks"], view["comments"]) == ("", [], [])
    card = sam.ok("show", cid)
    assert "Ada Lovelace" in card and "12 Analytical Way" in card


def test_offline_set_is_queued_then_synced_to_the_server(server: ServerHandle,
                                                         profile: Any) -> None:
    """An edit made while the server is down is queued, listed in the outbox, and after a
    restart and sync the HTTP API shows it and the outbox is empty."""
    alex = profile("alex")
    cid = create(alex, "name=Grace Hopper", "city=Arlington")
    server.stop()
    assert alex.ok("set", cid, "city=Paris").strip() == "queued 1 change (1 waiting to sync)"
    entries = alex.json("outbox")
    assert [(e["customer_id"], e["summary"]) for e in entries] == [(cid, "City")]
    assert cid in alex.ok("outbox")
    server.restart()
    alex.sync()
    assert alex.json("outbox") == []
    assert "nothing waiting" in alex.ok("outbox")
    response = httpx.get(f"{server.http_url}/customers/{cid}", timeout=scaled(10),
                         headers={"Authorization": f"Bearer {server.token('alex')}"})
    assert response.status_code == 200
    assert response.json()["address"]["city"] == "Paris"


def test_concurrent_edits_conflict_on_one_side_and_resolve_mine(profile: Any) -> None:
    """Two profiles set the same field unsynced; after syncing, exactly one lists the
    conflict; resolve --mine makes both converge on that value with no conflict left."""
    alex, sam = profile("alex"), profile("sam")
    cid = create(alex, "name=Alan Turing", "city=Wilmslow")
    sam.sync()
    sam.hold(cid)
    alex.ok("set", cid, "city=Paris")
    sam.ok("set", cid, "city=Lyon")
    for _ in range(2):
        alex.sync()
        sam.sync()
    assert alex.field(cid, "city") == sam.field(cid, "city")
    found = {p.user: p.json("conflicts") for p in (alex, sam)}
    losers = [p for p in (alex, sam) if found[p.user]]
    assert len(losers) == 1, found
    loser = losers[0]
    other = sam if loser is alex else alex
    [conflict] = found[loser.user]
    assert conflict["customer_id"] == cid and conflict["field"] == "city"
    assert {conflict["mine"], conflict["theirs"]} == {"Paris", "Lyon"}
    assert conflict["author"] == other.user
    assert "city" in loser.ok("conflicts")
    resolved = loser.ok("resolve", cid, "city", "--mine")
    assert "queued 1 change" in resolved
    for _ in range(2):
        loser.sync()
        other.sync()
    assert alex.field(cid, "city") == sam.field(cid, "city") == conflict["mine"]
    assert alex.json("conflicts") == [] and sam.json("conflicts") == []


def test_errors_are_one_line_with_exit_codes_and_change_nothing(profile: Any,
                                                                tmp_path: Path) -> None:
    """Unknown customer (1), unknown field (2), invalid e-mail (2), bad customer id (2) and
    a wrong password (1) each print one error line and leave the outbox as it was."""
    alex = profile("alex")
    cid = create(alex, "name=Edsger Dijkstra")
    unknown = str(uuid.uuid4())
    assert_one_error(alex.run("show", unknown), 1, unknown)
    assert_one_error(alex.run("set", unknown, "city=Oslo"), 1, unknown)
    assert_one_error(alex.run("set", cid, "colour=blue"), 2, "colour")
    assert_one_error(alex.run("set", cid, "email=not-an-email"), 2, "email")
    assert_one_error(alex.run("show", "not-a-uuid"), 2, "not-a-uuid")
    assert alex.json("outbox") == []
    assert alex.json("show", cid)["email"] is None
    stranger = Profile(alex.server, "alex", tmp_path / "wrong-password")
    wrong = stranger.run("login", alex.server.http_url, "alex", password="not the password")
    assert_one_error(wrong, 1, "wrong username or password")
    assert not stranger.data_dir.exists()
    assert_one_error(stranger.run("outbox"), 1, "login")


def test_sync_with_the_server_down_fails_and_keeps_the_edit(server: ServerHandle,
                                                           profile: Any) -> None:
    """sync with the server stopped exits 1 with one line saying the edit stays queued,
    and the edit is still in the outbox."""
    alex = profile("alex")
    cid = create(alex, "name=Barbara Liskov")
    server.stop()
    alex.ok("set", cid, "zip=02139")
    result = alex.run("sync", "--timeout", str(scaled(10)), password=DEFAULT_PASSWORD)
    assert_one_error(result, 1, "1 change(s) stay queued")
    assert [e["summary"] for e in alex.json("outbox")] == ["Zip"]


def test_history_and_field_revert_reach_the_other_profile(profile: Any) -> None:
    """history lists the server's versions; revert --field city queues the old value,
    which the other profile sees after both sync."""
    alex, sam = profile("alex"), profile("sam")
    cid = create(alex, "name=Margaret Hamilton", "city=Boston")
    alex.ok("set", cid, "city=Houston")
    alex.sync()
    versions = json.loads(alex.ok("history", cid, "--json", password=DEFAULT_PASSWORD))
    assert len(versions) >= 2
    assert [v["seq"] for v in versions] == sorted((v["seq"] for v in versions), reverse=True)
    assert {v["author"] for v in versions} == {"alex"}
    first = versions[-1]["seq"]
    assert str(first) in alex.ok("history", cid, password=DEFAULT_PASSWORD)
    reverted = alex.ok("revert", cid, str(first), "--field", "city", password=DEFAULT_PASSWORD)
    assert "queued 1 change (1 waiting to sync)" in reverted
    assert alex.field(cid, "city") == "Boston"
    alex.sync()
    sam.sync()
    sam.hold(cid)
    assert sam.field(cid, "city") == "Boston"
    assert sam.field(cid, "name") == "Margaret Hamilton"
