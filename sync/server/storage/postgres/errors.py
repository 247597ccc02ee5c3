"""What asyncpg raises when the database, or the connection to it, cannot be used.

Besides the server's errors (``PostgresError``), OS and timeout errors and ``InterfaceError``,
this includes ``InternalClientError``: a pooled connection that Postgres terminated (a
restart, ``pg_terminate_backend``, a cut link) can be left in a protocol state in which the
next statement fails on the client side, e.g. "cannot switch to state 15; another operation
(2) is in progress". That is a broken connection like any other: drop it and use a fresh
one. Not catching it ended the writer task for good (nothing acked again, issue 12).
"""

from __future__ import annotations

import asyncpg

__all__ = ["DATABASE_ERRORS"]

#: Catch these around any use of an asyncpg connection or pool.
DATABASE_ERRORS: tuple[type[Exception], ...] = (
    OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)
