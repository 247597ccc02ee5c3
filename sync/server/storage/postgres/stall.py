"""Close a connection that Postgres leaves unanswered.

A link that goes silent without an error (a partition, a host gone without a reset) gives
asyncpg nothing to raise: a query waits until TCP gives up, many minutes later, and so does
giving the connection back to the pool afterwards (its reset waits on the same link), even
when the caller's own wait was cancelled. :func:`closed_if_silent` closes the connection
when a block of work on it takes too long: every wait on it then ends at once with an error
the callers already handle (``errors.DATABASE_ERRORS``), and the pool opens a fresh
connection for the next use. :func:`acquired` is a pooled connection used that way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg

from .errors import DATABASE_ERRORS

__all__ = ["STALL_TIMEOUT", "acquired", "closed_if_silent"]

logger = logging.getLogger(__name__)

#: Seconds a block of work (a read, or the writer's transaction) may wait for Postgres.
#: Each takes milliseconds; this only bounds a silent link.
STALL_TIMEOUT = 30.0


@contextlib.contextmanager
def closed_if_silent(conn: Any, seconds: float, what: str) -> Iterator[None]:
    """Close ``conn`` if the block has not ended within ``seconds``; the database error
    that then ends the block comes out as a TimeoutError saying so."""
    fired: list[bool] = []

    def close() -> None:
        fired.append(True)
        logger.warning("Postgres has not answered %s for %g seconds; closing its connection",
                       what, seconds)
        conn.terminate()

    handle = asyncio.get_running_loop().call_later(seconds, close)
    try:
        yield
    except DATABASE_ERRORS as exc:
        if fired:
            raise TimeoutError(f"Postgres did not answer within {seconds:g} seconds") from exc
        raise
    finally:
        handle.cancel()


@contextlib.asynccontextmanager
async def acquired(pool: Any, what: str, seconds: float) -> AsyncIterator[Any]:
    """A connection from ``pool`` (waiting at most ``seconds`` for one), closed if the block
    has not ended within ``seconds`` (:func:`closed_if_silent`).

    A block that ends with any error but one Postgres itself reported (``PostgresError``:
    the connection answered and is fine) closes the connection too: it is broken, or was
    cut mid-query by the caller's own timeout or cancellation, and giving it back to the
    pool would wait on it (the pool resets a connection it takes back)."""
    async with pool.acquire(timeout=seconds) as conn:
        with closed_if_silent(conn, seconds, what):
            try:
                yield conn
            except asyncpg.PostgresError:
                raise
            except BaseException:
                conn.terminate()
                raise
