"""The Postgres engine behind the storage contract (``storage.base.Engine``).

A connection pool (asyncpg), the schema migrated at start (several nodes may start at
once), the group-commit writer that numbers changes at COMMIT (writer.py), and reads on
pooled connections (log.py, records.py, directory.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import asyncpg

from sync.protocol.messages import Notification

from ...bus import Bus
from ...errors import DatabaseError
from ..base import POSTGRES, Committed, Engine, SharedSession
from ..records import Commit, DirectoryRow, LogEntry
from . import directory, log, records, sessions
from .errors import DATABASE_ERRORS
from .log import LogFeed
from .schema import migrate
from .stall import STALL_TIMEOUT, acquired
from .writer import PostgresWriter

__all__ = ["PostgresEngine"]

#: A probe also fails on a pool that is not started, or closing.
_PROBE_ERRORS: tuple[type[Exception], ...] = (*DATABASE_ERRORS, RuntimeError)
#: A readiness probe that takes longer than this many seconds counts as a failure.
PROBE_TIMEOUT = 2.0

logger = logging.getLogger(__name__)


class PostgresEngine(Engine):
    """One node's view of a shared Postgres database."""

    capabilities = POSTGRES

    def __init__(self, dsn: str, *, node_id: str = "", max_batch: int = 2000,
                 pool_size: int = 10) -> None:
        self.dsn = dsn
        self.node_id = node_id
        self.max_batch = max_batch
        self.pool_size = pool_size
        self._pool: Any = None
        self._writer: PostgresWriter | None = None
        self._observer: Callable[[int, float], None] | None = None
        #: Why the last probe failed (:meth:`check`), while it does.
        self._down: str | None = None

    @property
    def failed(self) -> str | None:
        if self._down is not None:
            return self._down
        if self._writer is None:
            return None
        return self._writer.stopped or self._writer.failed

    async def check(self) -> str | None:
        """``SELECT 1`` on a pooled connection, within PROBE_TIMEOUT. Success also clears
        a failed write: the writer opens a fresh connection for its next batch. It never
        clears a writer that stopped (:attr:`PostgresWriter.stopped`): a node that can no
        longer ack must not look ready."""
        try:
            # A connection that does not answer SELECT 1 in time is closed (stall.py): a
            # timeout alone would leave the pool's release of it waiting on the silent link,
            # the probe with it, and the node would never be marked down.
            async with acquired(self.pool, "the readiness probe", PROBE_TIMEOUT) as conn:
                await conn.fetchval("SELECT 1")
        except _PROBE_ERRORS as exc:
            reason = f"Postgres cannot be reached: {exc or type(exc).__name__}"
            if self._down is None:
                logger.error("%s; refusing new connections until it is back", reason)
            self._down = reason
            return reason
        writer = self._writer
        if writer is not None and writer.stopped is not None:
            self._down = None
            return writer.stopped
        if self._down is not None or self.failed is not None:
            logger.warning("Postgres is reachable again")
        self._down = None
        if writer is not None:
            writer.failed = None
        return None

    @contextlib.asynccontextmanager
    async def _conn(self) -> AsyncIterator[Any]:
        """A pooled connection for one read; the database's errors become DatabaseError."""
        try:
            async with acquired(self.pool, "a read", STALL_TIMEOUT) as conn:
                yield conn
        except DATABASE_ERRORS as exc:
            raise DatabaseError(
                f"could not read the Postgres database: {exc or type(exc).__name__}") from exc

    def observe_commits(self, observer: Callable[[int, float], None]) -> None:
        self._observer = observer
        if self._writer is not None:
            self._writer.on_commit = observer

    @property
    def pool(self) -> Any:
        """The connection pool (after :meth:`start`)."""
        if self._pool is None:
            raise RuntimeError("the Postgres engine is not started")
        return self._pool

    async def start(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(self.dsn, min_size=1,
                                                   max_size=self.pool_size, timeout=10)
            async with self._pool.acquire() as conn:
                await migrate(conn)
        except DATABASE_ERRORS as exc:
            raise DatabaseError(f"cannot use the Postgres database: {exc}") from exc
        self._writer = PostgresWriter(self._pool, node_id=self.node_id,
                                      max_batch=self.max_batch)
        self._writer.on_commit = self._observer
        self._writer.start()

    async def close(self) -> None:
        if self._writer is not None:
            await self._writer.close()
            self._writer = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def submit(self, commit: Commit) -> asyncio.Future[Committed]:
        if self._writer is None:
            raise RuntimeError("the Postgres engine is not started")
        return self._writer.submit(commit)

    async def last_seq(self) -> int:
        async with self._conn() as conn:
            return await log.last_seq(conn)

    async def load_document(self, doc_id: str) -> tuple[list[bytes], int]:
        async with self._conn() as conn:
            return await records.load_document(conn, doc_id)

    async def updates_until(self, doc_id: str, seq: int) -> list[bytes]:
        async with self._conn() as conn:
            return await records.updates_until(conn, doc_id, seq)

    async def updates_after(self, doc_id: str, seq: int) -> list[LogEntry]:
        async with self._conn() as conn:
            rows = await records.updates_after(conn, doc_id, seq)
        return [LogEntry(*row) for row in rows]

    async def claim_session(self, session_id: str, username: str, node: str, *,
                            now: float, grace: float) -> SharedSession:
        async with self._conn() as conn:
            record = await sessions.claim(conn, session_id, username, node, now=now,
                                          grace=grace)
        return SharedSession(record.resumed, record.subscriptions, record.directory,
                             record.previous_node)

    async def save_session(self, session_id: str, subscriptions: Iterable[str],
                           directory: bool, now: float) -> None:
        async with self._conn() as conn:
            await sessions.save_subscriptions(conn, session_id, subscriptions, directory, now)

    async def detach_session(self, session_id: str, node: str, now: float) -> bool:
        async with self._conn() as conn:
            return await sessions.detach(conn, session_id, node, now)

    async def expire_sessions(self, now: float, grace: float) -> int:
        async with self._conn() as conn:
            return await sessions.expire(conn, now, grace)

    def open_bus(self) -> Bus:
        from .bus import PostgresBus

        return PostgresBus(self.dsn, LogFeed(self.pool), node_id=self.node_id)

    async def history(self, doc_id: str, *, before: int | None = None,
                      limit: int = 100) -> list[LogEntry]:
        async with self._conn() as conn:
            rows = await records.history(conn, doc_id, before=before, limit=limit)
        return [LogEntry(*row) for row in rows]

    async def directory_row(self, customer_id: str) -> DirectoryRow | None:
        async with self._conn() as conn:
            return await directory.directory_row(conn, customer_id)

    async def directory_since(self, cursor: int, limit: int,
                              customer_id: str | None = None) -> list[DirectoryRow]:
        async with self._conn() as conn:
            return await directory.directory_since(conn, cursor, limit, customer_id)

    async def search(self, query: str, limit: int, *,
                     include_deleted: bool = False) -> list[DirectoryRow]:
        async with self._conn() as conn:
            return await directory.search(conn, query, limit, include_deleted=include_deleted)

    async def notifications_since(self, since: int, doc_ids: Iterable[str] | None,
                                  limit: int, now: float | None = None) -> list[Notification]:
        async with self._conn() as conn:
            return await records.notifications_since(conn, since, doc_ids, limit, now)

    async def purge_notifications(self, now: float | None = None) -> int:
        async with self._conn() as conn:
            return await records.purge_notifications(conn, now)
