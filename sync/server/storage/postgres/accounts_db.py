"""The accounts-and-tokens database on Postgres, for the thread-safe services.

:class:`sync.server.accounts.AccountStore` and :class:`sync.server.tokens.TokenService`
are synchronous (they run through ``asyncio.to_thread``, because argon2 hashing is slow on
purpose) and speak portable SQL with ``?`` placeholders to a database object with
``transaction()`` and ``reading()`` (``storage.base.AccountsDatabase``). On SQLite that is
``storage.sqlite.db.Database``; here it is :class:`PostgresAccountsDatabase`, on psycopg 3
(synchronous; asyncpg has no blocking API, and these services run in threads).

Every write transaction first takes one transaction-scoped advisory lock, so the account
and token writes of all nodes are serialized as SQLite serializes them with its write lock:
a refresh token replayed on two nodes at once is rotated once and the replay detected.
A connection that broke (Postgres restarted) is replaced at the next use.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg

from ...errors import DatabaseError, DuplicateKey
from .stall import STALL_TIMEOUT

__all__ = ["PostgresAccountsDatabase"]

log = logging.getLogger(__name__)

#: Advisory lock key serializing account and token writes across nodes.
_ACCOUNTS_LOCK = 0x4C49_5645_4544_0002


class _Cursor:
    """What the services read from ``execute()``: rowcount, fetchone, fetchall, rows."""

    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        self._cursor = cursor
        self.rowcount = cursor.rowcount

    def fetchone(self) -> Any:
        return self._cursor.fetchone() if self._cursor.description else None

    def fetchall(self) -> list[Any]:
        return self._cursor.fetchall() if self._cursor.description else []

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


class _Connection:
    """``execute(sql, params)`` with SQLite's ``?`` placeholders, on one psycopg connection.

    ``reconnect`` (reads outside a transaction only): a statement that fails because the
    connection was cut (Postgres restarted) runs once more on a fresh connection."""

    def __init__(self, conn: psycopg.Connection[Any],
                 reconnect: Callable[[], psycopg.Connection[Any]] | None = None) -> None:
        self._conn = conn
        self._reconnect = reconnect

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _Cursor:
        query = sql.replace("?", "%s")
        try:
            try:
                cursor = self._conn.execute(query, tuple(params))
            except psycopg.OperationalError:
                if self._reconnect is None or not self._conn.broken:
                    raise
                log.info("the accounts connection to Postgres was cut; reconnecting")
                self._conn = self._reconnect()
                cursor = self._conn.execute(query, tuple(params))
        except psycopg.errors.UniqueViolation as exc:
            raise DuplicateKey(f"that already exists: {exc.diag.message_primary}") from exc
        return _Cursor(cursor)


class PostgresAccountsDatabase:
    """A writer and a reader connection to the shared database (thread-safe)."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._lock = threading.RLock()
        self._read_lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        self._read_conn: psycopg.Connection[Any] | None = None

    def _connect(self, current: psycopg.Connection[Any] | None) -> psycopg.Connection[Any]:
        if current is not None and not current.closed and not current.broken:
            return current
        try:
            # A query on a link gone silent would otherwise wait until TCP gives up (many
            # minutes): unacknowledged data closes the connection after 30 s, and
            # keepalives notice a dead idle one (libpq settings; stall.py's limit).
            return psycopg.connect(self._url, autocommit=True, connect_timeout=10,
                                   tcp_user_timeout=int(STALL_TIMEOUT * 1000),
                                   keepalives=1, keepalives_idle=30,
                                   keepalives_interval=10, keepalives_count=3)
        except psycopg.Error as exc:
            raise DatabaseError(f"cannot reach the Postgres database: {exc}") from exc

    def close(self) -> None:
        """Close both connections."""
        with self._lock, self._read_lock:
            for conn in (self._conn, self._read_conn):
                if conn is not None:
                    conn.close()
            self._conn = self._read_conn = None

    @contextmanager
    def transaction(self) -> Iterator[_Connection]:
        """One write transaction, serialized with every node's; errors: DatabaseError."""
        with self._lock:
            try:
                conn = self._begin()
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_ACCOUNTS_LOCK,))
                    yield _Connection(conn)
            except psycopg.Error as exc:
                raise DatabaseError(f"could not save to the database: {exc}") from exc

    def _begin(self) -> psycopg.Connection[Any]:
        """The writer connection, known to answer (a cut one is replaced once)."""
        self._conn = conn = self._connect(self._conn)
        try:
            conn.execute("SELECT 1")
        except psycopg.OperationalError:
            if not conn.broken:
                raise
            log.info("the accounts connection to Postgres was cut; reconnecting")
            self._conn = conn = self._connect(None)
        return conn

    @contextmanager
    def reading(self) -> Iterator[_Connection]:
        """A connection for reads outside a transaction (autocommit)."""
        with self._read_lock:
            self._read_conn = conn = self._connect(self._read_conn)

            def reconnect() -> psycopg.Connection[Any]:
                self._read_conn = fresh = self._connect(None)
                return fresh

            try:
                yield _Connection(conn, reconnect)
            except psycopg.Error as exc:
                raise DatabaseError(f"could not read the database: {exc}") from exc
