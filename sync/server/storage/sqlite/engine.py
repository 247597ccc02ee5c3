"""The SQLite engine behind the storage contract (``storage.base.Engine``).

A thin adapter over :class:`~sync.server.storage.sqlite.store.UpdateStore`, which keeps
today's behaviour and figures: numbers handed out in memory (one process owns the file),
a writer thread with group commit, reads on per-thread read-only connections run through
``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from pathlib import Path

from sync.protocol.messages import Notification

from ..base import SQLITE, Committed, Engine, Stored
from ..records import Commit, DirectoryRow, LogEntry
from .store import UpdateStore

__all__ = ["SqliteEngine"]


class SqliteEngine(Engine):
    """One server database file (the caller holds the server lock)."""

    capabilities = SQLITE

    def __init__(self, path: Path, *, max_batch: int = 2000) -> None:
        self.store = UpdateStore(path, max_batch=max_batch)

    @property
    def failed(self) -> str | None:
        error = self.store.failed
        return None if error is None else str(error)

    async def check(self) -> str | None:
        # One process owns the file: a failed writer shows on /readyz and /healthz, and
        # connections are still admitted (what they read is served from memory).
        return None

    def observe_commits(self, observer: Callable[[int, float], None]) -> None:
        self.store.on_commit = observer

    async def start(self) -> None:
        self.store.start()

    async def close(self) -> None:
        await asyncio.to_thread(self.store.close)

    def next_seq(self) -> int:
        return self.store.next_seq()

    def next_notification_seq(self) -> int:
        return self.store.next_notification_seq()

    def submit(self, commit: Commit) -> asyncio.Future[Committed]:
        # The writer resolves the store's future with the result itself (no relaying
        # callback): barriers, the importer, a cluster's directory rewrite.
        stored: asyncio.Future[Committed] = self.store.submit(commit, _committed(commit))
        return stored

    def submit_then(self, commit: Commit, then: Stored) -> None:
        # Every acked update's path: no future per change, the writer's one wake-up per
        # batch calls ``then``.
        self.store.submit_then(commit, _committed(commit), then)

    async def last_seq(self) -> int:
        mark = self.store.last_seq  # numbered (and so submitted) before the barrier
        await self.barrier()
        return mark

    async def load_document(self, doc_id: str) -> tuple[list[bytes], int]:
        return await asyncio.to_thread(self.store.load_document, doc_id)

    async def updates_until(self, doc_id: str, seq: int) -> list[bytes]:
        return await asyncio.to_thread(self.store.updates_until, doc_id, seq)

    async def history(self, doc_id: str, *, before: int | None = None,
                      limit: int = 100) -> list[LogEntry]:
        return await asyncio.to_thread(self.store.history, doc_id, before=before, limit=limit)

    async def directory_row(self, customer_id: str) -> DirectoryRow | None:
        return await asyncio.to_thread(self.store.directory_row, customer_id)

    async def directory_since(self, cursor: int, limit: int,
                              customer_id: str | None = None) -> list[DirectoryRow]:
        return await asyncio.to_thread(self.store.directory_since, cursor, limit, customer_id)

    async def search(self, query: str, limit: int, *,
                     include_deleted: bool = False) -> list[DirectoryRow]:
        return await asyncio.to_thread(self.store.search, query, limit,
                                       include_deleted=include_deleted)

    async def notifications_since(self, since: int, doc_ids: Iterable[str] | None,
                                  limit: int, now: float | None = None) -> list[Notification]:
        ids = None if doc_ids is None else list(doc_ids)
        return await asyncio.to_thread(self.store.notifications_since, since, ids, limit, now)

    async def purge_notifications(self, now: float | None = None) -> int:
        return await asyncio.to_thread(self.store.purge_notifications, now)


def _committed(commit: Commit) -> Committed:
    """What a commit reports once durable: numbers were given at submit (SQLite)."""
    return Committed(commit.entry.seq if commit.entry is not None else None,
                     tuple(commit.notifications),
                     commit.directory.cursor if commit.directory is not None else None)
