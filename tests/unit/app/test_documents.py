"""Local edits and remote changes on the core's documents, without a server: durability
of the outbox, and conflicts recorded only on the side whose concurrent value lost."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.documents import DocumentSet
from app.events import ConflictRecorded, DocumentChanged, EventBus, Origin
from app.replica import Replica, ReplicaError
from sync.protocol import document
from sync.protocol.errors import InvalidFieldValue
from sync.protocol.messages import customer_doc_id

CID = "6f1c2a52-0d8e-4f39-9d77-1d2e3f4a5b6c"
DOC = customer_doc_id(CID)


class Peer:
    """One replica with its document set and the events it emitted."""

    def __init__(self, path: Path, name: str) -> None:
        self.replica = Replica.open(path / f"{name}.db")
        self.bus = EventBus()
        self.events: list[object] = []
        self.bus.subscribe(self.events.append)
        self.docs = DocumentSet(self.replica, self.bus, lambda: name)
        self.name = name

    def set(self, **values: object) -> bytes:
        """Set fields locally; returns the update."""
        change = self.docs.edit(CID, lambda d: document.set_fields(d, values, author=self.name))
        assert change is not None
        return change.update

    def receive(self, update: bytes, author: str) -> None:
        """Apply an update as if it came from the server."""
        self.docs.apply_remote(DOC, update, author=author)

    def value(self, field: str) -> object:
        """Current value of a field."""
        return document.read_fields(self.docs.doc(CID))[field]


@pytest.fixture
def peers(tmp_path: Path) -> Iterator[tuple[Peer, Peer]]:
    """Two peers that both hold the same customer (created by the first)."""
    a, b = Peer(tmp_path, "alex"), Peer(tmp_path, "sam")
    b.receive(a.set(name="John Smith", city="Boston"), "alex")
    yield a, b
    a.replica.close()
    b.replica.close()


def test_local_edit_is_durable_with_its_outbox_entry(tmp_path: Path) -> None:
    """After edit() the document state and the outbox entry are on disk together."""
    a = Peer(tmp_path, "alex")
    update = a.set(name="Ada")
    a.replica.close()
    again = Replica.open(tmp_path / "alex.db")
    [entry] = again.outbox()
    assert entry.update == update and entry.doc_id == DOC
    state = again.load_document(DOC)
    assert state is not None
    doc = document.new_document()
    doc.apply_update(state)
    assert document.read_fields(doc)["name"] == "Ada"
    again.close()


def test_invalid_edit_writes_nothing(tmp_path: Path) -> None:
    """An edit that raises leaves the document, the outbox and the events untouched."""
    a = Peer(tmp_path, "alex")
    with pytest.raises(InvalidFieldValue):
        a.docs.edit(CID, lambda d: document.set_fields(d, {"name": "X", "email": "bad"}))
    assert a.replica.outbox() == [] and a.events == [] and a.value("name") is None


def test_concurrent_writes_conflict_only_on_the_losing_side(peers: tuple[Peer, Peer]) -> None:
    """Both set city concurrently; only the replica whose value lost records a conflict."""
    a, b = peers
    from_a, from_b = a.set(city="Paris"), b.set(city="Lyon")
    a.receive(from_b, "sam")
    b.receive(from_a, "alex")
    assert a.value("city") == b.value("city")
    winner = a.value("city")
    loser, other = (b, a) if winner == "Paris" else (a, b)
    [conflict] = loser.replica.conflicts()
    assert (conflict.field, conflict.theirs) == ("city", winner)
    assert conflict.mine == ("Lyon" if loser is b else "Paris")
    assert conflict.author == other.name
    assert other.replica.conflicts() == []
    assert any(isinstance(e, ConflictRecorded) for e in loser.events)


def test_overwrite_after_seeing_my_value_is_not_a_conflict(peers: tuple[Peer, Peer]) -> None:
    """B overwrites A's value after receiving it: no conflict on either side."""
    a, b = peers
    b.receive(a.set(city="Rome"), "alex")
    a.receive(b.set(city="Milan"), "sam")
    assert a.value("city") == "Milan"
    assert a.replica.conflicts() == [] and b.replica.conflicts() == []


