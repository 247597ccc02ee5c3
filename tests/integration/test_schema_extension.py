"""Issue 11: a field added to the field table alone reaches every face.

The table gets one test-only row, :data:`PHONE2` (``schema.extended``), here and in the
server process (``tests.integration.extended_liveedit``); nothing else is edited. The
server half: HTTP GET/PATCH and the OpenAPI models, import, the directory over ``/ws`` and
its search, history over HTTP, and an existing SQLite database that gains the column
without losing data. Client faces (offline search, CLI show, form) use the same fixture:
``extended_server`` yields the extended table and a running server built from it.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sync.protocol import schema
from sync.protocol.messages import DirectoryPage, DirectorySubscribe
from sync.server.importer import import_customers

from .conftest import ServerHandle, scaled
from .extended_liveedit import PHONE2
from .test_server_sync import rep

EXTENDED = "tests.integration.extended_liveedit"


@pytest.fixture
def extended_server(server_factory: Any) -> Iterator[tuple[tuple[schema.Field, ...], ServerHandle]]:
    """The field table with PHONE2, in this process and in a running server built from it."""
    with schema.extended(PHONE2) as table:
        yield table, server_factory(module=EXTENDED)


def _http(server: ServerHandle, token: str) -> httpx.Client:
    return httpx.Client(base_url=server.http_url, timeout=scaled(10),
                        headers={"Authorization": f"Bearer {token}"})


def test_the_extended_table_reaches_http_openapi_directory_and_history(
    extended_server: tuple[tuple[schema.Field, ...], ServerHandle],
) -> None:
    """phone2: created, patched, validated, searched, in OpenAPI, the feed and history."""
    _, server = extended_server
    server.add_user("rep")
    with _http(server, server.token("rep")) as http:
        created = http.post("/customers", json={"name": "Grace Hopper", "phone2": "555 0101"})
        assert created.status_code == 201, created.text
        cid = created.json()["id"]
        assert created.json()["phone2"] == "555 0101"
        patched = http.patch(f"/customers/{cid}", json={"phone2": " 555 0199 "})
        assert patched.status_code == 200 and patched.json()["phone2"] == "555 0199"
        bad = http.patch(f"/customers/{cid}", json={"phone2": "x" * 41})
        assert bad.status_code == 422 and "phone2" in bad.json()["message"]
        assert http.get(f"/customers/{cid}").json()["phone2"] == "555 0199"
        found = http.get("/customers", params={"q": "0199"}).json()["items"]
        assert [c["id"] for c in found] == [cid]
        models = http.get("/openapi.json").json()["components"]["schemas"]
        assert models["Customer"]["properties"]["phone2"]["title"] == "Second phone"
        assert "phone2" in models["DirectoryEntryModel"]["properties"]
        feed = http.get("/directory").json()["entries"]
        assert [e["phone2"] for e in feed if e["id"] == cid] == ["555 0199"]
        history = http.get(f"/customers/{cid}/history").json()["items"]
        assert history[0]["changes"] == ["phone2"]
        first = http.get(f"/customers/{cid}/versions/{history[-1]['seq']}").json()
        assert first["phone2"] == "555 0101"


async def test_the_extended_table_reaches_the_directory_over_ws(
    extended_server: tuple[tuple[schema.Field, ...], ServerHandle],
) -> None:
    """The directory pass carries phone2 to a /ws follower (both sides read the table)."""
    _, server = extended_server
    client = await rep(server, "alex")
    with _http(server, server.token("alex")) as http:
        cid = http.post("/customers", json={"name": "Ada", "phone2": "555 7777"}).json()["id"]
    await client.send(DirectorySubscribe(0))
    page = await client.expect(DirectoryPage)
    assert [e.value("phone2") for e in page.entries() if e.customer_id == cid] == ["555 7777"]
    await client.close()


def test_import_validates_and_stores_the_extended_field(tmp_path: Any,
                                                        server_factory: Any) -> None:
    """Import checks phone2 with its rule and the server then serves and searches it."""
    db = tmp_path / "server.db"
    cid = str(uuid.uuid4())
    with schema.extended(PHONE2):
        with pytest.raises(Exception, match="phone2"):
            import_customers(db, [{"id": cid, "name": "Bad", "phone2": 42}])
        assert import_customers(db, [{"id": cid, "name": "Linus", "phone2": "555 4242"}]) == 1
        server = server_factory(module=EXTENDED)
        server.add_user("rep")
        with _http(server, server.token("rep")) as http:
            assert http.get(f"/customers/{cid}").json()["phone2"] == "555 4242"
            assert [c["id"] for c in http.get("/customers", params={"q": "4242"}).json()[
                "items"]] == [cid]


def test_an_existing_database_gains_the_column_and_keeps_its_data(server_factory: Any) -> None:
    """A database made before the row existed: the column is added, nothing is lost."""
    plain = server_factory()
    plain.add_user("rep")
    with _http(plain, plain.token("rep")) as http:
        cid = http.post("/customers", json={"name": "Barbara Liskov", "phone": "555-0100",
                                            "address": {"city": "Boston"}}).json()["id"]
    assert plain.stop() == 0
    conn = sqlite3.connect(plain.db_path)
    assert "phone2" not in {r[1] for r in conn.execute("PRAGMA table_info(directory)")}
    conn.close()
    with schema.extended(PHONE2):
        server = ServerHandle(plain.db_path, module=EXTENDED)
        server.start()
        try:
            with _http(server, server.token("rep")) as http:
                before = http.get(f"/customers/{cid}").json()
                assert before["name"] == "Barbara Liskov" and before["phone2"] is None
                assert before["address"]["city"] == "Boston"
                assert [c["id"] for c in http.get("/customers", params={"q": "Boston"}).json()[
                    "items"]] == [cid]
                http.patch(f"/customers/{cid}", json={"phone2": "555 3131"}).raise_for_status()
                assert [c["id"] for c in http.get("/customers", params={"q": "3131"}).json()[
                    "items"]] == [cid]
        finally:
            server.kill()
    conn = sqlite3.connect(plain.db_path)
    row = conn.execute("SELECT name, city, phone2 FROM directory WHERE customer_id = ?",
                       (cid,)).fetchone()
    conn.close()
    assert row == ("Barbara Liskov", "Boston", "555 3131")


# --- client faces (client-core engineer) --------------------------------------------------


async def test_the_extended_table_reaches_the_client_replica_search_and_cli_show(
    extended_server: tuple[tuple[schema.Field, ...], ServerHandle], tmp_path: Any,
) -> None:
    """phone2 written over HTTP reaches a client: its replica's directory and offline
    search, the core's customer view, and ``liveedit client show`` (label, --json)."""
    import json
    import subprocess
    import sys

    from app.core import ClientCore

    from .conftest import DEFAULT_PASSWORD

    _, server = extended_server
    server.add_user("sam")
    with _http(server, server.token("sam")) as http:
        created = http.post("/customers", json={"name": "Grace Hopper", "phone2": "555 0142"})
        cid = created.json()["id"]
    core = ClientCore.open(tmp_path / "sam")
    try:
        await core.login(server.http_url, "sam", DEFAULT_PASSWORD)
        await core.sync(scaled(20))
        await core.open_customer(cid)
        await core.sync(scaled(20))
        await core.disconnect()
        [hit] = core.search("0142")  # offline: the replica's own index
        assert hit.customer_id == cid and hit.phone2 == "555 0142"
        assert core.customer(cid).fields["phone2"] == "555 0142"
    finally:
        await core.close()

    def show(*extra: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", EXTENDED, "client", "show", cid, *extra,
             "--data-dir", str(tmp_path / "sam")],
            capture_output=True, text=True, timeout=scaled(60), check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    card = show()  # the CLI in a process built from the extended table, as the server
    assert "Second phone" in card and "555 0142" in card
    assert json.loads(show("--json"))["phone2"] == "555 0142"
