"""What the core tells its observers (the Qt bridge, the CLI, tests).

Every change made through the core is reported as one of these frozen events, carrying
what changed and who initiated it (Anki's ``OpChanges``), so a view refreshes only what it
shows and never reloads in reaction to its own edit. :class:`EventBus` delivers them
synchronously, in order, on the thread that made the change (the event loop's).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sync.client.status import Status

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
    """A customer document changed, and what it is now, so a view updates from the event
    without reading the customer again (CONVENTIONS.md, "change sets").

    ``fields``: names of the fields that changed; ``values``: their new values (every name
    of ``fields`` is a key). ``roots``: the parts that changed — ``fields``, ``notes``,
    ``tasks``, ``comments``, ``meta`` (deleted/restored); a view showing notes, tasks or
    comments re-reads only that part, only when its root is here. ``deleted``: whether the
    customer is deleted now.
    """

    customer_id: str
    fields: frozenset[str]
    roots: frozenset[str]
    origin: Origin
    author: str | None
    time: float
    values: Mapping[str, str | None] = field(default_factory=dict)
    deleted: bool = False

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
    """How many local changes wait for the server's ack, counted as a rep counts them
    (per field, per notes editing session, per customer: :mod:`app.outbox`), not updates."""

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

    status: Status


@dataclass(frozen=True, slots=True)
class ErrorReported:
    """The core's one error event: something went wrong that the user should know about
    (the UI shows it in its one error area). Raised by the server's refusals, by a remote
    update the replica could not store (``retrying``: the core tries again by itself and
    nothing is lost), and by an event subscriber that failed."""

    message: str
    customer_id: str | None = None
    retrying: bool = False


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

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def emit(self, event: Event) -> None:
        """Deliver an event to every subscriber.

        A subscriber that raises does not stop the others: its failure is logged and
        reported to every subscriber as an :class:`ErrorReported` (so the UI's error area
        shows it). A failure while delivering that report is logged only (no loop).
        """
        failures: list[str] = []
        for callback in list(self._subscribers):
            try:
                callback(event)
            except Exception as exc:
                log.exception("event subscriber %r failed on %r", callback, event)
                failures.append(f"{type(event).__name__}: {exc}")
        if isinstance(event, ErrorReported):
            return
        for failure in failures:
            self.emit(ErrorReported(f"a part of the app failed to update ({failure})"))
