"""The local replica on a real SQLite file: schema, transactions, outbox, directory search,
notifications, conflicts and field versions."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.replica import DirectoryRow, Replica, ReplicaError, fts_query
from app.replica import directory as replica_directory
from app.replica import schema as replica_schema
from sync.protocol.messages import DirectoryEntry, Notification, NotificationKind

DOC = "customer:00000000-0000-4000-8000-000000000001"
DOC2 = "customer:00000000-0000-4000-8000-000000000002"


@pytest.fixture
def replica(tmp_path: Path) -> Iterator[Replica]:
    """A fresh replica in a folder that does not exist yet."""
    with Replica.open(tmp_path / "profile" / "replica.db") as r:
        yield r


def cid(n: int) -> str:
    """A customer uuid numbered ``n``."""
    return str(uuid.UUID(int=n, version=4))


def entry(n: int, name: str | None, cursor: int, *, deleted: bool = False,
          email: str | None = None, phone: str | None = None, city: str | None = "Springfield",
          zip_code: str | None = "62701") -> DirectoryEntry:
    """A directory entry for customer ``n``."""
    values = {"name": name, "email": email, "phone": phone, "city": city, "state": "IL",
              "zip": zip_code}
    return DirectoryEntry(cid(n), values, 1.0, deleted, cursor)


def names(rows: list[DirectoryRow]) -> list[str | None]:
    """The names of ``rows`` in order."""
    return [r.name for r in rows]


# --- schema ---------------------------------------------------------------------------


def test_open_creates_folders_and_reopen_keeps_data(tmp_path: Path) -> None:
    """Opening creates the folder, sets WAL, the schema version and app id; data survives."""
    path = tmp_path / "a" / "b" / "replica.db"
    with Replica.open(path) as r:
        r.set_setting("username", "alex")
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == replica_schema.SCHEMA_VERSION
    assert conn.execute("PRAGMA application_id").fetchone()[0] == replica_schema.APPLICATION_ID
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    with Replica.open(path) as again:
        assert again.get_setting("username") == "alex"


def test_other_sqlite_database_is_refused_and_left_untouched(tmp_path: Path) -> None:
    """Another program's SQLite file raises ReplicaError and is not converted to WAL."""
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(ReplicaError, match="not a Live Edit replica"):
        Replica.open(path)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    conn.close()


