"""Directory pages from the server, stored off the event loop.

A first sync brings 100,000 rows. The sync engine hands each page to
:class:`DirectoryWriter`, which stores it from a worker thread on its own connection to
the replica (WAL: the UI keeps reading meanwhile), so the event loop, which is the UI
thread, never waits for it (no stall > 50 ms). The rows and the feed's cursor commit
together, without an fsync (the server can always send them again).

A first sync (no cursor yet, an empty directory) is a bulk load: pages are staged
(``DirectoryStore.stage``) and the position of the last one is kept in
:data:`LOAD_CURSOR_SETTING`; the last page moves every staged row into the directory and
builds its indexes in one transaction, then sets :data:`CURSOR_SETTING`. An interrupted
first sync resumes after the last page staged (:func:`feed_cursor`); until it finishes,
search shows no server rows (never a half-built index).
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from sync.protocol.messages import DirectoryEntry, DirectoryRows

from .collection_hold import hold_collection
from .replica import Replica

__all__ = ["CURSOR_SETTING", "LOAD_CURSOR_SETTING", "DirectoryWriter", "feed_cursor"]

#: The setting holding the directory feed's cursor (the last change stored).
CURSOR_SETTING = "directory_cursor"
#: The setting holding how far a first sync's bulk load got (absent when none runs).
LOAD_CURSOR_SETTING = "directory_load_cursor"


def feed_cursor(replica: Replica) -> int:
    """Where the directory feed resumes: after the last page staged by an unfinished
    first sync, else after the last change stored."""
    loading = replica.get_setting(LOAD_CURSOR_SETTING)
    if loading is not None:
        return int(loading)
    return int(replica.get_setting(CURSOR_SETTING) or 0)


class DirectoryWriter:
    """Stores directory pages into the replica at ``path`` from a worker thread."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._replica: Replica | None = None  # the worker thread's connection
        self._lock = threading.Lock()

    async def store(self, entries: tuple[DirectoryEntry, ...], *, advance: bool) -> int:
        """Store live directory changes; returns how many rows changed. ``advance``: move
        the feed's cursor to the highest of theirs (not while the pass runs). Raises
        ReplicaError (nothing is kept)."""
        return await asyncio.to_thread(self._store, DirectoryRows.of(entries), None, advance)

    async def store_page(self, rows: DirectoryRows, cursor: int, *, more: bool) -> int:
        """Store one page of the feed's pass, after which the feed resumes at ``cursor``
        (``more``: further pages follow); returns how many rows changed. Raises
        ReplicaError (nothing of the page is kept)."""
        return await asyncio.to_thread(self._store, rows, cursor, more)

    def _open(self) -> Replica:
        if self._replica is None:
            self._replica = Replica.open(self._path)
        return self._replica

    def _store(self, rows: DirectoryRows, cursor: int | None, flag: bool) -> int:
        """A page (``cursor`` set, ``flag``: more pages follow) or live changes
        (``cursor`` None, ``flag``: advance the cursor)."""
        with self._lock:
            store = self._open()
            with store.cache_transaction():
                loading = store.get_setting(LOAD_CURSOR_SETTING) is not None
                if (not loading and not store.get_setting(CURSOR_SETTING)
                        and store.directory_is_empty()):
                    loading = True  # a first sync: bulk load
                    store.set_setting(LOAD_CURSOR_SETTING, "0")
                if loading:
                    return self._stage(store, rows, cursor, more=flag)
                count = store.apply_directory(rows.entries())
                if cursor is None:
                    cursor = max(rows.cursors) if flag and rows.cursors else 0
                if cursor > int(store.get_setting(CURSOR_SETTING) or 0):
                    store.set_setting(CURSOR_SETTING, str(cursor))
                return count

    @staticmethod
    def _stage(store: Replica, rows: DirectoryRows, cursor: int | None, *,
               more: bool) -> int:
        store.stage_directory(rows)
        if cursor is None:  # a live change: the pass's pages say where it resumes
            return 0
        if more:
            store.set_setting(LOAD_CURSOR_SETTING, str(cursor))
            return 0
        with hold_collection():  # its columns are large: no UI-thread pass over them
            count = store.finish_directory_load()
        store.set_setting(LOAD_CURSOR_SETTING, None)
        store.set_setting(CURSOR_SETTING, str(cursor))
        return count

    def close(self) -> None:
        """Close the worker's connection (a later page opens it again)."""
        with self._lock:
            if self._replica is not None:
                self._replica.close()
                self._replica = None
