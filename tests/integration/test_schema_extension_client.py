"""A field added to the field table alone reaches the client's faces: the replica's
directory (a new column, migrated into an existing file without losing a row), offline
search, ``liveedit client show`` (card and JSON) and ``search``, without a server; the
end-to-end path (server → replica → CLI) is in test_schema_extension.py."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest

from app.core import ClientCore
from app.replica import Replica
from liveedit.client_cli import main as client_main
from sync.protocol import schema
from sync.protocol.messages import DirectoryEntry

from .extended_liveedit import PHONE2


def entry(n: int, cursor: int, **values: str | None) -> DirectoryEntry:
    """A directory entry with every column of the table as it is now."""
    columns = {f.name: values.get(f.name) for f in schema.directory_fields()}
    return DirectoryEntry(str(uuid.UUID(int=n, version=4)), columns, 1.0, False, cursor)


def test_new_directory_field_migrates_an_existing_replica_and_is_searchable(
    tmp_path: Path,
) -> None:
    """A replica made before the field gets its column on open, keeps its rows, and
    finds customers by the new field's value once the server sends it."""
    path = tmp_path / "replica.db"
    with Replica.open(path) as replica:
        replica.apply_directory([entry(1, 1, name="Ada Lovelace", city="London")])
    with schema.extended(PHONE2), Replica.open(path) as replica:
        [row] = replica.search("ada")
        assert row.city == "London" and row.phone2 is None
        replica.apply_directory([entry(1, 2, name="Ada Lovelace", phone2="555 7781")])
        assert [r.name for r in replica.search("7781")] == ["Ada Lovelace"]
        stored = replica.get_directory(row.customer_id)
        assert stored is not None and stored.values["phone2"] == "555 7781"
        assert replica.search("7781", order_by="phone2")[0].phone2 == "555 7781"


def test_new_field_reaches_offline_search_and_client_show(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """Created offline with the new field: search finds it, ``show`` prints its label and
    value, ``show --json`` and ``search --json`` carry it."""
    data_dir = tmp_path / "profile"

    async def create() -> str:
        core = ClientCore.open(data_dir)
        try:
            cid = await core.create_customer({"name": "Grace Hopper", "phone2": "555 1906"})
            assert [r.customer_id for r in core.search("1906")] == [cid]
            return cid
        finally:
            await core.close()

    with schema.extended(PHONE2):
        cid = asyncio.run(create())
        capsys.readouterr()
        assert client_main(["show", cid, "--data-dir", str(data_dir)]) == 0
        card = capsys.readouterr().out
        assert "Second phone" in card and "555 1906" in card
        assert client_main(["show", cid, "--json", "--data-dir", str(data_dir)]) == 0
        assert json.loads(capsys.readouterr().out)["phone2"] == "555 1906"
        assert client_main(["search", "1906", "--json", "--data-dir", str(data_dir)]) == 0
        [hit] = json.loads(capsys.readouterr().out)
        assert hit["id"] == cid and hit["phone2"] == "555 1906"
