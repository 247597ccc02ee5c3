"""What the connection tells the UI's status indicator: a state and a few details, and
the :class:`StatusBoard` that holds the current one and delivers each change."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["ConnectionState", "Status", "StatusBoard"]


class ConnectionState(StrEnum):
    """What the status indicator shows."""

    #: Authenticated; ``send()`` works.
    ONLINE = "online"
    #: Connecting, or waiting ``retry_in`` seconds before the next attempt.
    CONNECTING = "connecting"
    #: Not started, closed, or stopped by a fatal error (see ``Status.error``).
    OFFLINE = "offline"


@dataclass(frozen=True, slots=True)
class Status:
    """A snapshot of the connection for the UI's status indicator.

    ``retry_in``: seconds until the next attempt, while CONNECTING and waiting (None while
    an attempt is under way). ``error``: why the link is not online, for people (None when
    there is nothing to say). ``attempt``: number of the current or next connection attempt
    since the link was last online (0 when online or offline).
    """

    state: ConnectionState
    retry_in: float | None = None
    error: str | None = None
    attempt: int = 0


class StatusBoard:
    """The current :class:`Status` of one connection and who hears about its changes.

    :meth:`set` stores a new status (an equal one is ignored), calls every listener with
    it, in the order they were added, and wakes whoever awaits :meth:`changed`. Listeners
    run on the event loop and must not block; an exception of one is logged on ``log``
    and the others still run. Used by :class:`sync.client.connection.ClientConnection`,
    whose ``status``, ``add_status_listener`` and ``subscribe_status`` forward here.
    """

    def __init__(self, log: logging.Logger | logging.LoggerAdapter[logging.Logger]) -> None:
        self.current = Status(ConnectionState.OFFLINE)
        self._log = log
        self._changed = asyncio.Event()
        self._listeners: list[Callable[[Status], None]] = []

    def set(self, status: Status) -> None:
        """Make ``status`` the current one and tell the listeners (if it differs)."""
        if status == self.current:
            return
        self.current = status
        self._changed.set()
        self._changed = asyncio.Event()
        for callback in list(self._listeners):
            try:
                callback(status)
            except Exception:
                self._log.exception("status listener %r failed", callback)

    async def changed(self) -> None:
        """Return at the next :meth:`set` that changes the status."""
        await self._changed.wait()

    def add_listener(self, callback: Callable[[Status], None]) -> Callable[[], None]:
        """Call ``callback(status)`` on every change; returns a function removing it."""
        self._listeners.append(callback)

        def remove() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)

        return remove

    async def subscribe(self) -> AsyncIterator[Status]:
        """Yield the current status, then every change, until the consumer stops."""
        queue: asyncio.Queue[Status] = asyncio.Queue()
        queue.put_nowait(self.current)
        remove = self.add_listener(queue.put_nowait)
        try:
            while True:
                yield await queue.get()
        finally:
            remove()