def test_non_database_file_is_refused(tmp_path: Path) -> None:
    """A file that is not SQLite at all raises ReplicaError naming the file."""
    path = tmp_path / "notes.txt"
    path.write_bytes(b"this is not a database, just some text " * 100)
    with pytest.raises(ReplicaError, match=r"notes\.txt"):
        Replica.open(path)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    """A replica written by a newer Live Edit asks the user to upgrade."""
    path = tmp_path / "replica.db"
    Replica.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {replica_schema.SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(ReplicaError, match="upgrade Live Edit"):
        Replica.open(path)


def test_closed_replica_raises(tmp_path: Path) -> None:
    """Using a closed replica raises ReplicaError, not a bare sqlite3 error."""
    r = Replica.open(tmp_path / "r.db")
    r.close()
    r.close()
    with pytest.raises(ReplicaError, match="closed"):
        r.get_setting("x")


# --- transactions and settings ----------------------------------------------------------


def test_settings_set_get_and_delete(replica: Replica) -> None:
    """A setting reads back, is replaced, and None deletes it."""
    assert replica.get_setting("server_url") is None
    replica.set_setting("server_url", "https://a")
    replica.set_setting("server_url", "https://b")
    assert replica.get_setting("server_url") == "https://b"
    replica.set_setting("server_url", None)
    assert replica.get_setting("server_url") is None


def test_exception_in_transaction_writes_nothing(tmp_path: Path) -> None:
    """Document and outbox written in a failing transaction are both absent, after reopen."""
    path = tmp_path / "r.db"
    with Replica.open(path) as r:
        with pytest.raises(RuntimeError), r.transaction():
            r.save_document(DOC, b"state")
            r.add_outbox(DOC, b"update", "notes")
            raise RuntimeError("crash before commit")
        assert r.load_document(DOC) is None
    with Replica.open(path) as r:
        assert r.load_document(DOC) is None
        assert r.outbox_count() == 0


def test_edit_and_outbox_commit_together(tmp_path: Path) -> None:
    """A committed transaction holds both writes, visible from a second connection."""
    path = tmp_path / "r.db"
    with Replica.open(path) as r, r.transaction():
        r.save_document(DOC, b"state", held=True)
        ref = r.add_outbox(DOC, b"update", "City, Zip")
    with Replica.open(path) as r:
        assert r.load_document(DOC) == b"state"
        assert [e.ref for e in r.outbox()] == [ref]


def test_nested_transaction_joins_outer(replica: Replica) -> None:
    """Inner writes commit with the outer; an outer failure undoes inner writes too."""
    with replica.transaction():
        replica.set_setting("a", "1")
        with replica.transaction():
            replica.set_setting("b", "2")
    assert (replica.get_setting("a"), replica.get_setting("b")) == ("1", "2")
    with pytest.raises(ValueError, match="outer"), replica.transaction():
        with replica.transaction():
            replica.set_setting("c", "3")
        raise ValueError("outer")
    assert replica.get_setting("c") is None


def test_failed_inner_block_is_undone_but_outer_continues(replica: Replica) -> None:
    """An inner block that raises (and is caught) loses only its own writes."""
    with replica.transaction():
        replica.set_setting("kept", "yes")
        with pytest.raises(KeyError), replica.transaction():
            replica.set_setting("dropped", "yes")
            raise KeyError("inner")
    assert replica.get_setting("kept") == "yes"
    assert replica.get_setting("dropped") is None


def test_second_writer_waits_then_gets_a_clear_error(tmp_path: Path) -> None:
    """While another connection holds the write lock, a write fails with ReplicaError."""
    path = tmp_path / "r.db"
    with Replica.open(path) as r:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("PRAGMA busy_timeout = 0")
        other.execute("BEGIN IMMEDIATE")
        r._conn().execute("PRAGMA busy_timeout = 50")  # do not wait the full 5 s
        with pytest.raises(ReplicaError, match="already running"):
            r.set_setting("a", "1")
        other.execute("ROLLBACK")
        other.close()
        r.set_setting("a", "1")
        assert r.get_setting("a") == "1"


# --- documents --------------------------------------------------------------------------


def test_documents_held_and_server_seq(replica: Replica) -> None:
    """None keeps held/server_seq; held documents and ids are listed."""
    replica.save_document(DOC, b"s1", held=True, server_seq=5)
    replica.save_document(DOC, b"s2")
    replica.save_document(DOC2, b"t1")
    assert replica.load_document(DOC) == b"s2"
    assert replica.server_seq(DOC) == 5
    assert replica.server_seq(DOC2) == 0
    assert replica.server_seq("customer:missing") == 0
    assert replica.held_documents() == [DOC]
    assert replica.has_document(DOC2) and not replica.has_document("customer:missing")
    assert replica.set_held(DOC, False)
    assert not replica.set_held("customer:missing", True)
    assert replica.held_documents() == []
    replica.save_document(DOC, b"s3", server_seq=9)
    assert replica.server_seq(DOC) == 9


# --- outbox -----------------------------------------------------------------------------


def test_outbox_order_remove_count_attempts(replica: Replica) -> None:
    """Refs increase, listing is oldest first, remove/count/attempts behave."""
    refs = [replica.add_outbox(DOC if i % 2 else DOC2, b"u%d" % i, f"edit {i}") for i in range(5)]
    assert refs == sorted(refs) and len(set(refs)) == 5
    assert [e.update for e in replica.outbox()] == [b"u0", b"u1", b"u2", b"u3", b"u4"]
    assert [e.ref for e in replica.outbox(limit=2)] == refs[:2]
    assert [e.update for e in replica.outbox_for(DOC)] == [b"u1", b"u3"]
    replica.mark_attempt([refs[0], refs[0], refs[1]])
    attempts = {e.ref: e.attempts for e in replica.outbox()}
    assert (attempts[refs[0]], attempts[refs[1]], attempts[refs[2]]) == (2, 1, 0)
    assert replica.remove_outbox(refs[0])
    assert not replica.remove_outbox(refs[0])
    assert replica.outbox_count() == 4
    assert replica.outbox()[0].summary == "edit 1"


def test_outbox_refs_are_never_reused(tmp_path: Path) -> None:
    """After removing the newest entry and reopening, the next ref is still higher."""
    path = tmp_path / "r.db"
    with Replica.open(path) as r:
        ref = r.add_outbox(DOC, b"u", "x")
        r.remove_outbox(ref)
    with Replica.open(path) as r:
        assert r.add_outbox(DOC, b"v", "y") > ref


# --- directory --------------------------------------------------------------------------


def test_older_cursor_does_not_overwrite_newer(replica: Replica) -> None:
    """Entries apply only with a higher cursor; the count says how many changed."""
    assert replica.apply_directory([entry(1, "Ada Byron", 5)]) == 1
    assert replica.apply_directory([entry(1, "Ada Old", 3), entry(1, "Ada Same", 5)]) == 0
    row = replica.get_directory(cid(1))
    assert row is not None and (row.name, row.cursor) == ("Ada Byron", 5)
    assert replica.apply_directory([entry(1, "Ada Lovelace", 6), entry(2, "Bo", 1)]) == 2
    assert names(replica.search("ada")) == ["Ada Lovelace"]
    assert replica.search("byron") == []


def test_local_directory_edit_is_searchable_and_keeps_cursor(replica: Replica) -> None:
    """An offline edit is found at once; the server's next entry replaces it."""
    replica.apply_directory([entry(1, "Ada Byron", 5)])
    replica.upsert_local_directory(cid(1), {"name": "Ada King", "street1": "x"}, False)
    replica.upsert_local_directory(cid(2), {"name": "New Person", "zip": "10001"}, False)
    row = replica.get_directory(cid(1))
    assert row is not None and (row.name, row.cursor, row.city) == ("Ada King", 5, "Springfield")
    assert names(replica.search("king")) == ["Ada King"]
    assert names(replica.search("10001")) == ["New Person"]
    replica.apply_directory([entry(1, "Ada Lovelace", 6)])
    assert names(replica.search("ada")) == ["Ada Lovelace"]


def test_search_prefix_words_and(replica: Replica) -> None:
    """Every word is a prefix; all words must match; results are ordered by name."""
    replica.apply_directory([
        entry(1, "maria garcia", 1), entry(2, "Mario Rossi", 2), entry(3, "Marc Smith", 3),
        entry(4, "Anna Maria Jones", 4),
    ])
    assert names(replica.search("mar")) == ["Anna Maria Jones", "Marc Smith", "maria garcia",
                                             "Mario Rossi"]
    assert names(replica.search("MARIA")) == ["Anna Maria Jones", "maria garcia"]
    assert names(replica.search("mar jo")) == ["Anna Maria Jones"]
    assert names(replica.search("mar zz")) == []
    assert replica.count("mar") == 4
    assert names(replica.search("mar", limit=2, offset=1)) == ["Marc Smith", "maria garcia"]


def test_search_email_phone_zip_city(replica: Replica) -> None:
    """E-mail (whole or parts), phone digits, zip and city are searchable."""
    replica.apply_directory([
        entry(1, "Ada", 1, email="ada.byron@analytical.example", phone="(555) 010-2030",
              zip_code="90210", city="Beverly Hills"),
        entry(2, "Bob", 2, email="bob@example.com", phone="555 777 8888", zip_code="10001",
              city="New York"),
    ])
    assert names(replica.search("ada.byron@analytical")) == ["Ada"]
    assert names(replica.search("analytical")) == ["Ada"]
    assert names(replica.search("bob@ex")) == ["Bob"]
    assert names(replica.search("555")) == ["Ada", "Bob"]
    assert names(replica.search("010-20")) == ["Ada"]
    assert names(replica.search("902")) == ["Ada"]
    assert names(replica.search("new york")) == ["Bob"]


@pytest.mark.parametrize("attack", [
    '" OR 1=1', 'NEAR(', "*", '"', "ada OR bob", "name:bob", "ada NOT bob", "^ada", "(", "-ada",
    "'; DROP TABLE directory; --",
])
def test_search_cannot_inject_fts_syntax(replica: Replica, attack: str) -> None:
    """FTS syntax in the query is taken literally: no error, no extra matches."""
    replica.apply_directory([entry(1, "Ada", 1), entry(2, "Bob", 2)])
    rows = replica.search(attack)
    if fts_query(attack) is None:
        assert names(rows) == ["Ada", "Bob"]  # nothing searchable: everyone, as for ""
    else:
        assert len(rows) <= 1
    assert replica.count(attack) == len(rows)
    assert replica.get_directory(cid(2)) is not None


def test_fts_query_quotes_every_term() -> None:
    """Terms are quoted prefixes with doubled quotes; punctuation-only input is nothing."""
    assert fts_query('ada "by') == '"ada"* "by"*'
    assert fts_query('a"b') == '"a"* "b"*'
    assert fts_query("o'neil") == '"o\'neil"*'
    assert fts_query(" * ( ) . ") is None


def test_search_excludes_deleted_unless_asked(replica: Replica) -> None:
    """Deleted customers are not found or counted unless include_deleted."""
    replica.apply_directory([entry(1, "Zed Alive", 1), entry(2, "Zed Gone", 2, deleted=True),
                             entry(3, "Amy Alive", 3)])
    assert names(replica.search("zed")) == ["Zed Alive"]
    assert names(replica.search("zed", include_deleted=True)) == ["Zed Alive", "Zed Gone"]
    assert names(replica.search("")) == ["Amy Alive", "Zed Alive"]
    assert names(replica.search("", include_deleted=True)) == ["Amy Alive", "Zed Alive",
                                                               "Zed Gone"]
    assert (replica.count("zed"), replica.count("zed", include_deleted=True)) == (1, 2)
    assert (replica.count(""), replica.count("", include_deleted=True)) == (2, 3)
    replica.apply_directory([entry(2, "Zed Gone", 3)])  # restored
    assert names(replica.search("zed")) == ["Zed Alive", "Zed Gone"]


def test_empty_query_lists_all_by_name_case_insensitively(replica: Replica) -> None:
    """An empty query pages through everyone by name, ignoring case; NULL names first."""
    replica.apply_directory([entry(1, "bob", 1), entry(2, "Alice", 2), entry(3, "carol", 3),
                             entry(4, None, 4)])
    assert names(replica.search("")) == [None, "Alice", "bob", "carol"]
    assert names(replica.search("   ", limit=2, offset=2)) == ["bob", "carol"]


def test_search_order_matches_sql_order_across_groups(replica: Replica) -> None:
    """Many names sharing a prefix, renamed and deleted, still page exactly like SQL."""
    first = ["Ann", "anna", "Annabel", "ANNE", "Annette", "Anni", "Anny", "Ano", "Émile", "an"]
    replica.apply_directory(
        entry(i, f"{first[i % len(first)]} {i:03d}", i + 1) for i in range(300)
    )
    replica.apply_directory(entry(i, f"Annz {i:03d}", 1000 + i) for i in range(0, 300, 7))
    replica.apply_directory(
        entry(i, f"Annz {i:03d}", 2000 + i, deleted=True) for i in range(0, 300, 14)
    )
    replica.upsert_local_directory(cid(5), {"name": "ann local"}, False)
    conn = sqlite3.connect(replica.path)
    expected = [r[0] for r in conn.execute(
        "SELECT name FROM directory WHERE deleted = 0 AND (name LIKE 'an%' OR name LIKE '% an%')"
        " ORDER BY name COLLATE NOCASE, customer_id"
    )]
    conn.close()
    assert replica.count("an") == len(expected)
    for offset in (0, 7, 40, 100, 250):
        assert names(replica.search("an", limit=13, offset=offset)) == expected[offset:offset + 13]


def test_search_pages_inside_a_name_group_in_name_order(replica: Replica) -> None:
    """Names sharing their first bytes, stored in reverse order, still come out sorted."""
    replica.apply_directory(entry(i, f"Annabel {i:02d}", 50 - i) for i in range(20, 0, -1))
    assert names(replica.search("annabel", limit=1)) == ["Annabel 01"]
    assert names(replica.search("annabel", limit=3, offset=5)) == [
        "Annabel 06", "Annabel 07", "Annabel 08"
    ]
    assert names(replica.search("", limit=2)) == ["Annabel 01", "Annabel 02"]


def test_full_name_group_is_refused_cleanly_and_freed_slots_are_reused(
    replica: Replica, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With 2 slots per group a third similar name fails atomically; a rename frees one."""
    monkeypatch.setattr(replica_directory, "SLOT_BITS", 1)
    replica.apply_directory([entry(1, "Annabel B", 1), entry(2, "Annabel A", 2)])
    with pytest.raises(ReplicaError, match="Annabel C"):
        replica.apply_directory([entry(4, "Zoe", 3), entry(3, "Annabel C", 4)])
    assert replica.get_directory(cid(4)) is None
    replica.apply_directory([entry(1, "Zed", 5)])
    replica.apply_directory([entry(3, "Annabel C", 6)])
    assert names(replica.search("annabel")) == ["Annabel A", "Annabel C"]
    assert names(replica.search("annabel", limit=1, offset=1)) == ["Annabel C"]


# --- notifications ----------------------------------------------------------------------


def note(seq: int, kind: NotificationKind = NotificationKind.UPDATED) -> Notification:
    """A notification numbered ``seq``."""
    return Notification(seq, DOC, kind, "sam", 100.0 + seq, ("city", "zip"), "Ada Byron")


def test_notifications_dedupe_newest_first_and_read(replica: Replica) -> None:
    """Duplicate seqs are ignored; newest first; offline flag kept; mark_read works."""
    assert replica.add_notifications([note(1), note(2)], offline=False) == 2
    assert replica.add_notifications([note(2), note(3, NotificationKind.COMMENTED)],
                                     offline=True) == 1
    stored = replica.notifications()
    assert [n.seq for n in stored] == [3, 2, 1]
    assert [n.offline for n in stored] == [True, False, False]
    assert stored[0].kind is NotificationKind.COMMENTED
    assert stored[0].fields == ("city", "zip") and stored[0].doc_id == DOC
    assert len(replica.notifications(unread_only=True)) == 3
    replica.mark_read([1, 3])
    assert [n.seq for n in replica.notifications(unread_only=True)] == [2]
    assert [n.seq for n in replica.notifications(limit=1)] == [3]


# --- conflicts and field versions -------------------------------------------------------


def test_one_open_conflict_per_field_and_resolve(replica: Replica) -> None:
    """A second conflict on a field updates the open one; after resolving, a new one opens."""
    first = replica.add_conflict(DOC, "city", "Paris", "Lyon", "sam", 10.0)
    again = replica.add_conflict(DOC, "city", "Paris", "Nice", "kim", 11.0)
    other = replica.add_conflict(DOC, "zip", None, {"v": 1}, "kim", 12.0)
    assert first == again != other
    open_city = replica.get_conflict(DOC, "city")
    assert open_city is not None
    assert (open_city.mine, open_city.theirs, open_city.author) == ("Paris", "Nice", "kim")
    assert replica.get_conflict(DOC, "zip") is not None
    assert replica.get_conflict(DOC, "zip").theirs == {"v": 1}  # type: ignore[union-attr]
    assert replica.resolve_conflict(first)
    assert not replica.resolve_conflict(first)
    assert replica.get_conflict(DOC, "city") is None
    assert [c.field for c in replica.conflicts(DOC)] == ["zip"]
    newer = replica.add_conflict(DOC, "city", "Rome", "Milan", "sam", 13.0)
    assert newer != first
    assert [c.id for c in replica.conflicts(include_resolved=True)] == [first, other, newer]
    assert replica.conflicts(DOC2) == []


def test_field_versions(replica: Replica) -> None:
    """A field version stores any JSON value, is replaced, and can be cleared."""
    assert replica.field_version(DOC, "city") is None
    replica.set_field_version(DOC, "city", "v1", "Paris")
    replica.set_field_version(DOC, "city", "v2", None)
    replica.set_field_version(DOC, "zip", "v3", 75001)
    assert replica.field_version(DOC, "city") == ("v2", None)
    assert replica.field_version(DOC, "zip") == ("v3", 75001)
    replica.clear_field_version(DOC, "city")
    assert replica.field_version(DOC, "city") is None
    assert replica.field_version(DOC, "zip") == ("v3", 75001)


def test_cache_transaction_inside_a_transaction_joins_it(replica: Replica) -> None:
    with pytest.raises(RuntimeError), replica.transaction():
        replica.set_setting("kept", "no")
        with replica.cache_transaction():
            replica.set_setting("inner", "x")
        raise RuntimeError("the outer transaction fails")
    assert replica.get_setting("kept") is None and replica.get_setting("inner") is None
    with replica.transaction(), replica.cache_transaction():
        replica.set_setting("inner", "y")
    assert replica.get_setting("inner") == "y"


# --- phone numbers by their digits ---------------------------------------------------------


@pytest.mark.parametrize("query", ["8234973210", "(823) 497-3210", "497-3210", "4973210",
                                   "823.497", "ada 3210"])
def test_phone_is_found_by_its_digits_whatever_the_punctuation(
    replica: Replica, query: str
) -> None:
    """A phone stored as "823.497.3210" or "8234973210" is found by any tail of its digits,
    typed with any punctuation (alone or with a name word)."""
    replica.apply_directory([entry(1, "Ada Byron", 1, phone="823.497.3210"),
                             entry(2, "Ada Stored", 2, phone="8234973210"),
                             entry(3, "Ada Other", 3, phone="555-0100")])
    assert sorted(names(replica.search(query))) == ["Ada Byron", "Ada Stored"]
    assert replica.count(query) == 2
    assert sorted(names(replica.search(query, order_by="phone"))) == ["Ada Byron", "Ada Stored"]


def test_digits_follow_renames_and_local_edits(replica: Replica) -> None:
    """The digits index follows a row whose sort key moved and a local phone change."""
    replica.apply_directory([entry(1, "Ada Byron", 1, phone="823 497 3210")])
    replica.apply_directory([entry(1, "Zed Byron", 2, phone="823 497 3210")])
    assert names(replica.search("4973210")) == ["Zed Byron"]
    replica.upsert_local_directory(cid(1), {"phone": "+44 20 7946 0958"}, False)
    assert names(replica.search("4973210")) == []
    assert names(replica.search("79460958")) == ["Zed Byron"]
