"""The contract every storage engine keeps, and what an engine declares it can do.

Callers (the hub, the HTTP API, the command line) hold a :class:`StorageEngine` and never
ask which engine it is: where engines differ, they read :class:`Capabilities`, the way
Django's database backends declare their features.

=============================  ===================================  =====================
                               SQLite (``storage.sqlite``)          Postgres
=============================  ===================================  =====================
processes on one database      one (a file lock refuses a second)   any number of nodes
update numbers                 handed out in memory before the       taken at COMMIT,
                               commit (fan-out need not wait)        commit-ordered
writer                         a thread, group commit, FULL sync     a task, group commit
bus between nodes              ``LocalBus``                          LISTEN/NOTIFY + catch-up
online backup                  ``liveedit server backup``            ``pg_dump`` / base backup
=============================  ===================================  =====================

Both engines implement :class:`Engine` and pass one contract test on a real SQLite file
and a real Postgres cluster (tests/cluster/test_engine_contract.py). The hub, the HTTP API
and the command line use only this contract; the account and token services use an
:class:`AccountsDatabase` (:func:`open_accounts_database`). Multi-node engines also keep
shared sessions (``claim_session`` …), read a document's log after a number
(``updates_after``) and open the bus between nodes (``open_bus``).
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sync.protocol.messages import Notification

from ..bus import Bus, LocalBus
from ..errors import DatabaseError
from .records import Commit, DirectoryRow, LogEntry

__all__ = [
    "POSTGRES", "SQLITE", "AccountsDatabase", "Capabilities", "Committed", "Engine",
    "SharedSession", "Stored", "open_accounts_database",
]


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a storage engine can do (declared by it, never sniffed at call sites)."""

    #: Several server processes may serve the same database at once.
    multi_node: bool
    #: Update and notification numbers are known only once the change is committed: the
    #: hub fans a change out and acks it after the commit, with the number the commit
    #: returned. False: the hub numbers changes in memory and fans out before the commit.
    numbers_at_commit: bool
    #: ``liveedit server backup`` can copy the database while the server runs.
    online_backup: bool


SQLITE = Capabilities(multi_node=False, numbers_at_commit=False, online_backup=True)
POSTGRES = Capabilities(multi_node=True, numbers_at_commit=True, online_backup=False)


@dataclass(frozen=True, slots=True)
class SharedSession:
    """A session as a node claimed it from the shared session table."""

    resumed: bool
    subscriptions: frozenset[str]
    directory: bool
    #: The node that held it and did not let go (it may be dead), or None.
    previous_node: str | None


@dataclass(frozen=True, slots=True)
class Committed:
    """A change is durable: its update number (None if it logged no update), its
    notifications, numbered, and the cursor its directory row was written under (None if
    it wrote none)."""

    seq: int | None
    notifications: tuple[Notification, ...] = ()
    cursor: int | None = None


#: What :meth:`Engine.submit_then` calls: (the committed change, None) or (None, error).
Stored = Callable[[Committed | None, BaseException | None], None]