def test_same_value_written_concurrently_is_not_a_conflict(peers: tuple[Peer, Peer]) -> None:
    """Both write the same value: nothing to decide, no conflict."""
    a, b = peers
    from_a, from_b = a.set(zip="02110"), b.set(zip="02110")
    a.receive(from_b, "sam")
    b.receive(from_a, "alex")
    assert a.replica.conflicts() == [] and b.replica.conflicts() == []


def test_different_fields_merge_without_conflict(peers: tuple[Peer, Peer]) -> None:
    """Concurrent edits of different fields both survive and conflict with nothing."""
    a, b = peers
    from_a, from_b = a.set(phone="555-0100"), b.set(state="MA")
    a.receive(from_b, "sam")
    b.receive(from_a, "alex")
    assert a.value("phone") == b.value("phone") == "555-0100"
    assert a.value("state") == b.value("state") == "MA"
    assert a.replica.conflicts() == [] and b.replica.conflicts() == []


def test_remote_change_event_names_fields_and_author(peers: tuple[Peer, Peer]) -> None:
    """A remote change is reported as remote, with its fields and the writer's name."""
    a, b = peers
    b.events.clear()
    b.receive(a.set(city="Denver"), "alex")
    [event] = [e for e in b.events if isinstance(e, DocumentChanged)]
    assert event.origin is Origin.REMOTE and event.fields == {"city"} and event.author == "alex"


def test_duplicate_remote_update_changes_nothing(peers: tuple[Peer, Peer]) -> None:
    """Applying the same update twice reports no second change."""
    a, b = peers
    update = a.set(city="Austin")
    assert b.docs.apply_remote(DOC, update, author="alex") is True
    assert b.docs.apply_remote(DOC, update, author="alex") is False


def test_undo_takes_back_only_my_edits(peers: tuple[Peer, Peer]) -> None:
    """Undo reverts this rep's edit, keeps another rep's change, and redo brings it back."""
    a, b = peers
    a.receive(b.set(zip="02110"), "sam")
    a.set(city="Paris")
    assert a.docs.undo(CID) is not None
    assert a.value("city") == "Boston" and a.value("zip") == "02110"
    assert a.docs.redo(CID) is not None
    assert a.value("city") == "Paris"
    for entry in a.replica.outbox():
        b.receive(entry.update, "alex")
    assert b.value("city") == "Paris" and b.value("zip") == "02110"


def test_undo_with_nothing_to_undo_changes_nothing(tmp_path: Path) -> None:
    """Undo on a customer this rep never edited queues nothing."""
    a = Peer(tmp_path, "alex")
    assert a.docs.undo(CID) is None and a.replica.outbox() == []


def fill_up(replica: Replica) -> None:
    """Make the replica's file full: no page may be added (a real SQLITE_FULL)."""
    conn = replica._conn()
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")


def test_change_events_carry_new_values(peers: tuple[Peer, Peer]) -> None:
    """DocumentChanged carries the new values of the changed fields, local and remote."""
    a, b = peers
    b.receive(a.set(city="Paris", zip="75001"), "alex")
    local = [e for e in a.events if isinstance(e, DocumentChanged)][-1]
    remote = [e for e in b.events if isinstance(e, DocumentChanged)][-1]
    for event in (local, remote):
        assert event.values == {"city": "Paris", "zip": "75001"}
        assert event.deleted is False


def test_remote_update_into_full_replica_fails_and_applies_later(
    peers: tuple[Peer, Peer],
) -> None:
    """A full replica refuses a remote update with ReplicaError; memory does not keep it,
    and applying it again once there is room stores it and reports the change."""
    a, b = peers
    update = a.set(city="Paris")
    big = a.docs.edit(CID, lambda d: document.insert_notes(d, 0, "n" * 100_000))
    assert big is not None
    fill_up(b.replica)
    with pytest.raises(ReplicaError, match="full"):
        b.receive(big.update, "alex")
    assert "n" not in document.read_notes(b.docs.doc(CID))  # reloaded from the file
    b.replica._conn().execute("PRAGMA max_page_count = 1073741823")
    b.receive(update, "alex")
    b.receive(big.update, "alex")
    assert document.read_notes(b.docs.doc(CID)).startswith("nnn")
    reopened = Replica.open(b.replica.path)
    state = reopened.load_document(DOC)
    reopened.close()
    assert state is not None and b"nnnn" in state
    changed = [e for e in b.events if isinstance(e, DocumentChanged)][-1]
    assert "notes" in changed.roots
