"""The first directory sync of a new client: pages staged, then moved into the directory
and its indexes at once (issue 14); resumable, never a half-built index."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from pathlib import Path

import msgpack
import pytest

from app.directory_writer import CURSOR_SETTING, DirectoryWriter, feed_cursor
from app.replica import Replica, ReplicaError
from sync.protocol.messages import DirectoryEntry, DirectoryRows

NAMES = ["Ada Lovelace", "ada byron", "Grace Hopper", "Alan Turing", "Ève Curie", None,
         "Zoë Ng", "Alan Kay", "grace kelly", "Ada Lovelace"]
QUERIES = ["", "ada", "al", "grace h", "eve", "497", "4973210", "823 497", "zo", "x y"]


def entries(start: int = 0) -> list[DirectoryEntry]:
    """Ten customers (two share a name, one has none, one is deleted), cursors 1…10."""
    return [
        DirectoryEntry(str(uuid.UUID(int=i + 1 + start)), {
            "name": name, "email": f"c{i}@example.org", "phone": f"(823) 49{i}-32{i}0",
            "city": "Paris" if i % 2 else "Lyon", "state": None, "zip": f"7500{i}",
        }, 1000.0 + i, i == 3, i + 1 + start)
        for i, name in enumerate(NAMES)
    ]


def store(writer: DirectoryWriter, part: list[DirectoryEntry], cursor: int,
          more: bool) -> int:
    """Store one page of the pass."""
    return asyncio.run(writer.store_page(DirectoryRows.of(tuple(part)), cursor, more=more))


def results(replica: Replica) -> list[list[tuple[str, bool]]]:
    """What every query of QUERIES finds (with deleted customers), in order."""
    return [[(r.customer_id, r.deleted) for r in replica.search(q, 50, include_deleted=True)]
            for q in QUERIES]


def test_a_bulk_loaded_directory_searches_like_one_stored_row_by_row(tmp_path: Path) -> None:
    """Pages staged then moved in at once find exactly what row-by-row storage finds."""
    rows = entries()
    with Replica.open(tmp_path / "slow.db") as slow:
        slow.apply_directory(rows)
        expected = results(slow)
    writer = DirectoryWriter(tmp_path / "fast.db")
    assert store(writer, rows[:6], 6, more=True) == 0
    assert store(writer, rows[6:], 10, more=False) == 10
    writer.close()
    with Replica.open(tmp_path / "fast.db") as fast:
        assert results(fast) == expected
        assert any(expected)  # the queries do find something
        assert fast.get_setting(CURSOR_SETTING) == "10"
        fast.apply_directory([DirectoryEntry(rows[0].customer_id, {"name": "Zed"}, 2.0,
                                             False, 11)])  # triggers are back
        assert [r.customer_id for r in fast.search("zed")] == [rows[0].customer_id]


def test_an_interrupted_first_sync_resumes_and_shows_nothing_half_built(
        tmp_path: Path) -> None:
    """After a restart mid-pass the feed resumes after the last page staged, search shows
    none of it meanwhile, and a customer sent twice keeps its newest row."""
    rows = entries()
    writer = DirectoryWriter(tmp_path / "r.db")
    store(writer, rows[:5], 5, more=True)
    writer.close()  # the app quits
    with Replica.open(tmp_path / "r.db") as replica:
        assert feed_cursor(replica) == 5
        assert replica.search("") == [] and replica.count("ada") == 0
    newer = DirectoryEntry(rows[0].customer_id, {"name": "Ada King"}, 5.0, False, 11)
    writer = DirectoryWriter(tmp_path / "r.db")
    store(writer, [*rows[5:], newer], 11, more=False)
    writer.close()
    with Replica.open(tmp_path / "r.db") as replica:
        assert feed_cursor(replica) == 11
        assert replica.count("", include_deleted=True) == 10
        assert [r.name for r in replica.search("king")] == ["Ada King"]


def test_a_live_change_during_the_load_is_kept_and_moves_no_cursor(tmp_path: Path) -> None:
    """A live change arriving mid-pass is staged (the feed still resumes after the last
    page), then lands in the directory with the rest."""
    rows = entries()
    writer = DirectoryWriter(tmp_path / "r.db")
    store(writer, rows[:5], 5, more=True)
    live = DirectoryEntry(str(uuid.UUID(int=99)), {"name": "Live One"}, 9.0, False, 50)
    assert asyncio.run(writer.store((live,), advance=False)) == 0
    with Replica.open(tmp_path / "r.db") as replica:
        assert feed_cursor(replica) == 5
    store(writer, rows[5:], 10, more=False)
    writer.close()
    with Replica.open(tmp_path / "r.db") as replica:
        assert [r.name for r in replica.search("live")] == ["Live One"]
        assert feed_cursor(replica) == 10


def test_local_edits_during_the_load_keep_their_rows_and_keys(tmp_path: Path) -> None:
    """Customers edited locally mid-load (one new, one the pass also sends): every row
    arrives once, the server's newer row wins, and search finds all of them."""
    rows = entries()
    writer = DirectoryWriter(tmp_path / "r.db")
    store(writer, rows[:5], 5, more=True)
    with Replica.open(tmp_path / "r.db") as replica:
        replica.upsert_local_directory(str(uuid.UUID(int=77)), {"name": "Ada Local",
                                                                "phone": "111 2223"}, False)
        replica.upsert_local_directory(rows[6].customer_id, {"name": "Zoë Old"}, False)
    store(writer, rows[5:], 10, more=False)
    writer.close()
    with Replica.open(tmp_path / "r.db") as replica:
        assert replica.count("", include_deleted=True) == 11
        assert [r.name for r in replica.search("ada")] == [
            "ada byron", "Ada Local", "Ada Lovelace", "Ada Lovelace"]
        assert [r.name for r in replica.search("zo")] == ["Zoë Ng"]
        assert [r.name for r in replica.search("1112223")] == ["Ada Local"]
        assert [r.name for r in replica.search("492-3220")] == ["Grace Hopper"]


