"""The server database's migrations (sync/sqlite_migrations.py): versioned, then derived."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from sync.protocol import schema
from sync.server import db
from sync.server.errors import DatabaseError
from sync.server.store import UpdateStore
from sync.sqlite_migrations import derive_directory

#: The directory as the first release created it (every field a column, a fixed index).
_FIRST_RELEASE_DIRECTORY = """
CREATE TABLE directory (
    customer_id TEXT NOT NULL UNIQUE,
    name TEXT, email TEXT, phone TEXT, street1 TEXT, street2 TEXT,
    city TEXT, state TEXT, zip TEXT, tier TEXT,
    updated_at REAL NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    cursor INTEGER NOT NULL UNIQUE
);
CREATE VIRTUAL TABLE directory_fts USING fts5(
    name, email, phone, city, zip,
    content='directory', content_rowid='rowid', tokenize='unicode61'
);
CREATE TRIGGER directory_ai AFTER INSERT ON directory BEGIN
    INSERT INTO directory_fts(rowid, name, email, phone, city, zip)
    VALUES (new.rowid, new.name, new.email, new.phone, new.city, new.zip);
END;
CREATE TRIGGER directory_ad AFTER DELETE ON directory BEGIN
    INSERT INTO directory_fts(directory_fts, rowid, name, email, phone, city, zip)
    VALUES ('delete', old.rowid, old.name, old.email, old.phone, old.city, old.zip);
END;
CREATE TRIGGER directory_au AFTER UPDATE ON directory BEGIN
    INSERT INTO directory_fts(directory_fts, rowid, name, email, phone, city, zip)
    VALUES ('delete', old.rowid, old.name, old.email, old.phone, old.city, old.zip);
    INSERT INTO directory_fts(rowid, name, email, phone, city, zip)
    VALUES (new.rowid, new.name, new.email, new.phone, new.city, new.zip);
END;
"""
CID = "00000000-0000-4000-8000-000000000001"


def _first_release_database(path: Path) -> None:
    """A version-1 database as the first release left it, with one customer."""
    conn = sqlite3.connect(path, isolation_level=None)
    first = db.MIGRATIONS[0].split("CREATE TABLE directory (")[0]
    conn.executescript(first + _FIRST_RELEASE_DIRECTORY + "PRAGMA user_version = 1;")
    conn.execute(
        "INSERT INTO directory (customer_id, name, city, tier, updated_at, cursor) "
        "VALUES (?, 'Ada Lovelace', 'London', 'plus', 1.0, 1)", (CID,),
    )
    conn.close()


def test_a_first_release_database_opens_unchanged_and_searchable(tmp_path: Path) -> None:
    """Its layout already matches the table: nothing is rebuilt, search still works."""
    path = tmp_path / "old.db"
    _first_release_database(path)
    layout = "SELECT name, sql FROM sqlite_master ORDER BY name"
    raw = sqlite3.connect(path)
    before = raw.execute(layout).fetchall()
    store = UpdateStore(path)  # opens, migrates and derives
    try:
        assert raw.execute(layout).fetchall() == before
        [row] = store.search("lond", 10)
        assert row.customer_id == CID and row.fields["name"] == "Ada Lovelace"
    finally:
        store.close()
        raw.close()
    conn = db.connect(path)
    assert not derive_directory(conn, db.DIRECTORY)
    conn.close()


def test_a_new_searchable_field_adds_its_column_and_rebuilds_the_index(tmp_path: Path) -> None:
    """The derived migration: ALTER TABLE ADD COLUMN, index over the new column, data kept."""
    path = tmp_path / "old.db"
    _first_release_database(path)
    extra = schema.Field("phone2", "Second phone", schema.text_rule(40), "Contact",
                         directory=True, searchable=True)
    with schema.extended(extra):
        conn = db.connect(path)
        columns = {r[1] for r in conn.execute("PRAGMA table_info(directory)")}
        fts = [r[1] for r in conn.execute("PRAGMA table_info(directory_fts)")]
        conn.execute("UPDATE directory SET phone2 = '555 0199' WHERE customer_id = ?", (CID,))
        hits = conn.execute("SELECT rowid FROM directory_fts WHERE directory_fts MATCH ?",
                            ('"0199"*',)).fetchall()
        old = conn.execute("SELECT name, city, tier FROM directory").fetchall()
        conn.close()
    assert {"phone2", "tier", "street1"} <= columns  # added; old columns never dropped
    assert fts == [f.name for f in schema.searchable_fields()] + ["phone2"]
    assert len(hits) == 1 and old == [("Ada Lovelace", "London", "plus")]
    conn = db.connect(path)  # without the row again: the index follows the table back
    assert [r[1] for r in conn.execute("PRAGMA table_info(directory_fts)")] == [
        f.name for f in schema.searchable_fields()]
    assert conn.execute("SELECT count(*) FROM directory_fts WHERE directory_fts MATCH ?",
                        ('"london"*',)).fetchone()[0] == 1
    conn.close()


def test_a_newer_database_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    """A schema version above the code's: DatabaseError telling to upgrade, nothing changed."""
    path = tmp_path / "new.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {db.SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(DatabaseError, match="upgrade Live Edit"):
        db.connect(path)
