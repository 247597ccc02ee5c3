"""A new client's first directory sync over the real server (issue 14): several
DirectoryPages bulk-loaded into the replica, then searched like the server searches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from app.core import ClientCore
from app.directory_writer import CURSOR_SETTING, LOAD_CURSOR_SETTING
from app.replica.schema import digit_string
from sync.server.auth import AuthService
from sync.server.demo_data import generate_customers
from sync.server.importer import import_customers

from .conftest import DEFAULT_PASSWORD, scaled

CUSTOMERS = 2_500  # three pages of the pass (page size 1,000)


async def test_a_first_sync_of_several_pages_finds_what_the_server_finds(
        server_factory: Any, tmp_path: Path) -> None:
    """All customers arrive, the load leaves no staged state, and name, e-mail and phone
    searches find the same customers as the server's own search."""
    records = generate_customers(CUSTOMERS, seed=14)
    import_customers(tmp_path / "big.db", records)
    with AuthService(tmp_path / "big.db") as auth:
        auth.add_user("alex", DEFAULT_PASSWORD, "rep")
    server = server_factory(db_name="big.db")
    core = ClientCore.open(tmp_path / "alex")
    try:
        await core.login(server.http_url, "alex", DEFAULT_PASSWORD)
        await core.sync(scaled(60))
        assert core.count("") == CUSTOMERS
        assert core.replica.get_setting(LOAD_CURSOR_SETTING) is None
        assert int(core.replica.get_setting(CURSOR_SETTING) or 0) > 0
        phone = records[7]["phone"]
        digits = digit_string(phone) or ""
        queries = [records[3]["name"].split()[0], records[5]["email"].split("@")[0],
                   digits[-7:], phone]
        headers = {"Authorization": f"Bearer {server.token('alex')}"}
        async with httpx.AsyncClient(headers=headers, timeout=scaled(10)) as http:
            for query in queries:
                mine = {r.customer_id for r in core.search(query, limit=5000)}
                response = await http.get(f"{server.http_url}/customers",
                                          params={"q": query, "limit": 500})
                assert response.status_code == 200, response.text
                theirs = {c["id"] for c in response.json()["items"]}
                assert mine and theirs <= mine, query
                assert theirs or query != queries[0]  # the server finds the name too
    finally:
        await core.close()
