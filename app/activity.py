"""The rep's activity feed: which notifications it shows, what is unread, and other reps'
new and deleted customers (no Qt; the desktop's Activity dock and tray notices use it).

What the feed shows (issue 15): other reps' changes — never this rep's own, even when the
server replays them after a restart — and never "opened"/"closed" (presence is shown on the
customer itself), about customers this rep **follows**: one it opened or edited (held in
the replica). Customers other reps create, delete or restore are shown whoever follows them.

The server sends live notifications only for the customers a client subscribes to, so a
new customer (or a deletion of one this client does not hold) reaches it only as a
directory change, which carries no author. Each live directory change therefore makes
:class:`ActivityFeed` read the server's notification list (``GET /notifications``, a rep
sees every customer's) after its own cursor, and keep the created/deleted/restored ones by
other reps; they are stored like every notification (so "read" sticks) and reported on the
bus as :class:`~app.events.NotificationsArrived`. The cursor starts at the server's newest
notification the first time (the past is not news). Offline, the catch-up simply waits for
the next directory change.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import httpx

from sync.client.errors import ClientError
from sync.protocol.messages import Notification, NotificationKind, customer_doc_id

from .errors import CoreError
from .events import DirectoryChanged, Event, NotificationsArrived
from .history import HistoryClient
from .replica import StoredNotification

if TYPE_CHECKING:
    from .core import ClientCore

__all__ = ["ANY_CUSTOMER", "NOISE", "ActivityFeed"]

log = logging.getLogger(__name__)

#: Kinds the feed never shows (who is looking at a customer is shown on the customer).
NOISE = frozenset({NotificationKind.JOINED, NotificationKind.LEFT})
#: Kinds shown about any customer, followed or not.
ANY_CUSTOMER = frozenset(
    {NotificationKind.CREATED, NotificationKind.DELETED, NotificationKind.RESTORED})
#: Replica setting: the last server notification seq the catch-up has read.
_CURSOR = "activity_seq"
_PAGE = 1000
#: How many stored notifications are read to find the feed's newest rows.
_SCAN = 2000


def _kind(n: Any) -> NotificationKind:
    return NotificationKind(str(getattr(n.kind, "value", n.kind)))


def _doc(n: Any) -> str:
    return str(getattr(n, "doc", None) or getattr(n, "doc_id", ""))


class ActivityFeed:
    """One profile's activity rules and catch-up. Build it on the event loop's thread;
    :meth:`close` stops it."""

    def __init__(self, core: ClientCore) -> None:
        self._core = core
        self._task: asyncio.Task[None] | None = None
        self._again = False
        self._unsubscribe = core.bus.subscribe(self._on_event)
        if core.replica.get_setting(_CURSOR) is None:
            self.catch_up_soon()  # sets the cursor to "now" while nothing happened yet

    def close(self) -> None:
        """Stop listening and cancel a catch-up on its way."""
        self._unsubscribe()
        if self._task is not None:
            self._task.cancel()

    # --- what the feed shows -------------------------------------------------------------

    def followed(self) -> frozenset[str]:
        """Doc ids of the customers this rep follows (opened or edited: held)."""
        return frozenset(self._core.replica.held_documents())

    def relevant(self, n: Any, followed: frozenset[str] | None = None) -> bool:
        """True when the feed shows notification ``n`` (protocol or stored)."""
        kind = _kind(n)
        if kind in NOISE:
            return False
        me = self._core.username
        if me and n.actor == me:
            return False
        if kind in ANY_CUSTOMER:
            return True
        return _doc(n) in (self.followed() if followed is None else followed)

    def select(self, items: Iterable[Any]) -> list[Any]:
        """The relevant ones of ``items``, in their order."""
        followed = self.followed()
        return [n for n in items if self.relevant(n, followed)]

    def about_followed(self, items: Iterable[Any]) -> list[Any]:
        """The relevant ones of ``items`` about followed customers only (what deserves an
        OS notice: not every customer someone creates)."""
        followed = self.followed()
        return [n for n in items if self.relevant(n, followed) and _doc(n) in followed]

    def recent(self, limit: int = 100) -> list[StoredNotification]:
        """The feed's newest stored rows, newest first."""
        return self.select(self._core.replica.notifications(limit=_SCAN))[:limit]

    def mark_read(self, seqs: Sequence[int]) -> None:
        """Mark rows read (they stay read after a restart)."""
        if seqs:
            self._core.replica.mark_read(seqs)

    # --- others' new and deleted customers ---------------------------------------------

    def _on_event(self, event: Event) -> None:
        if isinstance(event, DirectoryChanged) and event.count:
            self.catch_up_soon()

    def catch_up_soon(self) -> None:
        """Run :meth:`catch_up` (once more if one is running); no-op without a loop."""
        if self._task is not None and not self._task.done():
            self._again = True
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._task = loop.create_task(self._catch_up_loop(), name="activity catch-up")

    async def _catch_up_loop(self) -> None:
        while True:
            self._again = False
            try:
                await self.catch_up()
            except (CoreError, ClientError) as exc:  # offline, signed out: retried later
                log.info("activity catch-up skipped: %s", exc)
                return
            except httpx.HTTPError as exc:  # the server answered oddly (5xx): retried later
                log.warning("activity catch-up failed: %s", exc)
                return
            if not self._again:
                return

    async def catch_up(self) -> list[Notification]:
        """Read the server's notifications after the cursor; store and report other reps'
        created/deleted/restored customers. Returns the new ones. Raises CoreError
        subclasses (ServerUnreachable, NotSignedIn, PermissionDenied)."""
        core = self._core
        if core.closed:
            return []
        client = HistoryClient(core.authenticator())
        stored = core.replica.get_setting(_CURSOR)
        since = int(stored) if stored is not None else 0
        found: list[Notification] = []
        while True:
            page = await client.notifications(since, _PAGE)
            if stored is not None:
                found += [n for n in map(_notification, page["items"])
                          if n is not None and n.kind in ANY_CUSTOMER and self.relevant(n)]
            since = int(page["latest"])
            if not page["more"]:
                break
        if core.closed:
            return []
        core.replica.set_setting(_CURSOR, str(since))
        new = [n for n in found if core.replica.add_notifications([n], offline=False)]
        if new:
            core.bus.emit(NotificationsArrived(tuple(new), offline=False))
        return new


def _notification(item: dict[str, Any]) -> Notification | None:
    """A protocol Notification from the HTTP API's JSON (None for an unknown kind)."""
    try:
        kind = NotificationKind(item["kind"])
        return Notification(int(item["seq"]), customer_doc_id(str(item["customer_id"])), kind,
                            str(item["actor"]), float(item["time"]),
                            tuple(item.get("fields") or ()), item.get("title"))
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("ignoring a notification the server described oddly: %s", exc)
        return None
