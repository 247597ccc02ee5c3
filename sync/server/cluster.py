"""One node among several: what the hub learns from the other nodes, and tells them.

Several nodes serve one Postgres database behind a load balancer (docs/deploy.md). The
data is in the database; the bus (``bus.py``) carries signals. :class:`ClusterLink` is the
hub's bus handler and keeps five things in step across nodes:

- **Updates.** On ``UpdatesCommitted`` for a document this node holds, it reads the log
  rows after the last one it integrated (commit-ordered, so none is skipped), applies them
  to the room and fans out every one that changed something to the local subscribers,
  except the writer's session (no echo, docs/protocol.md §5, wherever the writer is). A
  row this node wrote itself changes nothing when applied again and is not sent twice.
  After every (re)connect of the bus listener all loaded rooms catch up the same way.
- **The directory.** Each commit writes the row computed from its node's document. When a
  node integrates another node's change to a document for which it committed a *later*
  row (or has one under way), its row may lack that change; it writes the row again from
  the merged document, under a new cursor (``Commit`` with a directory row and no update),
  so the projection converges to the merged document and no stale row wins. Such a rewrite
  is itself a row this node wrote, judged the same way. A room whose row this node wrote
  is evicted only after a catch-up has read past that row (:meth:`ClusterLink.may_let_go`):
  a change of another node numbered before it, not yet integrated, would otherwise never
  make this node write the row again.
- **Notifications.** The writer signals each commit's notifications per document
  (``NotificationsCommitted``, numbers first to last); a node holding that document with
  subscribers reads them by number and sends them on, so a notification made on one node
  reaches subscribers on the others live. One missed while the listener was down is not
  sent live, but stays in the list every client reads after a reconnect.
- **Presence.** Local presence changes are published; the other nodes show them to their
  subscribers. Every node announces its presence again every ``idle_timeout / 3`` seconds
  and after a resync, and drops another node's presence not announced for
  ``idle_timeout`` seconds: a dead node's presence disappears within the presence timeout.
- **Sessions.** A session lives in the shared session table: a client whose node died
  reconnects (through the load balancer) to another node, which resumes its subscriptions
  from the table (``Welcome.resumed``) and tells the previous node, if alive, to let go
  (``SessionMoved``). Subscriptions are saved when they change.

Revoked accounts need no signal: every node checks its connections' accounts in the shared
database every ``REVOCATION_INTERVAL`` seconds (app.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from sync.protocol import yjs
from sync.protocol.errors import CloseCode
from sync.protocol.messages import (
    DirectoryChanges,
    NotificationKind,
    PresenceChanged,
    PresenceState,
    RemoteUpdate,
    customer_id_of,
    encode,
)

from .bus import (
    Bus,
    BusEvent,
    NotificationsCommitted,
    PresenceSignal,
    SessionMoved,
    UpdatesCommitted,
)
from .errors import BusError, DatabaseError
from .rooms import InvalidUpdate, MissingDependencies
from .storage.records import Commit, LogEntry

if TYPE_CHECKING:
    from .auth import Claims
    from .hub import Session, SyncHub
    from .rooms import Room

__all__ = ["ClusterLink"]

log = logging.getLogger(__name__)

#: Forget shared sessions detached past the grace period this often, seconds.
SESSION_EXPIRY_INTERVAL = 60.0


class _OneAtATime:
    """Runs passes of ``work`` for one key at a time: asked while a pass runs, it runs one
    more pass after it (however often it was asked meanwhile). A pass returns False when
    the key has nothing left to do (its room or session is gone); a DatabaseError ends the
    run and is logged with ``failed`` (the next ask tries again)."""

    def __init__(self, work: Callable[[str], Awaitable[bool]],
                 spawn: Callable[[Coroutine[Any, Any, None]], None], failed: str) -> None:
        self._work = work
        self._spawn = spawn
        self._failed = failed
        self._running: set[str] = set()
        self._again: set[str] = set()

    def ask(self, key: str) -> None:
        """Run a pass for ``key`` now, or once more after the one running."""
        if key in self._running:
            self._again.add(key)
            return
        self._running.add(key)
        self._spawn(self._run(key))

    async def _run(self, key: str) -> None:
        try:
            while True:
                self._again.discard(key)
                if not await self._work(key) or key not in self._again:
                    return
        except DatabaseError as exc:
            log.warning(self._failed, key, exc)
        finally:
            self._running.discard(key)


class ClusterLink:
    """The hub's link to the other nodes (module docstring). Event loop only."""

    def __init__(self, hub: SyncHub, bus: Bus) -> None:
        self.hub = hub
        self.bus = bus
        self.node_id = bus.node_id
        #: The highest log row integrated, per loaded document.
        self._read: dict[str, int] = {}
        #: The highest number this node committed, per loaded document.
        self._local: dict[str, int] = {}
        #: Changes this node submitted and not yet committed (or failed), per document.
        self._pending: dict[str, int] = {}
        #: Rows (changes, directory rewrites) this node submitted or settled, counted per
        #: document: a catch-up that saw this count move read too early to clear the room.
        self._writes: dict[str, int] = {}
        #: Documents a catch-up read past every row this node wrote (free to let go).
        self._clean: set[str] = set()
        #: Catch-ups of documents from the log (the next signal or resync tries again).
        self._catch_ups = _OneAtATime(self._catch_up_pass, self._spawn,
                                      "catching up %s from the log failed: %s")
        #: (doc_id, session_id) of other nodes' presence -> when last announced (monotonic).
        self._remote: dict[tuple[str, str], float] = {}
        #: Saves of sessions' subscriptions (coalesced per session).
        self._saves = _OneAtATime(self._save_pass, self._spawn, "saving session %s failed: %s")
        self._tasks: set[asyncio.Task[Any]] = set()
        self._last_refresh = self._last_expiry = time.monotonic()

    # -- tasks ------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _publish(self, event: BusEvent) -> None:
        async def send() -> None:
            try:
                await self.bus.publish(event)
            except BusError as exc:
                log.warning("could not tell the other nodes (%s): %s",
                            type(event).__name__, exc)

        self._spawn(send())

    async def close(self) -> None:
        """Wait for what is in flight (session saves, catch-ups)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- the bus handler ----------------------------------------------------------------

    def on_event(self, event: BusEvent) -> None:
        """An event from another node (idempotent)."""
        if isinstance(event, UpdatesCommitted):
            room = self.hub.rooms.get_loaded(event.doc_id)
            if room is not None and event.seq > self._read.get(event.doc_id, room.seq):
                self.catch_up(event.doc_id)
        elif isinstance(event, NotificationsCommitted):
            room = self.hub.rooms.get_loaded(event.doc_id)
            if room is not None and room.subscribers:
                self._spawn(self._relay_notifications(event))
        elif isinstance(event, PresenceSignal):
            self._remote_presence(event)
        elif isinstance(event, SessionMoved):
            self._let_go(event.session_id)

    def on_resync(self) -> None:
        """The listener (re)connected: every loaded room catches up; presence again."""
        for room in list(self.hub.rooms):
            self.catch_up(room.doc_id)
        self._announce_presence()

    # -- updates ------------------------------------------------------------------------

    def loaded(self, doc_id: str, seq: int) -> None:
        """A room was loaded from the log up to ``seq``."""
        self._read[doc_id] = seq

    def forgot(self, doc_id: str) -> None:
        """A room was evicted."""
        self._read.pop(doc_id, None)
        self._local.pop(doc_id, None)
        self._writes.pop(doc_id, None)
        self._clean.discard(doc_id)

    def may_let_go(self, doc_id: str) -> bool:
        """May the document's room be evicted? Not while this node has a row of it under
        way, nor, once it wrote one, before a catch-up has read the log past it (asked
        here): the catch-up integrates any change another node numbered before that row
        and writes the row again if it lacked it."""
        if self._pending.get(doc_id):
            return False
        if doc_id not in self._local or doc_id in self._clean:
            return True
        self.catch_up(doc_id)
        return False

    def submitted(self, doc_id: str) -> None:
        """This node submitted a change of a document to the writer."""
        self._pending[doc_id] = self._pending.get(doc_id, 0) + 1
        self._writes[doc_id] = self._writes.get(doc_id, 0) + 1
        self._clean.discard(doc_id)

    def settled(self, doc_id: str, seq: int | None) -> None:
        """A change (or directory rewrite) this node submitted was committed under ``seq``
        (its update number, or the rewrite's cursor; None: it failed)."""
        self._writes[doc_id] = self._writes.get(doc_id, 0) + 1
        left = self._pending.get(doc_id, 0) - 1
        if left > 0:
            self._pending[doc_id] = left
        else:
            self._pending.pop(doc_id, None)
        if seq is not None:
            self._local[doc_id] = max(self._local.get(doc_id, 0), seq)

    def catch_up(self, doc_id: str) -> None:
        """Read and integrate the document's log rows this node has not integrated."""
        self._catch_ups.ask(doc_id)

    async def _catch_up_pass(self, doc_id: str) -> bool:
        room = self.hub.rooms.get_loaded(doc_id)
        if room is None:
            return False
        writes = self._writes.get(doc_id, 0)
        entries = await self.hub.engine.updates_after(doc_id, self._read.get(doc_id, room.seq))
        if self.hub.rooms.get_loaded(doc_id) is not room:
            return False
        await self._integrate(room, entries)
        # Every row this node wrote had settled before the read, and every row numbered
        # below them was committed before them: all integrated now, unless one of this
        # node's rows was under way or settled meanwhile.
        if self._writes.get(doc_id, 0) == writes and not self._pending.get(doc_id):
            self._clean.add(doc_id)
        return True

    async def _integrate(self, room: Room, entries: list[LogEntry]) -> None:
        hub, doc_id = self.hub, room.doc_id
        touched = 0  # the highest row that changed the directory's view of the customer
        for entry in entries:
            self._read[doc_id] = max(self._read.get(doc_id, 0), entry.seq)
            room.seq = max(room.seq, entry.seq)
            hub.last_seq = max(hub.last_seq, entry.seq)
            try:
                change = room.apply_update(entry.data)
            except (InvalidUpdate, MissingDependencies) as exc:
                # The log holds what every node integrated: this room is out of step.
                log.error("log row %d of %s does not apply (%s); reloading the document",
                          entry.seq, doc_id, exc)
                hub.drop_room(room)
                return
            if change is None:
                continue  # written by this node (or already integrated): sent already
            frame = encode(RemoteUpdate(doc_id, entry.seq, entry.data, entry.author,
                                        entry.time))
            hub.stats["fanout_frames"] += room.broadcast(frame, exclude=entry.session_id)
            if room.yjs:
                hub.stats["fanout_frames"] += room.broadcast_yjs(
                    yjs.sync_update(entry.data), exclude=entry.session_id)
            if (change.fields or "meta" in change.roots
                    or NotificationKind.CREATED in change.kinds):
                touched = entry.seq
        if not touched:
            return
        # A row this node committed after ``touched``, or will commit (its number comes
        # later still), was computed without that change.
        if self._local.get(doc_id, 0) > touched or self._pending.get(doc_id, 0):
            await self._rewrite_directory(room)
        else:
            await self._post_directory(room)

    async def _rewrite_directory(self, room: Room) -> None:
        """This node's last row may lack what it just integrated: write it again."""
        row = self.hub.directory_row(room)
        # The rewrite is a row this node writes like any other: while it is under way, and
        # once it is stored under its cursor, a change integrated later that it lacks makes
        # this node write the row again (else a rewrite numbered after another node's
        # change, computed before that change arrived here, would win over it).
        self.submitted(room.doc_id)
        cursor = None
        try:
            cursor = (await self.hub.engine.submit(Commit(directory=row))).cursor
        except DatabaseError as exc:
            log.warning("rewriting the directory row of %s failed: %s", room.doc_id, exc)
            return
        finally:
            self.settled(room.doc_id, cursor)
        await self._post_directory(room)

    async def _post_directory(self, room: Room) -> None:
        row = await self.hub.engine.directory_row(customer_id_of(room.doc_id))
        if row is not None:
            self.hub.post_directory(
                room.doc_id, encode(DirectoryChanges((row.entry(),), row.cursor, False)))

    # -- notifications ------------------------------------------------------------------

    async def _relay_notifications(self, event: NotificationsCommitted) -> None:
        """Another node stored notifications of a document held here: read them by number
        and send them to its subscribers here (the writer's session is on that node)."""
        try:
            items = await self.hub.engine.notifications_since(
                event.first - 1, [event.doc_id], event.seq - event.first + 1)
        except DatabaseError as exc:  # still listed by ReadNotifications: nothing is lost
            log.warning("reading notifications of %s failed: %s", event.doc_id, exc)
            return
        room = self.hub.rooms.get_loaded(event.doc_id)
        if room is None:
            return
        for notification in items:
            if notification.seq <= event.seq:
                room.broadcast(encode(notification))

    # -- presence -----------------------------------------------------------------------

    def presence_changed(self, room: Room, session: Session,
                         state: PresenceState | None) -> None:
        """A local session's presence changed: tell the other nodes."""
        self._publish(PresenceSignal(self.node_id, room.doc_id, session.session_id,
                                     session.username, state))

    def _remote_presence(self, event: PresenceSignal) -> None:
        room = self.hub.rooms.get_loaded(event.doc_id)
        if room is None:
            return
        key = (event.doc_id, event.session_id)
        local = self.hub.sessions.get(event.session_id)
        if local is not None and local.connection is not None:
            return  # the session is here now; the other node's view is stale
        if event.state is None:
            self._remote.pop(key, None)
            if room.presence.pop(event.session_id, None) is not None:
                room.broadcast(encode(PresenceChanged(
                    room.doc_id, event.session_id, event.username, None)))
            return
        self._remote[key] = time.monotonic()
        current = room.presence.get(event.session_id)
        if current == (event.username, dict(event.state)):
            return
        room.presence[event.session_id] = (event.username, dict(event.state))
        room.broadcast(encode(PresenceChanged(room.doc_id, event.session_id, event.username,
                                              event.state)))

    def _announce_presence(self) -> None:
        for room in list(self.hub.rooms):
            for session_id, (username, state) in list(room.presence.items()):
                if (room.doc_id, session_id) not in self._remote:
                    self._publish(PresenceSignal(self.node_id, room.doc_id, session_id,
                                                 username, state))

    def _expire_presence(self, now: float) -> None:
        timeout = self.hub.config.idle_timeout
        for key, seen in list(self._remote.items()):
            if now - seen <= timeout:
                continue
            del self._remote[key]
            doc_id, session_id = key
            room = self.hub.rooms.get_loaded(doc_id)
            if room is not None and (gone := room.presence.pop(session_id, None)):
                room.broadcast(encode(PresenceChanged(doc_id, session_id, gone[0], None)))

    def is_remote(self, doc_id: str, session_id: str) -> bool:
        """Whether a presence entry is another node's."""
        return (doc_id, session_id) in self._remote

    # -- sessions -----------------------------------------------------------------------

    async def claim(self, session_id: str, claims: Claims) -> None:
        """Before a connection binds ``session_id``: take it over in the shared table, and
        make a session another node held resumable here (hub.attach then resumes it)."""
        hub = self.hub
        try:
            record = await hub.engine.claim_session(
                session_id, claims.username, self.node_id, now=time.time(),
                grace=hub.config.session_grace)
        except DatabaseError as exc:
            log.warning("the shared session %s could not be claimed: %s", session_id, exc)
            return
        if record.previous_node not in (None, self.node_id):
            self._publish(SessionMoved(self.node_id, session_id))
        local = hub.sessions.get(session_id)
        if record.resumed and local is None:
            hub.adopt(session_id, claims, record.subscriptions, record.directory)

    def session_changed(self, session: Session) -> None:
        """The session's subscriptions changed: save them (coalesced per session)."""
        self._saves.ask(session.session_id)

    async def _save_pass(self, session_id: str) -> bool:
        session = self.hub.sessions.get(session_id)
        if session is None:
            return False
        await self.hub.engine.save_session(
            session_id, sorted(session.subscriptions), session.directory, time.time())
        return True

    def detached(self, session: Session) -> None:
        """The session's connection dropped: its grace period starts in the table too."""
        async def detach() -> None:
            try:
                await self.hub.engine.detach_session(session.session_id, self.node_id,
                                                     time.time())
            except DatabaseError as exc:
                log.warning("detaching session %s failed: %s", session.session_id, exc)

        self._spawn(detach())

    def _let_go(self, session_id: str) -> None:
        """Another node resumed this session: close it here and forget it."""
        session = self.hub.sessions.get(session_id)
        if session is None:
            return
        connection = session.connection
        self.hub.forget_session(session)
        closer = getattr(connection, "close", None)
        if closer is not None:
            closer(CloseCode.SESSION_REPLACED, "this session reconnected elsewhere")

    # -- the sweeper --------------------------------------------------------------------

    def sweep(self, now: float) -> None:
        """Presence announcements and expiry, shared session expiry (app.py's sweeper)."""
        if now - self._last_refresh >= self.hub.config.idle_timeout / 3:
            self._last_refresh = now
            self._announce_presence()
        self._expire_presence(now)
        if now - self._last_expiry >= SESSION_EXPIRY_INTERVAL:
            self._last_expiry = now

            async def expire() -> None:
                try:
                    await self.hub.engine.expire_sessions(time.time(),
                                                          self.hub.config.session_grace)
                except DatabaseError as exc:
                    log.warning("expiring shared sessions failed: %s", exc)

            self._spawn(expire())
