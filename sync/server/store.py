"""Where the update store was: it is now the SQLite engine's, in the storage package.

``UpdateStore`` is :class:`sync.server.storage.sqlite.store.UpdateStore`; the records it
stores (``Commit``, ``LogEntry``, ``DirectoryRow``) are engine-neutral, in
:mod:`sync.server.storage.records`. New code imports from there; this module keeps the
old import path working while the rest of the server moves to the storage interface
(issue 12). It imports no database driver.
"""

from __future__ import annotations

from .storage.records import Commit, DirectoryRow, LogEntry
from .storage.sqlite.store import UpdateStore, fts_query

__all__ = ["Commit", "DirectoryRow", "LogEntry", "UpdateStore", "fts_query"]
