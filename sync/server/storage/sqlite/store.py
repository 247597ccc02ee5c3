"""The SQLite engine's store: the update log, notifications, directory, history.

Writes go through one writer thread with its own connection (group commit): callers
:meth:`UpdateStore.submit` a :class:`Commit` and get an asyncio future that resolves once
the transaction holding it is durably committed (``synchronous=FULL``). Under load the
writer takes every queued commit into one transaction, so a burst of updates costs one
fsync, not one each. Reads use short-lived connections of their own (WAL: readers never
wait for the writer) and are meant to be called through ``asyncio.to_thread``.

Sequence numbers (the update log's ``seq`` and the notifications' ``seq``) are assigned in
memory on the event loop, in order, so fan-out can carry them before the commit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sync.protocol import schema
from sync.protocol.messages import Notification, NotificationKind
from sync.sqlite_migrations import transaction

from ...errors import DatabaseError
from ..records import Commit, DirectoryRow, LogEntry, changes_json, directory_columns
from . import db

__all__ = ["Commit", "DirectoryRow", "LogEntry", "UpdateStore", "fts_query"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Job:
    commit: Commit
    future: asyncio.Future[Any] | None
    loop: asyncio.AbstractEventLoop | None = field(default=None)
    result: object = None  # what ``future`` resolves with once the commit is durable
    #: Instead of a future: called on the loop with (result, None) or (None, error).
    then: Callable[[Any, BaseException | None], None] | None = None


_STOP = object()


class UpdateStore:
    """The server's durable state; one instance per server process."""

    def __init__(self, db_path: Path, *, max_batch: int = 2000) -> None:
        self.db_path = Path(db_path)
        self.max_batch = max_batch
        self._writer_conn = db.connect(self.db_path)
        self._read_local = threading.local()
        row = self._writer_conn.execute("SELECT COALESCE(MAX(seq), 0) FROM updates").fetchone()
        self._seq = int(row[0])
        row = self._writer_conn.execute(
            "SELECT COALESCE(MAX(seq), 0) FROM notifications"
        ).fetchone()
        self._notification_seq = int(row[0])
        self._queue: queue.SimpleQueue[_Job | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.commits = 0
        self.failed: BaseException | None = None
        #: Called on the writer thread after each commit with (changes, seconds from BEGIN
        #: to durable COMMIT): the metrics (sync/server/metrics.py).
        self.on_commit: Callable[[int, float], None] | None = None

    # --- sequence numbers (event loop only) ---------------------------------------------

    @property
    def last_seq(self) -> int:
        """The highest update sequence number handed out."""
        return self._seq

    def next_seq(self) -> int:
        """Hand out the next update sequence number."""
        self._seq += 1
        return self._seq

    def next_notification_seq(self) -> int:
        """Hand out the next notification sequence number."""
        self._notification_seq += 1
        return self._notification_seq

    @property
    def last_notification_seq(self) -> int:
        """The highest notification sequence number handed out."""
        return self._notification_seq

    # --- the writer ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer thread."""
        self._thread = threading.Thread(target=self._run, name="liveedit-writer", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Commit what is queued, stop the writer, close connections."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None
        self._writer_conn.close()

    def submit(self, commit: Commit, result: Any = None) -> asyncio.Future[Any]:
        """Queue a commit; the future resolves with ``result`` when it is durably on disk.

        Call from the event loop. The future fails with DatabaseError if the write failed.
        (``result`` lets the engine hand out this future itself: no second future and
        relaying callback. Acked updates take :meth:`submit_then`, with no future at all.)
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.put(_Job(commit, future, loop, result))
        return future

    def submit_then(self, commit: Commit, result: Any,
                    then: Callable[[Any, BaseException | None], None]) -> None:
        """Queue a commit; ``then(result, None)`` is called on the event loop once it is
        durably on disk, ``then(None, DatabaseError)`` if the write failed. No future:
        one wake-up of the loop per written batch calls them all."""
        self._queue.put(_Job(commit, None, asyncio.get_running_loop(), result, then))

    def submit_sync(self, commit: Commit) -> None:
        """Write a commit from outside an event loop (importer, tools); waits for it."""
        done = threading.Event()
        job = _Job(commit, None)
        self._queue.put(job)
        self._queue.put(done)
        done.wait()
        if self.failed is not None:
            raise DatabaseError(f"write failed: {self.failed}") from self.failed

    def submit_many_sync(self, commits: Sequence[Commit]) -> None:
        """Write many commits from outside an event loop (batched); waits for all."""
        done = threading.Event()
        for commit in commits:
            self._queue.put(_Job(commit, None))
        self._queue.put(done)
        done.wait()
        if self.failed is not None:
            raise DatabaseError(f"write failed: {self.failed}") from self.failed

    def barrier(self) -> asyncio.Future[None]:
        """A future that resolves once everything submitted before it is committed."""
        return self.submit(Commit())

    def _run(self) -> None:
        conn = self._writer_conn
        while True:
            first = self._queue.get()
            batch: list[_Job] = []
            events: list[threading.Event] = []
            stop = False
            item: object = first
            while True:
                if item is _STOP:
                    stop = True
                elif isinstance(item, threading.Event):
                    events.append(item)
                elif isinstance(item, _Job):
                    batch.append(item)
                if stop or len(batch) >= self.max_batch:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            error = self._write(conn, batch) if batch else None
            by_loop: dict[asyncio.AbstractEventLoop, list[_Job]] = {}
            for job in batch:
                if job.loop is not None:
                    by_loop.setdefault(job.loop, []).append(job)
            for loop, jobs in by_loop.items():  # one wake-up per batch, not per change
                loop.call_soon_threadsafe(_resolve_all, jobs, error)
            for event in events:
                event.set()
            if stop:
                return

    def _write(self, conn: sqlite3.Connection, batch: list[_Job]) -> BaseException | None:
        updates, notes, snaps = [], [], []
        dirs: dict[str, tuple[object, ...]] = {}  # the last row per customer is enough
        for job in batch:
            c = job.commit
            if c.entry is not None:
                e = c.entry
                updates.append((
                    e.seq, e.doc_id, e.author, e.session_id, e.time, changes_json(e.changes),
                    e.data,
                ))
            for n in c.notifications:
                notes.append((
                    n.seq, n.doc, n.kind.value, n.actor, n.time, json.dumps(n.fields),
                    n.title, c.expires_at,
                ))
            if c.directory is not None:
                dirs[c.directory.customer_id] = c.directory.values()
            if c.snapshot is not None:
                snaps.append(c.snapshot)
        started = time.perf_counter()
        try:
            with transaction(conn):
                conn.executemany("INSERT INTO updates VALUES (?, ?, ?, ?, ?, ?, ?)", updates)
                conn.executemany(
                    "INSERT INTO notifications VALUES (?, ?, ?, ?, ?, ?, ?, ?)", notes
                )
                if dirs:
                    conn.executemany(_upsert_directory(), dirs.values())
                conn.executemany(
                    "INSERT INTO snapshots(doc_id, seq, data) VALUES (?, ?, ?) "
                    "ON CONFLICT(doc_id) DO UPDATE SET seq = excluded.seq, data = excluded.data "
                    "WHERE excluded.seq > snapshots.seq",
                    snaps,
                )
        except sqlite3.Error as exc:
            log.exception("writing %d changes to the database failed", len(batch))
            self.failed = exc
            return exc
        self.commits += 1
        if self.on_commit is not None:
            self.on_commit(len(updates), time.perf_counter() - started)
        return None

    # --- reads (any thread; call via asyncio.to_thread from the event loop) ----------------

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._read_local, "conn", None)
        if conn is None:
            conn = db.connect(self.db_path, readonly=True)
            self._read_local.conn = conn
        return conn

    def load_document(self, doc_id: str) -> tuple[list[bytes], int]:
        """The updates that rebuild ``doc_id`` (snapshot first), and its latest seq."""
        conn = self._reader()
        snap = conn.execute(
            "SELECT seq, data FROM snapshots WHERE doc_id = ?", (doc_id,)
        ).fetchone()
        after = snap[0] if snap else 0
        parts = [bytes(snap[1])] if snap else []
        rows = conn.execute(
            "SELECT seq, data FROM updates WHERE doc_id = ? AND seq > ? ORDER BY seq",
            (doc_id, after),
        ).fetchall()
        parts.extend(bytes(r[1]) for r in rows)
        last = rows[-1][0] if rows else after
        return parts, int(last)

    def updates_until(self, doc_id: str, seq: int) -> list[bytes]:
        """Every logged update of ``doc_id`` with a sequence number up to ``seq``."""
        rows = self._reader().execute(
            "SELECT data FROM updates WHERE doc_id = ? AND seq <= ? ORDER BY seq",
            (doc_id, seq),
        ).fetchall()
        return [bytes(r[0]) for r in rows]

    def history(self, doc_id: str, *, before: int | None = None, limit: int = 100) -> list[
        LogEntry
    ]:
        """Versions of a document, newest first (without the update bytes)."""
        rows = self._reader().execute(
            "SELECT seq, doc_id, author, session_id, time, changes FROM updates "
            "WHERE doc_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
            (doc_id, before if before is not None else 2**62, limit),
        ).fetchall()
        return [
            LogEntry(r[0], r[1], r[2], r[3], r[4], tuple(json.loads(r[5]))) for r in rows
        ]

    def directory_row(self, customer_id: str) -> DirectoryRow | None:
        """The directory row of one customer, or None."""
        row = self._reader().execute(
            f"SELECT {', '.join(directory_columns())} FROM directory WHERE customer_id = ?",  # noqa: S608
            (customer_id,),
        ).fetchone()
        return _directory_row(row) if row else None

    def directory_since(
        self, cursor: int, limit: int, customer_id: str | None = None
    ) -> list[DirectoryRow]:
        """Directory rows changed after ``cursor``, oldest change first.

        ``customer_id`` restricts the feed to one customer (a customer user's own).
        """
        sql = f"SELECT {', '.join(directory_columns())} FROM directory WHERE cursor > ?"  # noqa: S608
        args: list[object] = [cursor]
        if customer_id is not None:
            sql += " AND customer_id = ?"
            args.append(customer_id)
        sql += " ORDER BY cursor LIMIT ?"
        args.append(limit)
        return [_directory_row(r) for r in self._reader().execute(sql, args).fetchall()]

    def search(self, query: str, limit: int, *, include_deleted: bool = False) -> list[
        DirectoryRow
    ]:
        """Customers matching every word of ``query`` as a prefix (in the field table's
        searchable fields), in name order. An empty query lists customers by name."""
        cols = ", ".join(f"d.{c}" for c in directory_columns())
        deleted = "" if include_deleted else " AND d.deleted = 0"
        match = fts_query(query)
        conn = self._reader()
        if match is None:
            rows = conn.execute(
                f"SELECT {cols} FROM directory d WHERE 1 = 1{deleted} "  # noqa: S608
                "ORDER BY d.name COLLATE NOCASE LIMIT ?",
                (limit,),
            ).fetchall()
        else:
            rows = conn.execute(
                f"SELECT {cols} FROM directory_fts f JOIN directory d ON d.rowid = f.rowid "  # noqa: S608
                f"WHERE directory_fts MATCH ?{deleted} ORDER BY d.name COLLATE NOCASE LIMIT ?",
                (match, limit),
            ).fetchall()
        return [_directory_row(r) for r in rows]

    def notifications_since(
        self, since: int, doc_ids: Iterable[str] | None, limit: int, now: float | None = None
    ) -> list[Notification]:
        """Unexpired notifications after ``since`` (for ``doc_ids``, or all when None)."""
        now = time.time() if now is None else now
        sql = (
            "SELECT seq, doc_id, kind, actor, time, fields, title FROM notifications "
            "WHERE seq > ? AND expires_at > ?"
        )
        args: list[object] = [since, now]
        if doc_ids is not None:
            ids = list(doc_ids)
            if not ids:
                return []
            sql += f" AND doc_id IN ({', '.join('?' * len(ids))})"
            args.extend(ids)
        sql += " ORDER BY seq LIMIT ?"
        args.append(limit)
        return [
            Notification(
                r[0], r[1], NotificationKind(r[2]), r[3], r[4], tuple(json.loads(r[5])), r[6]
            )
            for r in self._reader().execute(sql, args).fetchall()
        ]

    def purge_notifications(self, now: float | None = None) -> int:
        """Delete expired notifications; returns how many. Runs on the caller's thread."""
        now = time.time() if now is None else now
        conn = db.connect(self.db_path)
        try:
            cur = conn.execute("DELETE FROM notifications WHERE expires_at <= ?", (now,))
            return cur.rowcount
        finally:
            conn.close()


def _upsert_directory() -> str:
    """Insert or replace one directory row (columns from the field table, read now)."""
    columns = directory_columns()
    return (
        f"INSERT INTO directory ({', '.join(columns)}) "  # noqa: S608
        f"VALUES ({', '.join('?' * len(columns))}) "
        "ON CONFLICT(customer_id) DO UPDATE SET "
        + ", ".join(f"{c} = excluded.{c}" for c in columns[1:])
    )


def _directory_row(row: Sequence[Any]) -> DirectoryRow:
    names = [f.name for f in schema.directory_fields()]
    n = len(names)
    return DirectoryRow(
        customer_id=str(row[0]), fields=dict(zip(names, row[1:1 + n], strict=True)),
        updated_at=float(row[1 + n]), deleted=bool(row[2 + n]), cursor=int(row[3 + n]),
    )


def fts_query(text: str) -> str | None:
    """Turn what a person typed into a safe FTS5 query: every word as a quoted prefix.

    Quotes are doubled inside each term, so no input can inject FTS5 syntax.
    Returns None when nothing searchable is left.
    """
    terms = [t for t in "".join(c if c.isalnum() or c in "@.-_+" else " " for c in text).split()]
    if not terms:
        return None
    return " ".join('"' + t.replace('"', '""') + '"*' for t in terms[:16])


def _resolve_all(jobs: list[_Job], error: BaseException | None) -> None:
    failure = None if error is None else DatabaseError(
        f"the server could not store the change: {error}")
    for job in jobs:
        then = job.then
        if then is not None:
            try:
                if failure is None:
                    then(job.result, None)
                else:
                    then(None, failure)
            except Exception:
                # One caller's bug must not keep the rest of the batch from its outcome.
                log.exception("handling a committed change failed")
            continue
        future = job.future
        if future is None or future.done():
            continue
        if failure is None:
            future.set_result(job.result)
        else:
            future.set_exception(failure)
