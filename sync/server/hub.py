"""The hub: sessions, permissions and the one path every accepted change takes.

Both front doors, the WebSocket connections (``ws.py``) and the HTTP API
(``http_api.py``), hand changes to :meth:`SyncHub.accept_change`, which

1. where the storage engine numbers changes in memory (SQLite, see
   ``storage.base.Capabilities.numbers_at_commit``): assigns the next global sequence
   number and fans the update out at once to every other subscriber of the document, on
   /ws and on /yjs (echo suppression by session id, docs/protocol.md §5);
2. queues the log entry, notifications and directory row for the group-commit writer;
3. once durably committed: acks the writer, and sends the notifications and the
   directory change to those who follow them (their sequence numbers are then durable,
   so a replay "since N" never misses one). Where numbers are taken at commit
   (Postgres), the update itself is fanned out here too, with the number the commit
   took: nothing reaches anyone before it is committed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sync.protocol import document, schema, yjs
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
from .rooms import Change, Room, RoomRegistry, Subscriber
from .storage.base import Committed, Engine
from .storage.records import Commit, DirectoryRow, LogEntry

__all__ = ["Session", "SyncHub", "can_access"]

log = logging.getLogger(__name__)

#: Write a snapshot of a document after this many logged updates since the last one.
SNAPSHOT_EVERY = 500
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


@dataclass(eq=False)
class Session:
    """A client instance (seed 001's SessionId): survives reconnects for a grace period."""

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
        #: The link to the other nodes (cluster.py), where several serve one database.
        self.cluster: ClusterLink | None = None
        self.rooms = RoomRegistry(
            self._load, max_rooms=config.max_loaded_rooms, on_gone=self._forget
        )
        self.sessions: dict[str, Session] = {}
        # Per-document state, kept while the document's room object lives (see _forget).
        self._last_notice: dict[str, _Coalesce] = {}
        #: Updates logged since the document's last snapshot (drives snapshot writing).
        self._since_snapshot: dict[str, int] = {}
        self.stats = {"updates": 0, "noop_updates": 0, "fanout_frames": 0}

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
        now = time.time()
        at_commit = self.numbers_at_commit
        seq = 0 if at_commit else self.engine.next_seq()
        self.stats["updates"] += 1
        # A repaired change goes back to its writer too: its replica still holds the values
        # that were undone.
        writer = None if change.repaired else session_id
        if not at_commit:
            room.seq = self.last_seq = seq
            frame = encode(RemoteUpdate(room.doc_id, seq, change.update, author, now))
            self.stats["fanout_frames"] += room.broadcast(frame, exclude=writer)
            if room.yjs:
                self.stats["fanout_frames"] += room.broadcast_yjs(
                    yjs.sync_update(change.update), exclude=session_id
                )
        notifications = self._notifications(room, change, author, now)
        directory = None
        if change.fields or "meta" in change.roots or NotificationKind.CREATED in change.kinds:
            directory = self.directory_row(room, now, seq)
        snapshot = None
        count = self._since_snapshot.get(room.doc_id, 0) + 1
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
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        fanout = (change.update, author, now, writer, session_id) if at_commit else None

        cluster = self.cluster
        if cluster is not None:
            cluster.submitted(room.doc_id)

        def settle(stored: asyncio.Future[Committed]) -> None:
            committed = self._after_commit(stored, room, directory, session_id, fanout)
            if cluster is not None:
                cluster.settled(room.doc_id, None if committed is None else committed.seq)
            if done.done():
                return
            if stored.cancelled():
                done.cancel()
            elif committed is None:
                done.set_exception(stored.exception() or DatabaseError("not stored"))
            else:
                done.set_result(seq if committed.seq is None else committed.seq)

        self.engine.submit(commit).add_done_callback(settle)
        return (room.seq if at_commit else seq), done

    def durable(self, room: Room) -> asyncio.Future[int]:
        """A future of the room's sequence number once everything submitted so far is
        committed (what an update that changed nothing is acked with)."""
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
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
        future = self.engine.submit(
            Commit(notifications=[notification], expires_at=now + self.config.notification_ttl)
        )
        future.add_done_callback(lambda f: self._after_commit(f, room, None, None, None))

    def _notification_seq(self) -> int:
        """The next notification number, or a placeholder where the commit numbers them."""
        return 0 if self.numbers_at_commit else self.engine.next_notification_seq()

    def directory_row(self, room: Room, now: float | None = None, seq: int = 0) -> DirectoryRow:
        """The customer's directory row as the room's document has it now."""
        now = time.time() if now is None else now
        # A peer's raw CRDT update can hold any text; clip to the wire bounds of
        # DirectoryEntry, or every directory follower would get a frame it must refuse.
        # One read of the fields map: per-column read_field calls open one pycrdt
        # transaction each, which profiled as the largest new cost per accepted update.
        current = document.read_fields(room.doc)
        values = {
            f.name: _clip(current.get(f.name), MAX_DIRECTORY_TEXT)
            for f in schema.directory_fields()
        }
        return DirectoryRow.of(
            customer_id_of(room.doc_id), values, updated_at=now, deleted=room.deleted,
            cursor=seq,
        )

    def _after_commit(
        self, future: asyncio.Future[Committed], room: Room, directory: DirectoryRow | None,
        writer_session: str | None,
        fanout: tuple[bytes, str, float, str | None, str | None] | None,
    ) -> Committed | None:
        """Deliver what waited for the commit; None if the change was not stored."""
        if future.cancelled() or future.exception() is not None:
            log.error("change to %s was not stored; reloading the room", room.doc_id)
            self.drop_room(room)
            return None
        committed = future.result()
        if fanout is not None and committed.seq is not None:
            update, author, now, writer, session_id = fanout
            seq = committed.seq
            room.seq = max(room.seq, seq)
            self.last_seq = max(self.last_seq, seq)
            frame = encode(RemoteUpdate(room.doc_id, seq, update, author, now))
            self.stats["fanout_frames"] += room.broadcast(frame, exclude=writer)
            if room.yjs:
                self.stats["fanout_frames"] += room.broadcast_yjs(
                    yjs.sync_update(update), exclude=session_id
                )
        for notification in committed.notifications:
            room.broadcast(encode(notification), exclude=writer_session)
        if directory is not None:
            if committed.seq is not None and directory.cursor != committed.seq:
                directory = dataclasses.replace(directory, cursor=committed.seq)
            frame = encode(DirectoryChanges((directory.entry(),), directory.cursor, False))
            self.post_directory(room.doc_id, frame)
        return committed

    def post_directory(self, doc_id: str, frame: bytes) -> None:
        """Send a DirectoryChanges frame about ``doc_id`` to every directory follower that
        may see it."""
        for session in self.sessions.values():
            if session.directory and session.connection is not None and can_access(
                session.claims, doc_id
            ):
                session.connection.post(frame)

    def drop_room(self, room: Room) -> None:
        """A write failed: the in-memory document is ahead of the disk. Forget it, and close
        its subscribers so they resync against what is really stored."""
        self.rooms.evict(room.doc_id)
        for subscriber in [*room.subscribers.values(), *room.yjs.values()]:
            closer: Callable[[], Any] | None = getattr(subscriber, "close_for_resync", None)
            if closer is not None:
                closer()
