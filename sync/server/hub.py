"""The hub: sessions, permissions and the one path every accepted change takes.

Both front doors, the WebSocket connections (``ws.py``) and the HTTP API
(``http_api.py``), hand changes to :meth:`SyncHub.accept_change`, which

1. where the storage engine numbers changes in memory (SQLite, see
   ``storage.base.Capabilities.numbers_at_commit``): assigns the next global sequence
   number;
2. queues the log entry, notifications and directory row for the group-commit writer
   (``Engine.submit_then``: one small callback object per change, no future), then, with
   numbers in memory, fans the update out at once to every other subscriber of the
   document, on /ws and on /yjs (echo suppression by session id, docs/protocol.md §5);
3. once durably committed: acks the writer, and sends the notifications and the
   directory change to those who follow them (their sequence numbers are then durable,
   so a replay "since N" never misses one). Where numbers are taken at commit
   (Postgres), the update itself is fanned out here too, with the number the commit
   took: nothing reaches anyone before it is committed.

The WebSocket paths (``/ws``, ``/yjs``) come in through :meth:`SyncHub.accept_change_then`,
which holds one session's plain edits of one document for the rest of the loop turn and
hands them to step 1 as one merged change (one row, one commit entry, one fan-out frame;
each ref acked with its number): see its docstring and docs/architecture.md.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pycrdt

from sync.protocol import schema, yjs
from sync.protocol.messages import (
    DirectoryChanges,
    Notification,
    NotificationKind,
    PresenceChanged,
    PresenceState,
    RemoteUpdate,
    customer_doc_id,
    customer_id_of,
    encode,
)

from .auth import AuthService, Claims, Role
from .cluster import ClusterLink
from .config import ServerConfig
from .errors import DatabaseError
from .rooms import Change, Room, RoomRegistry, Subscriber, in_table_order
from .storage.base import Committed, Engine
from .storage.records import Commit, DirectoryRow, LogEntry

__all__ = ["OnStored", "Session", "SyncHub", "can_access", "not_acked"]

log = logging.getLogger(__name__)

#: Write a snapshot of a document after this many logged updates since the last one.
SNAPSHOT_EVERY = 500
#: At most this many updates merged into one log row (pycrdt's merge_updates costs ~2.5 µs
#: an update up to ~128 merged, more beyond: measured in bench/update_budget.py).
MAX_BATCH = 64
#: Same actor, same fields, within this many seconds: one notification, not one per keystroke.
NOTIFICATION_COALESCE = 30.0


#: Wire bounds (docs/protocol.md §4): Notification.title and DirectoryEntry text fields.
MAX_TITLE = 512
MAX_DIRECTORY_TEXT = 1024


def _clip(text: str | None, limit: int) -> str | None:
    return text if text is None or len(text) <= limit else text[:limit]


def can_access(claims: Claims, doc_id: str) -> bool:
    """Least privilege: a rep reaches every customer, a customer user only its own."""
    if claims.role == Role.REP:
        return True
    return claims.customer_id is not None and doc_id == customer_doc_id(claims.customer_id)


@dataclass(eq=False, slots=True)
class Session:
    """A client instance (seed 001's SessionId): survives reconnects for a grace period.

    One per /ws client: ``slots`` keeps it small (issue 14, memory per connection)."""

    session_id: str
    claims: Claims
    subscriptions: set[str] = field(default_factory=set)
    directory: bool = False
    connection: Subscriber | None = None
    detached_at: float | None = None

    @property
    def username(self) -> str:
        """The account this session belongs to."""
        return self.claims.username


@dataclass(eq=False)
class _Coalesce:
    actor: str
    kinds: tuple[NotificationKind, ...]
    fields: tuple[str, ...]
    time: float


#: Called once a change is durable: (its number, None), or (None, why it was not stored).
OnStored = Callable[[int | None, BaseException | None], None]


def not_acked(_seq: int | None, _error: BaseException | None) -> None:
    """The ``OnStored`` of a change nobody is acked for (what did integrate of a refused
    update): a store that fails is logged by the hub itself."""


class _Acks:
    """The callbacks of a batch's updates, called in arrival order with the batch's number
    (one log row holds them all: each ref is acked with the number it was stored under)."""

    __slots__ = ("callbacks",)

    def __init__(self, callbacks: list[OnStored]) -> None:
        self.callbacks = callbacks

    def __call__(self, seq: int | None, error: BaseException | None) -> None:
        for callback in self.callbacks:
            callback(seq, error)


class _Resolve:
    """The ``OnStored`` of :meth:`SyncHub.accept_change`: settles its future, unless the
    waiter gave up and cancelled it."""

    __slots__ = ("future",)

    def __init__(self, future: asyncio.Future[int]) -> None:
        self.future = future

    def __call__(self, seq: int | None, error: BaseException | None) -> None:
        future = self.future
        if future.done():
            return
        if seq is None:
            future.set_exception(error or DatabaseError("the change was not stored"))
        else:
            future.set_result(seq)


class _Batch:
    """Changes of one document from one session integrated in the current loop turn, not
    yet handed to the engine (see :meth:`SyncHub.accept_change_then`)."""

    __slots__ = ("author", "callbacks", "changes", "room", "session_id")

    def __init__(self, room: Room, author: str, session_id: str | None) -> None:
        self.room = room
        self.author = author
        self.session_id = session_id
        self.changes: list[Change] = []
        self.callbacks: list[OnStored] = []


_UPDATED_ONLY = (NotificationKind.UPDATED,)


class _InFlight:
    """One submitted change until it is durable: what ``Engine.submit_then`` calls back
    (one small object per change instead of a closure, its cells and two futures)."""

    __slots__ = ("directory", "fanout", "hub", "on_stored", "room", "seq", "session_id")

    def __init__(
        self, hub: SyncHub, room: Room, *, directory: DirectoryRow | None,
        session_id: str | None, fanout: tuple[bytes, str, float, str | None, str | None] | None,
        seq: int, on_stored: OnStored,
    ) -> None:
        self.hub = hub
        self.room = room
        self.directory = directory
        self.session_id = session_id
        self.fanout = fanout
        self.seq = seq
        self.on_stored = on_stored

    def __call__(self, committed: Committed | None, error: BaseException | None) -> None:
        hub = self.hub
        committed = hub._after_commit(committed, self.room, self.directory, self.session_id,
                                      self.fanout)
        if hub.cluster is not None:
            hub.cluster.settled(self.room.doc_id, None if committed is None else committed.seq)
        seq = None
        if committed is not None:
            seq = self.seq if committed.seq is None else committed.seq
            if not hub.numbers_at_commit:
                # SQLite numbers at submit and commits in that order: everything numbered
                # up to here is durable, so a room it leaves idle may be evicted at once.
                # (Postgres moves room.seq only at commit, so a room with a commit in
                # flight would look durable: there the sweeper's barrier decides.)
                hub.rooms.durable_seq = max(hub.rooms.durable_seq, seq)
        else:
            error = error or DatabaseError("the change was not stored")
        self.on_stored(seq, error)


class SyncHub:
    """Shared state of one server process (event loop only, not thread-safe)."""

    def __init__(self, config: ServerConfig, engine: Engine, auth: AuthService) -> None:
        self.config = config
        self.engine = engine
        #: Where the engine numbers changes at commit: fan-out waits for the commit.
        self.numbers_at_commit = engine.capabilities.numbers_at_commit
        self.auth = auth
        #: The highest update number this node handed out (SQLite) or saw committed.
        self.last_seq = 0
        #: Per document: the changes of the current loop turn not yet submitted (one
        #: session's at a time; :meth:`flush` submits them, at the turn's end or first).
        self._batches: dict[str, _Batch] = {}
        self._flush_scheduled = False
        #: The link to the other nodes (cluster.py), where several serve one database.
        self.cluster: ClusterLink | None = None
        self.rooms = RoomRegistry(
            self._load, max_rooms=config.max_loaded_rooms, on_gone=self._forget,
            on_back=self._back, may_let_go=self._may_let_go,
        )
        self.sessions: dict[str, Session] = {}
        # Per-document state, kept while the document's room object lives (see _forget).
        self._last_notice: dict[str, _Coalesce] = {}
        #: Updates logged since the document's last snapshot (drives snapshot writing; after
        #: a reload, the rows logged since it: a lower bound, a row may hold several).
        self._since_snapshot: dict[str, int] = {}
        self.stats = {"updates": 0, "noop_updates": 0, "fanout_frames": 0, "batched_updates": 0}
        #: The directory columns' names, for the field table (object) they were read from.
        self._directory_names: tuple[tuple[schema.Field, ...], tuple[str, ...]] = ((), ())

    async def _load(self, doc_id: str) -> tuple[list[bytes], int, bool]:
        parts, seq = await self.engine.load_document(doc_id)
        # The log rows after the last snapshot, as this load read them (one more when a
        # snapshot came first): a document evicted and reloaded before SNAPSHOT_EVERY
        # updates does not start counting at 0 again, so its log since the last snapshot,
        # and the cost of loading it, stays bounded.
        if parts:
            self._since_snapshot[doc_id] = len(parts)
        if self.cluster is not None:
            self.cluster.loaded(doc_id, seq)
        return parts, seq, seq > 0

    def _back(self, doc_id: str) -> None:
        """An evicted room still referred to is in use again: other nodes' changes logged
        while it was evicted were integrated nowhere, so it reads them from the log."""
        if self.cluster is not None:
            self.cluster.catch_up(doc_id)

    def _may_let_go(self, doc_id: str) -> bool:
        """On several nodes, a room whose directory row this node wrote is kept until it
        has integrated every change numbered before that row (cluster.py)."""
        return self.cluster is None or self.cluster.may_let_go(doc_id)

    def _forget(self, doc_id: str) -> None:
        """The document's room was evicted and freed: drop its per-document state."""
        self._last_notice.pop(doc_id, None)
        self._since_snapshot.pop(doc_id, None)
        if self.cluster is not None:
            self.cluster.forgot(doc_id)

    # --- sessions -------------------------------------------------------------------------

    def attach(self, session_id: str, claims: Claims, connection: Subscriber) -> tuple[
        Session, bool, Subscriber | None
    ]:
        """Bind a connection to a session; resumes a known one of the same user.

        Returns the session, whether it was resumed, and the connection it replaced (which
        the caller closes) if the old one had not noticed its drop yet.
        """
        old = self.sessions.get(session_id)
        if old is not None and old.username == claims.username:
            replaced = old.connection
            # The account's role may have changed since: keep only what it may still see.
            for doc_id in [d for d in old.subscriptions if not can_access(claims, d)]:
                self.unsubscribe(old, doc_id)
            old.claims = claims
            old.connection = connection
            old.detached_at = None
            for doc_id in old.subscriptions:
                room = self.rooms.get_loaded(doc_id)
                if room is not None:
                    room.subscribers[session_id] = connection
            return old, True, replaced
        if old is not None and old.connection is not None:
            # Another user presents this session id: never hand over its subscriptions.
            self.detach(old)
        session = Session(session_id, claims, connection=connection)
        self.sessions[session_id] = session
        return session, False, None

    async def claim(self, session_id: str, claims: Claims) -> None:
        """Before :meth:`attach`, where several nodes serve the database: take the session
        over in the shared table, so that one another node held resumes here."""
        if self.cluster is not None:
            await self.cluster.claim(session_id, claims)

    def adopt(self, session_id: str, claims: Claims, subscriptions: Iterable[str],
              directory: bool) -> Session:
        """A session another node held, detached here until :meth:`attach` resumes it."""
        session = Session(session_id, claims, set(subscriptions), directory,
                          detached_at=time.monotonic())
        self.sessions[session_id] = session
        return session

    def forget_session(self, session: Session) -> None:
        """Stop delivering to a session and forget it (it lives on another node now)."""
        self.detach(session, shared=False)
        self.sessions.pop(session.session_id, None)

    def detach(self, session: Session, *, shared: bool = True) -> None:
        """The session's connection went away: stop delivering, drop presence, keep the
        subscriptions for ``session_grace`` seconds."""
        session.connection = None
        session.detached_at = time.monotonic()
        for doc_id in session.subscriptions:
            room = self.rooms.get_loaded(doc_id)
            if room is not None:
                room.subscribers.pop(session.session_id, None)
                self.set_presence(room, session, None)
        if shared and self.cluster is not None:
            self.cluster.detached(session)

    def expire_sessions(self, now: float | None = None) -> int:
        """Forget sessions detached for longer than the grace period; returns how many."""
        now = time.monotonic() if now is None else now
        expired = [
            s for s in self.sessions.values()
            if s.detached_at is not None and now - s.detached_at > self.config.session_grace
        ]
        for session in expired:
            del self.sessions[session.session_id]
        return len(expired)

    async def subscribe(self, session: Session, doc_id: str) -> Room:
        """Add the session to a document's room (permission checked by the caller)."""
        room = await self.rooms.get(doc_id)
        known = doc_id in session.subscriptions
        session.subscriptions.add(doc_id)
        if session.connection is not None:
            room.subscribers[session.session_id] = session.connection
        if not known:
            self.session_changed(session)
        return room

    def session_changed(self, session: Session) -> None:
        """The session's subscriptions or directory flag changed (saved where shared)."""
        if self.cluster is not None:
            self.cluster.session_changed(session)

    def unsubscribe(self, session: Session, doc_id: str) -> None:
        """Remove the session from a document's room and drop its presence there."""
        if doc_id in session.subscriptions:
            session.subscriptions.discard(doc_id)
            self.session_changed(session)
        room = self.rooms.get_loaded(doc_id)
        if room is not None:
            room.subscribers.pop(session.session_id, None)
            self.set_presence(room, session, None)

    def set_presence(self, room: Room, session: Session, state: PresenceState | None) -> None:
        """Record and relay a session's presence on a document (None: gone)."""
        had = session.session_id in room.presence
        if state is None:
            if not had:
                return
            del room.presence[session.session_id]
        else:
            room.presence[session.session_id] = (session.username, dict(state))
        frame = encode(PresenceChanged(room.doc_id, session.session_id, session.username, state))
        room.broadcast(frame, exclude=session.session_id)
        if self.cluster is not None:
            self.cluster.presence_changed(room, session, state)
        if had != (state is not None):
            kind = NotificationKind.JOINED if state is not None else NotificationKind.LEFT
            self._notify_only(room, session.username, kind)

    # --- changes --------------------------------------------------------------------------

    def accept_change(
        self, room: Room, change: Change, author: str, session_id: str | None
    ) -> tuple[int, asyncio.Future[int]]:
        """Log, fan out and notify one integrated change (see the module docstring).

        Returns the change's sequence number as known now (where numbers are taken at
        commit: the room's current one, a lower bound) and a future that resolves with the
        number the change was stored under once it is durable.
        """
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        return self._accept(room, change, author, session_id, _Resolve(done)), done

    def accept_change_then(
        self, room: Room, change: Change, author: str, session_id: str | None,
        on_stored: OnStored,
    ) -> None:
        """:meth:`accept_change` for the WebSocket hot path: ``on_stored(seq, None)`` is
        called once the change is durable (``on_stored(None, error)`` if it was not
        stored), with no future per change.

        Batching: the plain edits (kind ``updated``, nothing repaired) one session makes to
        one document within one loop turn are held and submitted together at the turn's end
        (or before anything else touches the document, or a write barrier): their updates
        merged by pycrdt into one, one log row, one commit entry, one fan-out frame, and
        each ``on_stored`` called in arrival order with that row's number. Each update was
        integrated (and checked, and refused where it had to be) on its own before it got
        here, so a refusal answers exactly as without batching.
        """
        if change.repaired or change.kinds != _UPDATED_ONLY:
            self._accept(room, change, author, session_id, on_stored)
            return
        doc_id = room.doc_id
        batch = self._batches.get(doc_id)
        if batch is not None and (batch.room is not room or batch.session_id != session_id
                                  or batch.author != author):
            self._submit_pending(doc_id)
            batch = None
        if batch is None:
            batch = self._batches[doc_id] = _Batch(room, author, session_id)
            if not self._flush_scheduled:
                self._flush_scheduled = True
                asyncio.get_running_loop().call_soon(self.flush)
        batch.changes.append(change)
        batch.callbacks.append(on_stored)
        if len(batch.changes) >= MAX_BATCH:
            self._submit_pending(doc_id)

    def flush(self) -> None:
        """Submit every pending batch (what a write barrier does first)."""
        self._flush_scheduled = False
        while self._batches:
            self._submit_pending(next(iter(self._batches)))

    def _submit_pending(self, doc_id: str) -> None:
        """Submit the document's pending batch, if any."""
        batch = self._batches.pop(doc_id, None)
        if batch is not None:
            self._submit(batch)

    def barrier(self) -> asyncio.Future[Committed]:
        """Resolves once everything accepted before it is committed: the pending batches
        are submitted first."""
        self.flush()
        return self.engine.barrier()

    def _submit(self, batch: _Batch) -> None:
        changes = batch.changes
        if len(changes) == 1:
            self._accept(batch.room, changes[0], batch.author, batch.session_id,
                         batch.callbacks[0])
            return
        merged = Change(  # in the order a single change has them (Room._change)
            pycrdt.merge_updates(*(change.update for change in changes)),
            in_table_order(dict.fromkeys(name for c in changes for name in c.fields)),
            tuple(sorted({root for change in changes for root in change.roots})),
            _UPDATED_ONLY,
            changes[-1].title,  # the name after the last change
        )
        self.stats["batched_updates"] += len(changes)
        self._accept(batch.room, merged, batch.author, batch.session_id,
                     _Acks(batch.callbacks), updates=len(changes))

    def _accept(
        self, room: Room, change: Change, author: str, session_id: str | None,
        on_stored: OnStored, *, updates: int = 1,
    ) -> int:
        self._submit_pending(room.doc_id)  # the log keeps the order of integration
        now = time.time()
        at_commit = self.numbers_at_commit
        seq = 0 if at_commit else self.engine.next_seq()
        stats = self.stats
        stats["updates"] += updates
        # A repaired change goes back to its writer too: its replica still holds the values
        # that were undone.
        writer = None if change.repaired else session_id
        if not at_commit:
            room.seq = self.last_seq = seq
        notifications = self._notifications(room, change, author, now)
        directory = None
        if change.fields or "meta" in change.roots or NotificationKind.CREATED in change.kinds:
            directory = self.directory_row(room, now, seq)
        snapshot = None
        # Counted in updates (a batch's row holds several); after a reload, in rows.
        count = self._since_snapshot.get(room.doc_id, 0) + updates
        if count >= SNAPSHOT_EVERY:
            snapshot = (room.doc_id, seq, room.doc.get_update())
            count = 0
        self._since_snapshot[room.doc_id] = count
        commit = Commit(
            entry=LogEntry(seq, room.doc_id, author, session_id, now, change.changes,
                           change.update),
            directory=directory,
            notifications=notifications,
            expires_at=now + self.config.notification_ttl,
            snapshot=snapshot,
        )
        cluster = self.cluster
        if cluster is not None:
            cluster.submitted(room.doc_id)
        self.engine.submit_then(commit, _InFlight(
            self, room, directory=directory, session_id=session_id,
            fanout=(change.update, author, now, writer, session_id) if at_commit else None,
            seq=seq, on_stored=on_stored,
        ))
        if not at_commit:
            # After the submit: the writer thread starts on the commit (its fsync releases
            # the GIL) while this fans out, so the writer's ack or echo comes sooner.
            self._fan_out(room, change.update, author, now, seq, writer=writer,
                          session_id=session_id)
        return room.seq if at_commit else seq

    def _fan_out(self, room: Room, update: bytes, author: str, now: float, seq: int, *,
                 writer: str | None, session_id: str | None) -> None:
        """Send an update to the room's other subscribers: each frame encoded once per
        room, and only when someone will receive it."""
        subscribers = room.subscribers
        if len(subscribers) > (writer in subscribers):
            frame = encode(RemoteUpdate(room.doc_id, seq, update, author, now))
            self.stats["fanout_frames"] += room.broadcast(frame, exclude=writer)
        if len(room.yjs) > (session_id in room.yjs):
            self.stats["fanout_frames"] += room.broadcast_yjs(
                yjs.sync_update(update), exclude=session_id
            )

    def durable(self, room: Room) -> asyncio.Future[int]:
        """A future of the room's sequence number once everything submitted so far is
        committed (what an update that changed nothing is acked with)."""
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.flush()
        mark = room.seq

        def settle(stored: asyncio.Future[Committed]) -> None:
            if done.done():
                return
            if stored.cancelled():
                done.cancel()
            elif (error := stored.exception()) is not None:
                done.set_exception(error)
            else:
                done.set_result(max(mark, room.seq) if self.numbers_at_commit else mark)

        self.engine.barrier().add_done_callback(settle)
        return done

    def _notifications(
        self, room: Room, change: Change, author: str, now: float
    ) -> list[Notification]:
        last = self._last_notice.get(room.doc_id)
        if (
            last is not None and last.actor == author and last.kinds == change.kinds
            and last.fields == change.fields and now - last.time < NOTIFICATION_COALESCE
            and change.kinds == (NotificationKind.UPDATED,)
        ):
            last.time = now
            return []
        self._last_notice[room.doc_id] = _Coalesce(author, change.kinds, change.fields, now)
        fields = change.fields or tuple(r for r in change.roots if r not in {"fields", "meta"})
        return [
            Notification(
                self._notification_seq(), room.doc_id, kind, author, now, fields,
                _clip(change.title, MAX_TITLE),
            )
            for kind in change.kinds
        ]

    def _notify_only(self, room: Room, actor: str, kind: NotificationKind) -> None:
        """A notification with no document change (joined / left)."""
        now = time.time()
        title = _clip(room.name, MAX_TITLE)
        notification = Notification(
            self._notification_seq(), room.doc_id, kind, actor, now, (), title
        )

        def stored(committed: Committed | None, _error: BaseException | None) -> None:
            self._after_commit(committed, room, None, None, None)

        self.engine.submit_then(
            Commit(notifications=[notification], expires_at=now + self.config.notification_ttl),
            stored,
        )

    def _notification_seq(self) -> int:
        """The next notification number, or a placeholder where the commit numbers them."""
        return 0 if self.numbers_at_commit else self.engine.next_notification_seq()

    def directory_row(self, room: Room, now: float | None = None, seq: int = 0) -> DirectoryRow:
        """The customer's directory row as the room's document has it now."""
        now = time.time() if now is None else now
        # A peer's raw CRDT update can hold any text; clip to the wire bounds of
        # DirectoryEntry, or every directory follower would get a frame it must refuse.
        # The room keeps the fields' values in step with each change (Room.field_values):
        # reading the whole fields map per change profiled at ~12 µs.
        current = room.field_values()
        table = schema.fields()
        if self._directory_names[0] is not table:  # read from the table it is now
            self._directory_names = (table, tuple(f.name for f in schema.directory_fields()))
        values = {}
        for name in self._directory_names[1]:
            values[name] = _clip(current.get(name), MAX_DIRECTORY_TEXT)
        # Already the directory columns in table order: what DirectoryRow.of would pick.
        return DirectoryRow(customer_id_of(room.doc_id), values, now, room.deleted, seq)

    def _after_commit(
        self, committed: Committed | None, room: Room, directory: DirectoryRow | None,
        writer_session: str | None,
        fanout: tuple[bytes, str, float, str | None, str | None] | None,
    ) -> Committed | None:
        """Deliver what waited for the commit (``committed`` None: the change was not
        stored; then the room is dropped); returns ``committed``."""
        if committed is None:
            log.error("change to %s was not stored; reloading the room", room.doc_id)
            self.drop_room(room)
            return None
        if fanout is not None and committed.seq is not None:
            update, author, now, writer, session_id = fanout
            seq = committed.seq
            room.seq = max(room.seq, seq)
            self.last_seq = max(self.last_seq, seq)
            self._fan_out(room, update, author, now, seq, writer=writer, session_id=session_id)
        for notification in committed.notifications:
            room.broadcast(encode(notification), exclude=writer_session)
        if directory is not None:
            followers = self._directory_followers(room.doc_id)
            if followers:  # encoded only when someone follows the directory
                if committed.cursor is not None and directory.cursor != committed.cursor:
                    directory = dataclasses.replace(directory, cursor=committed.cursor)
                frame = encode(DirectoryChanges((directory.entry(),), directory.cursor, False))
                for connection in followers:
                    connection.post(frame)
        return committed

    def _directory_followers(self, doc_id: str) -> list[Subscriber]:
        """The connections of directory followers that may see ``doc_id``."""
        return [
            session.connection for session in self.sessions.values()
            if session.directory and session.connection is not None
            and can_access(session.claims, doc_id)
        ]

    def post_directory(self, doc_id: str, frame: bytes) -> None:
        """Send a DirectoryChanges frame about ``doc_id`` to every directory follower that
        may see it."""
        for connection in self._directory_followers(doc_id):
            connection.post(frame)

    def drop_room(self, room: Room) -> None:
        """A write failed: the in-memory document is ahead of the disk. Forget it, and close
        its subscribers so they resync against what is really stored."""
        self.rooms.evict(room.doc_id)
        for subscriber in [*room.subscribers.values(), *room.yjs.values()]:
            closer: Callable[[], Any] | None = getattr(subscriber, "close_for_resync", None)
            if closer is not None:
                closer()
