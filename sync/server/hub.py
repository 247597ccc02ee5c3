"""The hub: sessions, permissions and the one path every accepted change takes.

Both front doors, the WebSocket connections (``ws.py``) and the HTTP API
(``http_api.py``), hand changes to :meth:`SyncHub.accept_change`, which

1. assigns the next global sequence number and fans the update out at once to every
   other subscriber of the document, on /ws and on /yjs (echo suppression by session id,
   docs/protocol.md §5);
2. queues the log entry, notifications and directory row for the group-commit writer;
3. once durably committed: acks the writer, and sends the notifications and the
   directory change to those who follow them (their sequence numbers are then durable,
   so a replay "since N" never misses one).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sync.protocol import document, yjs
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
from .config import ServerConfig
from .rooms import Change, Room, RoomRegistry, Subscriber
from .store import Commit, DirectoryRow, LogEntry, UpdateStore

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

    def __init__(self, config: ServerConfig, store: UpdateStore, auth: AuthService) -> None:
        self.config = config
        self.store = store
        self.auth = auth
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
        parts, seq = await asyncio.to_thread(self.store.load_document, doc_id)
        # The log rows after the last snapshot, as this load read them (one more when a
        # snapshot came first): a document evicted and reloaded before SNAPSHOT_EVERY
        # updates does not start counting at 0 again, so its log since the last snapshot,
        # and the cost of loading it, stays bounded.
        if parts:
            self._since_snapshot[doc_id] = len(parts)
        return parts, seq, seq > 0

    def _forget(self, doc_id: str) -> None:
        """The document's room was evicted and freed: drop its per-document state."""
        self._last_notice.pop(doc_id, None)
        self._since_snapshot.pop(doc_id, None)

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

    def detach(self, session: Session) -> None:
        """The session's connection went away: stop delivering, drop presence, keep the
        subscriptions for ``session_grace`` seconds."""
        session.connection = None
        session.detached_at = time.monotonic()
        for doc_id in session.subscriptions:
            room = self.rooms.get_loaded(doc_id)
            if room is not None:
                room.subscribers.pop(session.session_id, None)
                self.set_presence(room, session, None)

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
        session.subscriptions.add(doc_id)
        if session.connection is not None:
            room.subscribers[session.session_id] = session.connection
        return room

    def unsubscribe(self, session: Session, doc_id: str) -> None:
        """Remove the session from a document's room and drop its presence there."""
        session.subscriptions.discard(doc_id)
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
        if had != (state is not None):
            kind = NotificationKind.JOINED if state is not None else NotificationKind.LEFT
            self._notify_only(room, session.username, kind)

    # --- changes --------------------------------------------------------------------------

    def accept_change(
        self, room: Room, change: Change, author: str, session_id: str | None
    ) -> tuple[int, asyncio.Future[None]]:
        """Log, fan out and notify one integrated change (see the module docstring).

        Returns the change's sequence number and a future that resolves when it is durable.
        """
        now = time.time()
        seq = self.store.next_seq()
        room.seq = seq
        self.stats["updates"] += 1
        frame = encode(RemoteUpdate(room.doc_id, seq, change.update, author, now))
        # A repaired change goes back to its writer too: its replica still holds the values
        # that were undone.
        writer = None if change.repaired else session_id
        self.stats["fanout_frames"] += room.broadcast(frame, exclude=writer)
        if room.yjs:
            self.stats["fanout_frames"] += room.broadcast_yjs(
                yjs.sync_update(change.update), exclude=session_id
            )
        notifications = self._notifications(room, change, author, now)
        directory = None
        if change.fields or "meta" in change.roots or NotificationKind.CREATED in change.kinds:
            directory = self._directory_row(room, now, seq)
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
        future = self.store.submit(commit)
        future.add_done_callback(
            lambda f: self._after_commit(f, room, notifications, directory, session_id)
        )
        return seq, future

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
                self.store.next_notification_seq(), room.doc_id, kind, author, now, fields,
                _clip(change.title, MAX_TITLE),
            )
            for kind in change.kinds
        ]

    def _notify_only(self, room: Room, actor: str, kind: NotificationKind) -> None:
        """A notification with no document change (joined / left)."""
        now = time.time()
        title = _clip(room.name, MAX_TITLE)
        notification = Notification(
            self.store.next_notification_seq(), room.doc_id, kind, actor, now, (), title
        )
        future = self.store.submit(
            Commit(notifications=[notification], expires_at=now + self.config.notification_ttl)
        )
        future.add_done_callback(lambda f: self._after_commit(f, room, [notification], None, None))

    def _directory_row(self, room: Room, now: float, seq: int) -> DirectoryRow:
        # A peer's raw CRDT update can hold any text; clip to the wire bounds of
        # DirectoryEntry, or every directory follower would get a frame it must refuse.
        values = {
            k: _clip(v, MAX_DIRECTORY_TEXT) for k, v in document.read_fields(room.doc).items()
        }
        return DirectoryRow(
            customer_id=customer_id_of(room.doc_id), name=values["name"], email=values["email"],
            phone=values["phone"], street1=values["street1"], street2=values["street2"],
            city=values["city"], state=values["state"], zip=values["zip"], tier=values["tier"],
            updated_at=now, deleted=room.deleted, cursor=seq,
        )

    def _after_commit(
        self, future: asyncio.Future[None], room: Room, notifications: Iterable[Notification],
        directory: DirectoryRow | None, writer_session: str | None,
    ) -> None:
        if future.cancelled() or future.exception() is not None:
            log.error("change to %s was not stored; reloading the room", room.doc_id)
            self._drop_room(room)
            return
        for notification in notifications:
            room.broadcast(encode(notification), exclude=writer_session)
        if directory is not None:
            frame = encode(DirectoryChanges((directory.entry(),), directory.cursor, False))
            doc_id = room.doc_id
            for session in self.sessions.values():
                if session.directory and session.connection is not None and can_access(
                    session.claims, doc_id
                ):
                    session.connection.post(frame)

    def _drop_room(self, room: Room) -> None:
        """A write failed: the in-memory document is ahead of the disk. Forget it, and close
        its subscribers so they resync against what is really stored."""
        self.rooms.evict(room.doc_id)
        for subscriber in [*room.subscribers.values(), *room.yjs.values()]:
            closer: Callable[[], Any] | None = getattr(subscriber, "close_for_resync", None)
            if closer is not None:
                closer()