class Engine(abc.ABC):
    """The update log side of a storage engine (log, snapshots, notifications, directory
    and search). Every read is a coroutine; writes are group-committed.

    Call order: :meth:`start`, then the rest from the event loop, then :meth:`close`.
    Numbering (:attr:`Capabilities.numbers_at_commit`): when False, the caller numbers a
    change with :meth:`next_seq` / :meth:`next_notification_seq` before :meth:`submit`
    and those numbers are stored; when True, numbers in a commit are placeholders and
    :meth:`submit`'s result carries the ones the commit took.
    """

    capabilities: Capabilities

    @property
    def failed(self) -> str | None:
        """Why the last write failed, while the engine cannot write (None: it can)."""
        return None

    async def check(self) -> str | None:
        """Probe the database: why it cannot be used now, or None when it can (called
        about once a second by the server; a node that cannot use its database refuses
        new connections and is not ready)."""
        return self.failed

    @abc.abstractmethod
    def observe_commits(self, observer: Callable[[int, float], None]) -> None:
        """Call ``observer(changes, seconds)`` after every commit (metrics)."""

    @abc.abstractmethod
    async def start(self) -> None:
        """Open connections, migrate, start the writer."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Commit what is queued, stop the writer, close connections."""

    def next_seq(self) -> int:
        """The next update number (only where numbers are not taken at commit)."""
        raise NotImplementedError(f"{type(self).__name__} numbers changes at commit")

    def next_notification_seq(self) -> int:
        """The next notification number (only where numbers are not taken at commit)."""
        raise NotImplementedError(f"{type(self).__name__} numbers changes at commit")

    @abc.abstractmethod
    def submit(self, commit: Commit) -> asyncio.Future[Committed]:
        """Queue a change; the future resolves once it is durably committed, or fails with
        DatabaseError (then nothing of it was stored)."""

    def submit_then(self, commit: Commit, then: Stored) -> None:
        """:meth:`submit`, calling ``then(committed, None)`` on the event loop once the
        change is durable, or ``then(None, error)`` (a DatabaseError) if nothing of it was
        stored. Engines may do it without a future per change (SQLite does: this is every
        accepted update's path); the default relays the future's outcome."""

        def relay(future: asyncio.Future[Committed]) -> None:
            if future.cancelled():
                then(None, DatabaseError("the write of this change was cancelled"))
            elif (error := future.exception()) is not None:
                then(None, error)
            else:
                then(future.result(), None)

        self.submit(commit).add_done_callback(relay)

    def barrier(self) -> asyncio.Future[Committed]:
        """Resolves once everything submitted before it is committed."""
        return self.submit(Commit())

    @abc.abstractmethod
    async def last_seq(self) -> int:
        """The highest committed update number."""

    @abc.abstractmethod
    async def load_document(self, doc_id: str) -> tuple[list[bytes], int]:
        """The updates that rebuild a document (snapshot first), and its latest number."""

    @abc.abstractmethod
    async def updates_until(self, doc_id: str, seq: int) -> list[bytes]:
        """Every logged update of a document numbered up to ``seq``."""

    async def updates_after(self, doc_id: str, seq: int) -> list[LogEntry]:
        """A document's log entries numbered after ``seq``, oldest first, with their
        bytes (what a node reads when another node committed to a document it holds).
        Only engines with ``multi_node`` need it."""
        raise NotImplementedError(f"{type(self).__name__} serves a single node")

    async def claim_session(self, session_id: str, username: str, node: str, *,
                            now: float, grace: float) -> SharedSession:
        """Attach a session to ``node`` in the shared session table (multi-node engines):
        resumed with what it followed when it is the same user's, within ``grace``."""
        raise NotImplementedError(f"{type(self).__name__} keeps sessions in memory")

    async def save_session(self, session_id: str, subscriptions: Iterable[str],
                           directory: bool, now: float) -> None:
        """Record what a shared session follows now."""
        raise NotImplementedError(f"{type(self).__name__} keeps sessions in memory")

    async def detach_session(self, session_id: str, node: str, now: float) -> bool:
        """The session's connection on ``node`` dropped (False: it is elsewhere now)."""
        raise NotImplementedError(f"{type(self).__name__} keeps sessions in memory")

    async def expire_sessions(self, now: float, grace: float) -> int:
        """Forget shared sessions detached for longer than ``grace``."""
        raise NotImplementedError(f"{type(self).__name__} keeps sessions in memory")

    def open_bus(self) -> Bus:
        """The bus between the nodes on this database (not started): a ``LocalBus``
        where only one node can serve it."""
        return LocalBus()

    @abc.abstractmethod
    async def history(self, doc_id: str, *, before: int | None = None,
                      limit: int = 100) -> list[LogEntry]:
        """Versions of a document, newest first (without the update bytes)."""

    @abc.abstractmethod
    async def directory_row(self, customer_id: str) -> DirectoryRow | None:
        """One customer's directory row, or None."""

    @abc.abstractmethod
    async def directory_since(self, cursor: int, limit: int,
                              customer_id: str | None = None) -> list[DirectoryRow]:
        """Rows changed after ``cursor``, oldest change first."""

    @abc.abstractmethod
    async def search(self, query: str, limit: int, *,
                     include_deleted: bool = False) -> list[DirectoryRow]:
        """Customers matching every typed word as a prefix, in name order."""

    @abc.abstractmethod
    async def notifications_since(self, since: int, doc_ids: Iterable[str] | None,
                                  limit: int, now: float | None = None) -> list[Notification]:
        """Unexpired notifications after ``since`` (for ``doc_ids``, or all)."""

    @abc.abstractmethod
    async def purge_notifications(self, now: float | None = None) -> int:
        """Delete expired notifications; returns how many."""


class AccountsDatabase(Protocol):
    """Where the thread-safe account and token services keep their rows.

    ``transaction()`` and ``reading()`` give a connection whose ``execute(sql, params)``
    takes portable SQL with ``?`` placeholders and returns a cursor (``rowcount``,
    ``fetchone()``, ``fetchall()``, iteration). SQLite: ``storage.sqlite.db.Database``;
    Postgres: ``storage.postgres.accounts_db.PostgresAccountsDatabase``. A unique key
    conflict raises ``errors.DuplicateKey`` (Postgres) or ``sqlite3.IntegrityError``.
    """

    def transaction(self) -> AbstractContextManager[Any]: ...

    def reading(self) -> AbstractContextManager[Any]: ...

    def close(self) -> None: ...


def open_accounts_database(location: Path | str) -> tuple[AccountsDatabase, bool]:
    """The accounts database for a ``--db`` value, and whether it is shared by several
    nodes (then the login throttle must be shared too)."""
    from . import is_postgres_url

    if isinstance(location, str) and is_postgres_url(location):
        from .postgres.accounts_db import PostgresAccountsDatabase

        return PostgresAccountsDatabase(location), True
    from .sqlite.db import Database

    return Database(Path(location)), False
