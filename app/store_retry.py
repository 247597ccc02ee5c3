"""What the sync engine received but the replica could not store, stored again later.

A remote update, a directory page or a notification arrives once (until the next
reconnect). If writing it to the replica fails — the disk is full, the file became
read-only, another program holds a lock — dropping it would lose it silently until then.
:class:`StoreRetry` keeps such messages, in arrival order, and applies them again with a
capped backoff until the replica takes them; a message arriving while others wait queues
behind them, so order is kept. The first failure of a streak is reported once as an
:class:`~app.events.ErrorReported` with ``retrying=True`` (the UI's error area); each
retry that fails again is logged at WARNING, the recovery at INFO.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from sync.client import backoff
from sync.protocol.messages import Message

from .replica import ReplicaError

__all__ = ["StoreRetry"]

log = logging.getLogger(__name__)


class StoreRetry:
    """Applies remote messages through ``apply``; keeps and retries those that fail.

    ``report(message, exc)`` is called once per streak of failures. ``initial`` and
    ``maximum`` bound the delays between retries (seconds, with jitter).
    """

    def __init__(
        self, apply: Callable[[Message], Awaitable[None]],
        report: Callable[[Message, ReplicaError], None], *, initial: float = 0.25,
        maximum: float = 15.0,
    ) -> None:
        self._apply = apply
        self._report = report
        self._initial = initial
        self._maximum = maximum
        self._waiting: deque[Message] = deque()
        self._task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        """How many received messages wait to be stored."""
        return len(self._waiting)

    async def run(self, message: Message) -> None:
        """Apply ``message`` now, or queue it behind the waiting ones."""
        if self._waiting:
            self._waiting.append(message)
            return
        try:
            await self._apply(message)
        except ReplicaError as exc:
            log.warning("could not store %s from the server: %s; will retry",
                        type(message).__name__, exc)
            self._waiting.append(message)
            self._report(message, exc)
            self._task = asyncio.get_running_loop().create_task(self._retry())

    async def _retry(self) -> None:
        for delay in backoff(self._initial, 2.0, self._maximum):
            await asyncio.sleep(delay)  # waiting for the disk to recover, not for a test
            while self._waiting:
                try:
                    await self._apply(self._waiting[0])
                except ReplicaError as exc:
                    log.warning("storing %s from the server failed again: %s",
                                type(self._waiting[0]).__name__, exc)
                    break
                self._waiting.popleft()
            else:
                log.info("the replica stores changes from the server again")
                self._task = None
                return

    async def close(self) -> None:
        """Stop retrying (what waits is sent again by the server on the next connection:
        nothing of it was acknowledged as stored)."""
        task, self._task = self._task, None
        self._waiting.clear()
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
