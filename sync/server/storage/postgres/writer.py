"""The group-commit writer on Postgres: sequence numbers are handed out at commit.

With SQLite one process owns the database, so the hub numbers changes in memory before they
are stored. With several nodes on one Postgres, numbers come from the database in commit
order (log.py), so a change's number is known only once its transaction commits:
:meth:`PostgresWriter.submit` returns a future of :class:`Committed`, which tells the hub
the change's sequence number and its notifications' numbers. The hub acks the writer and
fans the change out after that, never before (acks only after the Postgres commit).

Group commit: one task takes everything queued (up to ``max_batch`` changes) into one
transaction: log rows (COPY), notifications, directory rows, snapshots, and the bus signals
(one NOTIFY statement: per document, its updates and its notifications), which Postgres
delivers when the rows become visible. The
numbers a caller put in a :class:`~sync.server.storage.records.Commit` (``LogEntry.seq``, the
directory ``cursor``, the snapshot's seq, ``Notification.seq``) are placeholders here and
are replaced by the ones the transaction takes.

If the transaction fails (Postgres gone, connection cut), every change in it fails with
:class:`~sync.server.errors.DatabaseError` (nothing of it was stored: the writers are not
acked and keep the changes in their outboxes), and the next batch tries on a fresh
connection from the pool. A transaction Postgres does not answer within ``stall_timeout``
seconds (a link that went silent without an error: TCP would wait many minutes before
giving up) counts as failed too: its connection is closed, which ends the wait at once.
Like a connection cut during COMMIT, such a change may still have been stored; a client
sends it again, and integrating it twice changes nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from ...errors import DatabaseError
from ..base import Committed
from ..records import Commit, changes_json
from . import directory, log, records
from .errors import DATABASE_ERRORS
from .stall import STALL_TIMEOUT, closed_if_silent

__all__ = ["Committed", "PostgresWriter"]

logger = logging.getLogger(__name__)



def _unusable(conn: Any) -> bool:
    """Whether a kept pool connection is closed, or was taken back by the pool."""
    try:
        return bool(conn.is_closed())
    except asyncpg.InterfaceError:
        return True


@dataclass(slots=True)
class _Job:
    commit: Commit
    future: asyncio.Future[Committed]


class PostgresWriter:
    """One per node. Call order: :meth:`start`, then :meth:`submit` from the event loop,
    then :meth:`close` (which commits what is queued)."""

    def __init__(self, pool: Any, *, node_id: str = "", max_batch: int = 2000,
                 stall_timeout: float = STALL_TIMEOUT) -> None:
        self.pool = pool
        self.node_id = node_id
        self.max_batch = max_batch
        self.stall_timeout = stall_timeout
        self.commits = 0
        #: Why the last transaction failed, until one succeeds again (readiness).
        self.failed: str | None = None
        #: Why the writer task ended before close() (then nothing is ever acked again: the
        #: node must stay unready; a probe of the database does not clear it).
        self.stopped: str | None = None
        #: Called after each commit with (changes, seconds from BEGIN to COMMIT).
        self.on_commit: Callable[[int, float], None] | None = None
        self._queue: asyncio.Queue[_Job | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        #: The writer's connection, kept between batches (a pool release costs a reset
        #: round trip); given back after a failure, and at close.
        self._conn: Any = None

    def start(self) -> None:
        """Start the writer task."""
        self._task = asyncio.create_task(self._run(), name="liveedit-pg-writer")
        self._task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        """The writer task must only end at close(): report it loudly if it died."""
        if not task.cancelled() and task.exception() is not None:
            self.stopped = self.failed = f"the writer stopped: {task.exception()!r}"
            logger.critical("the Postgres writer stopped; nothing will be acked",
                            exc_info=task.exception())

    async def close(self) -> None:
        """Commit what is queued, then stop."""
        if self._task is not None:
            self._queue.put_nowait(None)
            await self._task
            self._task = None

    def submit(self, commit: Commit) -> asyncio.Future[Committed]:
        """Queue a change; the future resolves once it is committed (DatabaseError if not)."""
        future: asyncio.Future[Committed] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Job(commit, future))
        return future

    def barrier(self) -> asyncio.Future[Committed]:
        """A future that resolves once everything submitted before it is committed."""
        return self.submit(Commit())

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            batch: list[_Job] = []
            stop = first is None
            if first is not None:
                batch.append(first)
            while not stop and len(batch) < self.max_batch and not self._queue.empty():
                job = self._queue.get_nowait()
                if job is None:
                    stop = True
                else:
                    batch.append(job)
            if batch:
                await self._commit(batch)
            if stop:
                await self._release()
                return

    async def _release(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await self.pool.release(conn)

    async def _discard(self) -> None:
        """Drop a connection that may be broken; the pool opens a new one when asked."""
        if self._conn is None:
            return
        conn, self._conn = self._conn, None
        try:
            conn.terminate()
            await self.pool.release(conn)
        except DATABASE_ERRORS as exc:
            # A connection the server closed was already handed back by the pool itself.
            logger.debug("writer connection already returned to the pool: %s", exc)

    async def _commit(self, batch: list[_Job]) -> None:
        started = time.perf_counter()
        if self._conn is not None and _unusable(self._conn):
            # Postgres restarted since the last batch: the pool took the connection back.
            logger.info("the writer's connection was closed; taking a fresh one")
            await self._discard()
        try:
            if self._conn is None:
                self._conn = await self.pool.acquire(timeout=self.stall_timeout)
            conn = self._conn
            with closed_if_silent(conn, self.stall_timeout, "the writer"):
                async with conn.transaction():
                    results = await self._write(conn, batch)
        except DATABASE_ERRORS as exc:
            logger.error("writing %d changes to Postgres failed: %s", len(batch), exc)
            await self._fail(batch, exc)
            return
        except Exception as exc:
            # Not a database error we know of: still only this batch fails (its writers keep
            # the changes and send them again), never the writer task, whose end would stop
            # every ack of this node for good.
            logger.exception("writing %d changes to Postgres failed unexpectedly", len(batch))
            await self._fail(batch, exc)
            return
        self.commits += 1
        self.failed = None
        changes = sum(1 for job in batch if job.commit.entry is not None)
        if self.on_commit is not None:
            self.on_commit(changes, time.perf_counter() - started)
        for job, result in zip(batch, results, strict=True):
            if not job.future.done():
                job.future.set_result(result)

    async def _fail(self, batch: list[_Job], exc: Exception) -> None:
        """The batch's transaction failed: none of it was stored. Its connection may be
        broken: the next batch takes a fresh one."""
        await self._discard()
        self.failed = str(exc) or type(exc).__name__
        error = DatabaseError(f"the server could not store the change: {exc}")
        for job in batch:
            if not job.future.done():
                job.future.set_exception(error)

    async def _write(self, conn: Any, batch: list[_Job]) -> list[Committed]:
        """Everything of the batch, numbered in the order it was submitted."""
        entries = [job.commit.entry for job in batch if job.commit.entry is not None]
        first = await log.append_updates(
            conn,
            [(e.doc_id, e.author, e.session_id, e.time, changes_json(e.changes), e.data)
             for e in entries],
            node=self.node_id, signal=False,
        )
        numbers: list[int | None] = []
        cursors: list[int | None] = []
        seq = first
        rows, snapshots = [], []
        # A directory row without an update (a node rewriting a row from the merged
        # document, cluster.py) takes a number of its own from the log head: a cursor
        # after every row already written, commit-ordered like the log. It leaves a gap in
        # the update numbers, which no reader of "after N" minds.
        rewrites = sum(1 for job in batch
                       if job.commit.entry is None and job.commit.directory is not None)
        cursor = await log.take_numbers(conn, rewrites) if rewrites else 0
        for job in batch:
            commit = job.commit
            own_seq = None
            if commit.entry is not None:
                own_seq = seq
                seq += 1
            numbers.append(own_seq)
            row_cursor = None
            if commit.directory is not None:
                if own_seq is not None:
                    row_cursor = own_seq
                else:
                    row_cursor, cursor = cursor, cursor + 1
                rows.append(dataclasses.replace(commit.directory, cursor=row_cursor))
            cursors.append(row_cursor)
            if commit.snapshot is not None and own_seq is not None:
                snapshots.append((commit.snapshot[0], own_seq, commit.snapshot[2]))
        numbered = await records.append_expiring(conn, [
            (n, job.commit.expires_at) for job in batch for n in job.commit.notifications
        ])
        # The bus signals of the updates and notifications, in one round trip, delivered
        # at COMMIT: the other nodes fan both out live (cluster.py); a node ignores its own.
        await log.send_signals(conn, [
            *log.update_signals([e.doc_id for e in entries], first, node=self.node_id),
            *log.notification_signals(numbered, node=self.node_id),
        ])
        notes = iter(numbered)
        await directory.upsert_rows(conn, rows)
        for doc_id, snap_seq, data in snapshots:
            await records.put_snapshot(conn, doc_id, snap_seq, data)
        return [
            Committed(number, tuple(next(notes) for _ in job.commit.notifications), row)
            for job, number, row in zip(batch, numbers, cursors, strict=True)
        ]
