"""What the core tells its observers (the Qt bridge, the CLI, tests).

Every change made through the core is reported as one of these frozen events, carrying
what changed and who initiated it (Anki's ``OpChanges``), so a view refreshes only what it
shows and never reloads in reaction to its own edit. :class:`EventBus` delivers them
synchronously, in order, on the thread that made the change (the event loop's).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = [
    "ConflictRecorded",
    "ConflictResolved",
    "DirectoryChanged",
    "DocumentChanged",
    "ErrorReported",
    "Event",
    "EventBus",
    "NotificationsArrived",
    "Origin",
    "OutboxChanged",
    "PresenceUpdated",
    "StatusChanged",
]

log = logging.getLogger(__name__)


class Origin(StrEnum):
    """Who made a change: this client, or somebody else through the server."""

    LOCAL = "local"
    REMOTE = "remote"


@dataclass(frozen=True, slots=True)
class DocumentChanged:
    """A customer document changed. ``fields``: field names; ``roots``: also notes, tasks,
    comments, meta (deleted)."""

    customer_id: str
    fields: frozenset[str]
    roots: frozenset[str]
    origin: Origin
    author: str | None
    time: float


@dataclass(frozen=True, slots=True)
class ConflictRecorded:
    """A concurrent change replaced this rep's value of a field."""

    customer_id: str
    field: str
    mine: Any
    theirs: Any
    author: str


@dataclass(frozen=True, slots=True)
class ConflictResolved:
    """The rep settled a conflict (kept theirs or used mine)."""

    customer_id: str
    field: str
    used_mine: bool


@dataclass(frozen=True, slots=True)
class OutboxChanged:
    """The number of local changes waiting for the server's ack."""

    pending: int


@dataclass(frozen=True, slots=True)
class DirectoryChanged:
    """Directory rows changed (``count`` of them); ``synced`` once a full pass completed."""

    count: int
    synced: bool


@dataclass(frozen=True, slots=True)
class NotificationsArrived:
    """New notifications; ``offline`` when they are a replay after a reconnect."""

    items: tuple[Any, ...]
    offline: bool


@dataclass(frozen=True, slots=True)
class PresenceUpdated:
    """Who is on a customer now: session id → (user, state)."""

    customer_id: str
    peers: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StatusChanged:
    """Connection status (online / connecting with retry-in / offline)."""

    status: Any


@dataclass(frozen=True, slots=True)
class ErrorReported:
    """Something went wrong that the user should know about (one place shows errors)."""

    message: str
    customer_id: str | None = None


Event = (
    DocumentChanged | ConflictRecorded | ConflictResolved | OutboxChanged | DirectoryChanged
    | NotificationsArrived | PresenceUpdated | StatusChanged | ErrorReported
)


class EventBus:
    """Synchronous, ordered delivery of core events to subscribers."""

    def __init__(self) -> None:
        self._subscribers: list[Callable[[Event], None]] = []

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``callback`` for every event; returns a function that unsubscribes."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    def emit(self, event: Event) -> None:
        """Deliver an event. A failing subscriber is logged and does not stop the others."""
        for callback in list(self._subscribers):
            try:
                callback(event)
            except Exception:
                log.exception("event subscriber %r failed on %r", callback, event)
