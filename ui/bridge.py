"""The one place where core events become Qt signals.

:class:`CoreBridge` subscribes to ``core.bus`` when it is built and re-emits each
:mod:`app.events` event as a Qt signal; views connect to the signals they need and never
subscribe to the bus themselves. The bus delivers on the event loop's thread, which under
qasync is the GUI thread, so the signals are emitted directly. Call :meth:`close` before the
core is closed (or the bridge is dropped) to unsubscribe.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal

from app.core import ClientCore
from app.events import (
    ConflictRecorded,
    ConflictResolved,
    DirectoryChanged,
    DocumentChanged,
    ErrorReported,
    Event,
    NotificationsArrived,
    OutboxChanged,
    PresenceUpdated,
    StatusChanged,
)

__all__ = ["CoreBridge"]

log = logging.getLogger(__name__)


class CoreBridge(QObject):
    """Core events as Qt signals (see :mod:`app.events` for what each carries)."""

    #: DocumentChanged event.
    documentChanged = Signal(object)
    #: ConflictRecorded event.
    conflictRecorded = Signal(object)
    #: ConflictResolved event (kept theirs or used mine).
    conflictResolved = Signal(object)
    #: Number of local changes waiting for the server.
    outboxChanged = Signal(int)
    #: Directory rows changed, and whether a full directory pass has completed.
    directoryChanged = Signal(int, bool)
    #: Notifications (a tuple), and whether they are a replay after a reconnect.
    notificationsArrived = Signal(object, bool)
    #: Customer id, and who is on it: session id -> (user, state).
    presenceUpdated = Signal(str, object)
    #: The connection Status (state, retry_in, error, attempt).
    statusChanged = Signal(object)
    #: A message for the rep (shown in the one error area).
    errorReported = Signal(str)

    def __init__(self, core: ClientCore, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.core = core
        self._unsubscribe: Callable[[], None] | None = core.bus.subscribe(self._deliver)

    def close(self) -> None:
        """Stop listening to the core (idempotent)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def _deliver(self, event: Event) -> None:
        match event:
            case DocumentChanged():
                self.documentChanged.emit(event)
            case ConflictRecorded():
                self.conflictRecorded.emit(event)
            case ConflictResolved():
                self.conflictResolved.emit(event)
            case OutboxChanged(pending=pending):
                self.outboxChanged.emit(pending)
            case DirectoryChanged(count=count, synced=synced):
                self.directoryChanged.emit(count, synced)
            case NotificationsArrived(items=items, offline=offline):
                self.notificationsArrived.emit(items, offline)
            case PresenceUpdated(customer_id=customer_id, peers=peers):
                self.presenceUpdated.emit(customer_id, peers)
            case StatusChanged(status=status):
                self.statusChanged.emit(status)
            case ErrorReported(message=message, retrying=retrying):
                # The core's one error event (issue 11): the server's refusals, a remote
                # update the replica could not store (retried by the core), a failing
                # event subscriber. All of them go to the window's one error area.
                suffix = " Live Edit keeps retrying; nothing is lost." if retrying else ""
                self.errorReported.emit(f"{message}{suffix}")
            case _:
                log.warning("no signal for core event %r", event)
