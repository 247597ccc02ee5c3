"""The update store on a real SQLite file: group commit, reads, search, expiry."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sync.protocol.messages import Notification, NotificationKind
from sync.server.errors import DatabaseError
from sync.server.store import Commit, DirectoryRow, LogEntry, UpdateStore, fts_query

DOC = "customer:00000000-0000-4000-8000-000000000001"


def row(customer_id: str, name: str, cursor: int, deleted: bool = False) -> DirectoryRow:
    """A directory row with a name."""
    email = f"{name.split(maxsplit=1)[0].lower()}@example.com"
    values = {"name": name, "email": email, "phone": "555-0100", "city": "Springfield",
              "state": "IL", "zip": "62701", "tier": "basic"}
    return DirectoryRow.of(customer_id, values, updated_at=1.0, deleted=deleted, cursor=cursor)


async def test_commits_are_durable_and_sequence_continues_after_reopen(tmp_path: Path) -> None:
    """Every submitted commit is readable after close; seq continues from the maximum."""
    store = UpdateStore(tmp_path / "s.db")
    store.start()
    futures = []
    for _ in range(300):
        seq = store.next_seq()
        futures.append(store.submit(Commit(entry=LogEntry(seq, DOC, "alex", None, 1.0, ("name",),
                                                          b"u%d" % seq))))
    await asyncio.gather(*futures)
    assert store.commits < 300  # grouped: fewer transactions than changes
    store.close()
    again = UpdateStore(tmp_path / "s.db")
    parts, last = again.load_document(DOC)
    assert last == 300 and parts[0] == b"u1" and parts[-1] == b"u300"
    assert again.next_seq() == 301
    again.close()


async def test_submit_then_calls_back_once_durable_in_order_or_with_the_error(
    tmp_path: Path,
) -> None:
    """submit_then's callbacks run on the loop in submit order once the rows are on disk;
    a failed transaction gives each of its changes a DatabaseError and stores nothing."""
    store = UpdateStore(tmp_path / "s.db")
    store.start()
    outcomes: list[tuple[object, BaseException | None, int]] = []
    settled = asyncio.Event()
    total = 200

    def then(result: object, error: BaseException | None) -> None:
        outcomes.append((result, error, store.load_document(DOC)[1]))  # read from disk
        if len(outcomes) == total:
            settled.set()

    for _ in range(total):
        seq = store.next_seq()
        store.submit_then(Commit(entry=LogEntry(seq, DOC, "alex", None, 1.0, ("name",),
                                                b"u%d" % seq)), seq, then)
    await asyncio.wait_for(settled.wait(), 10)
    assert [r for r, _, _ in outcomes] == list(range(1, total + 1))
    assert all(error is None and on_disk >= r for r, error, on_disk in outcomes)  # type: ignore[operator]

    failed: list[tuple[object, BaseException | None]] = []
    called = asyncio.Event()

    def then_failed(result: object, error: BaseException | None) -> None:
        failed.append((result, error))
        called.set()

    dup = Commit(entry=LogEntry(total, DOC, "alex", None, 1.0, ("name",), b"again"))
    store.submit_then(dup, "never", then_failed)  # seq already logged: the write fails
    await asyncio.wait_for(called.wait(), 10)
    assert failed[0][0] is None and isinstance(failed[0][1], DatabaseError)
    assert "could not store" in str(failed[0][1])
    assert store.load_document(DOC)[0][-1] == b"u%d" % total  # nothing of it stored
    store.close()


async def test_snapshot_replaces_older_updates_when_loading(tmp_path: Path) -> None:
    """Loading starts from the snapshot and adds only later updates."""
    store = UpdateStore(tmp_path / "s.db")
    store.start()
    for seq in (1, 2, 3):
        snapshot = (DOC, 2, b"snap") if seq == 2 else None
        await store.submit(Commit(entry=LogEntry(seq, DOC, "a", None, 1.0, (), b"u%d" % seq),
                                  snapshot=snapshot))
    assert store.load_document(DOC) == ([b"snap", b"u3"], 3)
    assert store.updates_until(DOC, 2) == [b"u1", b"u2"]
    store.close()


async def test_directory_feed_and_search(tmp_path: Path) -> None:
    """The feed pages by cursor; search matches word prefixes and skips the deleted."""
    store = UpdateStore(tmp_path / "s.db")
    store.start()
    await store.submit(Commit(directory=row("a", "Ada Lovelace", 1)))
    await store.submit(Commit(directory=row("b", "Bob Lovelock", 2)))
    await store.submit(Commit(directory=row("a", "Ada Byron", 3)))
    await store.submit(Commit(directory=row("c", "Cy Lovelace", 4, deleted=True)))
    assert [r.customer_id for r in store.directory_since(0, 10)] == ["b", "a", "c"]
    assert [r.customer_id for r in store.directory_since(2, 10)] == ["a", "c"]
    assert [r.fields["name"] for r in store.search("love", 10)] == ["Bob Lovelock"]
    assert [r.fields["name"] for r in store.search("ada by", 10)] == ["Ada Byron"]
    assert store.search("'; DROP TABLE directory; --", 10) == []
    store.close()


async def test_notifications_expire(tmp_path: Path) -> None:
    """Notifications are returned until they expire, then purged."""
    store = UpdateStore(tmp_path / "s.db")
    store.start()
    note = Notification(store.next_notification_seq(), DOC, NotificationKind.UPDATED, "sam",
                        100.0, ("city",), "John")
    await store.submit(Commit(notifications=[note], expires_at=200.0))
    assert store.notifications_since(0, None, 10, now=150.0) == [note]
    assert store.notifications_since(0, [DOC], 10, now=150.0) == [note]
    assert store.notifications_since(0, [], 10, now=150.0) == []
    assert store.notifications_since(0, None, 10, now=250.0) == []
    assert store.purge_notifications(now=250.0) == 1
    store.close()


def test_fts_query_quotes_every_term() -> None:
    """User text becomes quoted prefix terms; FTS syntax cannot be injected."""
    assert fts_query('ada "by') == '"ada"* "by"*'
    assert fts_query("NEAR(a b) OR x") == '"NEAR"* "a"* "b"* "OR"* "x"*'
    assert fts_query("  ") is None