def test_an_old_digits_index_is_rebuilt_as_trigrams_on_open(tmp_path: Path) -> None:
    """A replica whose digits index holds every suffix (before issue 14) is rebuilt on open
    and still finds a number by any run of its digits."""
    with Replica.open(tmp_path / "r.db") as replica:
        replica.apply_directory(entries())
    conn = sqlite3.connect(tmp_path / "r.db")
    conn.execute("DROP TABLE directory_digits")
    conn.execute("CREATE VIRTUAL TABLE directory_digits USING fts5(phone)")
    conn.commit()
    conn.close()
    with Replica.open(tmp_path / "r.db") as replica:
        made = replica._one("SELECT sql FROM sqlite_schema WHERE name = 'directory_digits'")
        assert "trigram" in made
        assert [r.name for r in replica.search("492-3220")] == ["Grace Hopper"]
        assert [r.name for r in replica.search("9232")] == ["Grace Hopper"]


def test_a_damaged_staged_page_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    """A staged page whose columns differ in length (a damaged file) stops the move with a
    ReplicaError naming it; nothing is moved in and the staged pages stay."""
    rows = entries()
    writer = DirectoryWriter(tmp_path / "r.db")
    store(writer, rows[:5], 5, more=True)
    writer.close()
    with sqlite3.connect(tmp_path / "r.db") as conn:
        (blob,) = conn.execute("SELECT rows FROM directory_load").fetchone()
        page = msgpack.unpackb(blob)
        page["cursors"] = page["cursors"][:-1]
        conn.execute("UPDATE directory_load SET rows = ?", (msgpack.packb(page),))
    writer = DirectoryWriter(tmp_path / "r.db")
    with pytest.raises(ReplicaError, match=r"staged page .* different lengths"):
        store(writer, rows[5:], 10, more=False)
    writer.close()
    with Replica.open(tmp_path / "r.db") as replica:
        assert replica.count("", include_deleted=True) == 0 and feed_cursor(replica) == 5
