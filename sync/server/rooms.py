"""Rooms: one loaded customer document, its subscribers and their presence.

A :class:`Room` holds the server's pycrdt copy of a document. Every change (a client's
update or a server-side edit from the HTTP API) goes through :meth:`Room.apply_update` or
:meth:`Room.edit`, which report what the change did as a :class:`Change`: the integrated
update bytes (what gets logged and fanned out), which fields changed, and the notification
kinds. Loading is lazy and happens once even when many clients ask at the same instant
(:class:`RoomRegistry`), and a room nobody uses is evicted again (idle timeout, LRU cap).

An update that builds on changes the document lacks is refused: pycrdt would keep such
parts pending in the document, in memory, without bound (:mod:`sync.server.update_deps`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from pycrdt import Doc, get_update

from sync.protocol import document, schema
from sync.protocol.messages import NotificationKind, PresenceState
from sync.protocol.schema import Role
from sync.protocol.yjs import AwarenessEntry

from .update_deps import (
    UpdateFormatError,
    integrate_state,
    left_pending,
    one_contiguous_client,
    read_state_vector,
)
from .write_rules import check_writable, writes_everything

__all__ = [
    "Change", "InvalidUpdate", "MissingDependencies", "Room", "RoomRegistry", "Subscriber",
    "in_table_order",
]

log = logging.getLogger(__name__)


class InvalidUpdate(Exception):
    """The update bytes are not a valid pycrdt/Yjs update.

    ``partial`` is not None when pycrdt integrated part of the update before it failed
    (yrs can: e.g. a block whose parent is not a shared type). That part is in the
    document now and must be logged and fanned out like any change, or memory and the
    log would disagree.
    """

    def __init__(self, message: str, partial: Change | None = None) -> None:
        super().__init__(message)
        self.partial = partial


class MissingDependencies(Exception):
    """The update builds on changes the server does not have; the client must resync.

    ``partial`` is not None when pycrdt integrated the rest of the update: like
    InvalidUpdate's, that part is in the document and must be logged and fanned out.
    """

    def __init__(self, message: str, partial: Change | None = None) -> None:
        super().__init__(message)
        self.partial = partial


#: After an update left something pending in a document, every update to it is checked
#: before it is applied, for this many seconds (see Room.apply_update).
STRICT_AFTER_GAP = 60.0
_MISSING = "this update builds on changes the server does not have; resync the document"
#: An update v1 with no structs and no deletions.
_EMPTY_UPDATE = b"\x00\x00"


class Subscriber(Protocol):
    """What a room needs of a subscribed connection."""

    @property
    def session_id(self) -> str:
        """The session this connection serves."""

    @property
    def username(self) -> str:
        """The authenticated user."""

    def post(self, frame: bytes) -> None:
        """Queue one encoded frame to this connection without waiting."""


@dataclass(frozen=True, slots=True)
class Change:
    """What one integrated update did to a document."""

    update: bytes
    fields: tuple[str, ...]
    roots: tuple[str, ...]
    kinds: tuple[NotificationKind, ...]
    title: str | None
    #: Fields whose value broke the field rules and was undone inside this change (see
    #: document.repair_fields): the writer must get the change back too.
    repaired: tuple[str, ...] = ()

    @property
    def changes(self) -> tuple[str, ...]:
        """Field names and other root names touched, for history (``notes``, ``tasks`` …)."""
        return self.fields + tuple(r for r in self.roots if r != "fields")


@dataclass(eq=False)
class Room:
    """One customer document in memory, with its subscribers and presence."""

    doc_id: str
    doc: Doc[Any]
    seq: int
    exists: bool
    subscribers: dict[str, Subscriber] = field(default_factory=dict)
    presence: dict[str, tuple[str, PresenceState]] = field(default_factory=dict)
    #: Connections of the Yjs endpoint (yjs.py) by fan-out key, and their awareness states
    #: by Yjs client id.
    yjs: dict[str, Subscriber] = field(default_factory=dict)
    yjs_awareness: dict[int, AwarenessEntry] = field(default_factory=dict)
    #: The tombstone flag, kept in step with ``meta`` (read only when meta changes).
    deleted: bool = field(init=False)
    #: The customer's name (notification titles), kept in step with ``fields``.
    name: str | None = field(init=False)
    #: time.monotonic() of the last use, for eviction (RoomRegistry).
    last_used: float = 0.0
    #: Until then (time.monotonic()) every update is checked before it is applied.
    strict_until: float = 0.0
    _deleted_before: bool = False
    #: Created on the first change (a room only read never observes its document), dropped
    #: by release().
    _tracker: document.ChangeTracker | None = field(default=None, init=False)
    #: The fields as document.read_fields reads them, kept in step with the tracked key
    #: events (None: read afresh on next use), and the field table they were read under.
    _fields: dict[str, str | None] | None = field(default=None, init=False, repr=False)
    _fields_table: tuple[schema.Field, ...] = field(default=(), init=False, repr=False)

    def __post_init__(self) -> None:
        self.deleted = document.is_deleted(self.doc)
        self.name = document.read_field(self.doc, "name")

    def field_values(self) -> Mapping[str, str | None]:
        """Every field's value, as :func:`document.read_fields` reads them (read only).

        Read from the document once, then kept in step with each change's key events, so
        the directory row of a change costs no read of the whole fields map.
        """
        table = schema.fields()
        values = self._fields
        if values is None or self._fields_table is not table:
            values = self._fields = document.read_fields(self.doc)
            self._fields_table = table
        return values

    @property
    def busy(self) -> bool:
        """Someone is on the document: a subscriber, a Yjs connection, presence."""
        return bool(self.subscribers or self.yjs or self.presence or self.yjs_awareness)

    def release(self) -> None:
        """Stop observing the document, so that it can be freed once nobody refers to it.

        pycrdt keeps each observer callback, which refers to the Doc, inside the Rust
        document: a cycle Python's collector cannot see. Without this an evicted room is
        never freed (measured: about 22 KiB per small document). A later change observes
        afresh (see _track), so a request still holding the room loses nothing.
        """
        tracker, self._tracker = self._tracker, None
        if tracker is not None:
            tracker.close()

    def _track(self) -> document.ChangeTracker:
        """Start recording the document's changes afresh (read back by :meth:`_change`)."""
        tracker = self._tracker
        if tracker is None:
            tracker = self._tracker = document.ChangeTracker(self.doc)
        tracker.reset()
        self._deleted_before = self.deleted
        return tracker

    def _change(self) -> Change | None:
        assert self._tracker is not None  # only called after _track()
        update = self._tracker.update
        if update is None or update == _EMPTY_UPDATE:
            # pycrdt reports an empty update when all it did was keep something pending.
            return None
        roots = self._tracker.roots
        kinds: list[NotificationKind] = []
        if "meta" in roots:
            self.deleted = document.is_deleted(self.doc)
        deleted = self.deleted
        if not self.exists:
            kinds.append(NotificationKind.CREATED)
        elif deleted and not self._deleted_before:
            kinds.append(NotificationKind.DELETED)
        elif self._deleted_before and not deleted:
            kinds.append(NotificationKind.RESTORED)
        if "comments" in roots:
            kinds.append(NotificationKind.COMMENTED)
        if (roots - {"comments", "meta"}) and NotificationKind.CREATED not in kinds:
            kinds.append(NotificationKind.UPDATED)
        if not kinds:
            kinds.append(NotificationKind.UPDATED)
        self.exists = True
        changed = self._tracker.fields
        field_names = in_table_order(changed) if changed else ()
        values = self._fields
        if changed and values is not None:
            for key, key_change in changed.items():
                value = key_change.get("newValue")  # the key's current value (None: gone)
                if value is not None and not isinstance(value, str):
                    self._fields = None  # not text: read_fields' conversion next time
                    break
                if key in values:
                    values[key] = value
        name = changed.get("name")
        if name is not None:
            # The key event's newValue is the key's current value (no read transaction);
            # anything but text (a deletion, a peer's odd value) is read as read_field does.
            value = name.get("newValue")
            self.name = value if isinstance(value, str) else document.read_field(self.doc, "name")
        return Change(update, field_names, tuple(sorted(roots)), tuple(kinds), self.name)

    def apply_update(
        self, update: bytes, *, writer: Role | None = None, repair: bool = False,
    ) -> Change | None:
        """Integrate a peer's update; None when it added nothing new.

        ``writer`` (the author's role) enforces the field table's write rules for a role
        that may not write everything: an update changing what it may not write raises
        WriteRefused, nothing of it integrated; with ``repair`` (a Yjs peer, which cannot
        be told "no") forbidden *field* values are undone inside the change instead, as
        values that break the field rules are, and only other parts refuse it.

        Raises InvalidUpdate for bytes pycrdt cannot decode, MissingDependencies when the
        update needs changes this server lacks: the peer resyncs and sends what is missing
        with it. Nothing of such an update may stay in the document: pycrdt keeps what it
        cannot place *pending* inside it, in memory and unbounded, and past a gap in a
        client's own sequence it may even integrate structs its state vector does not
        count (seen with yrs 0.28). So:

        - a live edit (one client's structs, no gap in its sequence: a cheap check) is
          applied, then pycrdt is asked whether anything was left pending. If so, the
          document is rebuilt without it, what did integrate is reported as ``partial``
          (logged and fanned out by the caller), and the room turns strict for a while;
        - anything else, and every update of a strict room, is checked before it is
          applied (update_deps.integrate_state replays pycrdt's integration against the
          state vector) and refused whole when something would wait: nothing of it is
          integrated, and a peer sending gap after gap costs no rebuild each.
        """
        if writer is not None and writes_everything(writer):
            writer = None  # nothing to check (reps: the usual case, the hot path)
        if writer is not None:
            check_writable(self.doc, update, writer, fields_too=not repair)
        before = self.doc.get_state()
        if self.strict_until > time.monotonic() or not one_contiguous_client(update, before):
            try:
                changes = integrate_state(update, read_state_vector(before))
            except UpdateFormatError as exc:
                raise InvalidUpdate(f"not a valid document update: {exc}") from exc
            if changes is None:
                raise MissingDependencies(_MISSING)
        tracker = self._track()
        try:
            self.doc.apply_update(update)
        except ValueError as exc:
            raise InvalidUpdate(f"not a valid document update: {exc}") from exc
        except RuntimeError as exc:
            # yrs may have integrated a part before failing: report it (see InvalidUpdate).
            self._fields = None  # and read the fields afresh after such a failure
            raise InvalidUpdate(
                f"not a valid document update: {exc}", partial=self._change()
            ) from exc
        repaired = document.repair_fields(self.doc, tracker.fields, writer=writer) if (
            tracker.fields) else {}
        change = self._change()
        if repaired and change is not None:
            log.warning("%s: undid field values that break the rules: %s", self.doc_id,
                        "; ".join(repaired.values()))
            change = replace(change, repaired=tuple(sorted(repaired)))
        # Integrated exactly as sent (the usual case) proves that nothing waits.
        if (change is None or change.update != update) and self._left_pending(update):
            partial = self._integrated_since(before, change)
            self._purge()
            self.strict_until = time.monotonic() + STRICT_AFTER_GAP
            raise MissingDependencies(_MISSING, partial=partial)
        return change

    def _integrated_since(self, before: bytes, change: Change | None) -> Change | None:
        """What an update that left something pending did integrate, exactly.

        pycrdt's transaction event can leave out structs it integrated after setting others
        aside (seen: a three-client update whose event covered 24 and 25 of the 26 and 35
        clocks integrated), so the document's own diff from ``before`` is taken instead.
        """
        if change is None and self.doc.get_state() == before:
            return None
        integrated = self.doc.get_update(before)
        self._fields = None  # the events may have missed changes: read afresh
        # The event may have missed changes to these too: read them afresh.
        self.name = document.read_field(self.doc, "name")
        self.deleted = document.is_deleted(self.doc)
        if change is None:
            self.exists = True
            return Change(integrated, (), (), (NotificationKind.UPDATED,), self.name)
        return replace(change, update=integrated, title=self.name)

    def _left_pending(self, update: bytes) -> bool:
        """Did pycrdt keep part of the update (just applied) pending in the document?"""
        state = self.doc.get_state()
        try:
            return left_pending(get_update(update, state), state)
        except (ValueError, UpdateFormatError) as exc:
            raise InvalidUpdate(f"not a valid document update: {exc}") from exc

    def _purge(self) -> None:
        """Replace the document by a copy without what pycrdt keeps pending in it (its
        own full update leaves that out)."""
        fresh: Doc[Any] = Doc(client_id=self.doc.client_id)
        document.roots(fresh)
        fresh.apply_update(self.doc.get_update())
        self.release()
        self.doc = fresh
        self._fields = None

    def edit(self, fn: Callable[[Doc[Any]], object]) -> Change | None:
        """Make a server-side change (HTTP API) in one transaction; None if it changed nothing.

        ``fn`` may raise (e.g. InvalidFieldValue) before writing anything: then nothing
        changes.
        """
        self._track()
        with self.doc.transaction():
            fn(self.doc)
        return self._change()

    def broadcast(self, frame: bytes, exclude: str | None = None) -> int:
        """Queue a frame to every subscriber except session ``exclude``; returns how many."""
        return _post_all(self.subscribers, frame, exclude)

    def broadcast_yjs(self, frame: bytes, exclude: str | None = None) -> int:
        """The same for the Yjs endpoint's connections (y-websocket encoded frames)."""
        return _post_all(self.yjs, frame, exclude)


#: The field table's names by position, for the table it was built from (a table extended
#: by a test is another tuple: rebuilt then).
_order: tuple[tuple[schema.Field, ...], dict[str, int]] = ((), {})


def in_table_order(changed: dict[str, Any]) -> tuple[str, ...]:
    """The field table's names among ``changed``, in table order (unknown keys left out)."""
    global _order  # noqa: PLW0603 - a cache keyed on the table itself, never a copy of it
    table = schema.fields()
    if _order[0] is not table:
        _order = (table, {f.name: i for i, f in enumerate(table)})
    index = _order[1]
    if len(changed) == 1:
        name = next(iter(changed))
        return (name,) if name in index else ()
    return tuple(sorted((n for n in changed if n in index), key=index.__getitem__))


def _post_all(subscribers: dict[str, Subscriber], frame: bytes, exclude: str | None) -> int:
    sent = 0
    for key, subscriber in subscribers.items():
        if key != exclude:
            subscriber.post(frame)
            sent += 1
    return sent


class RoomRegistry:
    """Loaded rooms by document id; loads each at most once at a time, evicts idle ones.

    A room is *evictable* when nobody is on it (:attr:`Room.busy` is false) and everything
    it logged is durable (``seq`` at most :attr:`durable_seq`, which the server's sweeper
    advances after a write barrier, and on SQLite each commit too: there numbers are given
    at submit and commits come in their order). :meth:`evict_idle` drops evictable rooms
    unused for a while; past ``max_rooms`` loaded rooms, the least recently used evictable
    ones go first (also at once when a load goes over the cap). A room with subscribers is
    never evicted, so the cap is soft: it yields to rooms in use.

    An evicted room that something still refers to (a request between its ``get()`` and
    its edit, a commit in flight) is handed out again by ``get()`` instead of a fresh load,
    so there is never more than one live copy of a document: an edit made through the old
    reference is in the room everyone uses, and in the log. ``on_gone(doc_id)`` is called
    when a room is freed for good (the hub forgets its per-document state then), and
    ``on_back(doc_id)`` when an evicted room is handed out again (on several nodes the hub
    has it catch up with the log: nothing is integrated into an evicted room).
    ``may_let_go(doc_id)``, if given, can hold an otherwise evictable room a while longer
    (on several nodes: until it has read the log past the rows it wrote, cluster.py).
    """

    def __init__(
        self, loader: Callable[[str], Awaitable[tuple[list[bytes], int, bool]]], *,
        max_rooms: int | None = None, on_gone: Callable[[str], None] | None = None,
        on_back: Callable[[str], None] | None = None,
        may_let_go: Callable[[str], bool] | None = None,
    ) -> None:
        self._loader = loader
        #: Least recently used first.
        self._rooms: OrderedDict[str, Room] = OrderedDict()
        self._loading: dict[str, asyncio.Future[Room]] = {}
        self._evicted: weakref.WeakValueDictionary[str, Room] = weakref.WeakValueDictionary()
        self.max_rooms = max_rooms
        self.durable_seq = 0
        self._on_gone = on_gone
        self._on_back = on_back
        self._may_let_go = may_let_go

    def get_loaded(self, doc_id: str) -> Room | None:
        """The room if it is in memory."""
        return self._rooms.get(doc_id)

    def __iter__(self) -> Iterator[Room]:
        return iter(list(self._rooms.values()))

    def __len__(self) -> int:
        return len(self._rooms)

    async def get(self, doc_id: str) -> Room:
        """The room, loading it from storage first if needed (concurrent callers share one
        load)."""
        room = self._rooms.get(doc_id)
        if room is not None:
            room.last_used = time.monotonic()
            self._rooms.move_to_end(doc_id)
            return room
        room = self._evicted.pop(doc_id, None)
        if room is not None:  # evicted, but still referred to: the same copy again
            self._register(room)
            if self._on_back is not None:
                self._on_back(doc_id)  # what it missed while evicted (other nodes' changes)
            return room
        pending = self._loading.get(doc_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Room] = asyncio.get_running_loop().create_future()
        self._loading[doc_id] = future
        try:
            parts, seq, exists = await self._loader(doc_id)
            doc = document.new_document()
            for part in parts:
                doc.apply_update(part)
            room = Room(doc_id, doc, seq, exists)
            # Read from the log, so durable: commits are in seq order, so are all before it.
            self.durable_seq = max(self.durable_seq, seq)
            finalizer = weakref.finalize(room, self._gone, doc_id)
            finalizer.atexit = False
            self._register(room)
            future.set_result(room)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            del self._loading[doc_id]
        return room

    def _register(self, room: Room) -> None:
        room.last_used = time.monotonic()
        self._rooms[room.doc_id] = room
        if self.max_rooms is not None and len(self._rooms) > self.max_rooms:
            evicted = self._shrink(self.max_rooms, keep=room)
            log.debug("evicted %d documents over the cap of %d; %d loaded", evicted,
                      self.max_rooms, len(self._rooms))

    def evictable(self, room: Room) -> bool:
        """Nobody is on it, everything it logged is durable, and ``may_let_go`` agrees."""
        return (not room.busy and room.seq <= self.durable_seq
                and (self._may_let_go is None or self._may_let_go(room.doc_id)))

    def idle(self, now: float, idle_after: float) -> bool:
        """True when :meth:`evict_idle` has something to do: a room unused for
        ``idle_after`` seconds, or more rooms than ``max_rooms``. Rooms in use count as
        used now (so idleness is measured from when the last subscriber left)."""
        due = free = False
        for room in self._rooms.values():
            if room.busy:
                room.last_used = now
            else:
                free = True
                if now - room.last_used >= idle_after:
                    due = True
        over = self.max_rooms is not None and len(self._rooms) > self.max_rooms
        return due or (over and free)

    def evict_idle(self, now: float, idle_after: float) -> int:
        """Evict evictable rooms unused for ``idle_after`` seconds, then the least recently
        used evictable ones while over ``max_rooms``; returns how many went."""
        evicted = 0
        for room in list(self._rooms.values()):
            if room.busy:
                room.last_used = now
            elif now - room.last_used >= idle_after and self.evictable(room):
                self._evict(room)
                evicted += 1
        if self.max_rooms is not None:
            evicted += self._shrink(self.max_rooms)
        return evicted

    def _shrink(self, limit: int, keep: Room | None = None) -> int:
        """Evict least recently used evictable rooms until at most ``limit`` are loaded."""
        need = len(self._rooms) - limit
        victims: list[Room] = []
        for room in self._rooms.values():  # least recently used first
            if len(victims) >= need:
                break
            if room is not keep and self.evictable(room):
                victims.append(room)
        for room in victims:
            self._evict(room)
        return len(victims)

    def _evict(self, room: Room) -> None:
        del self._rooms[room.doc_id]
        room.release()
        self._evicted[room.doc_id] = room

    def _gone(self, doc_id: str) -> None:
        """A room object was freed: unless another copy is in use, forget the document."""
        if self._on_gone is None or doc_id in self._rooms or doc_id in self._loading:
            return
        if self._evicted.get(doc_id) is None:
            self._on_gone(doc_id)

    def evict(self, doc_id: str) -> Room | None:
        """Drop a room from memory for good: the next use reloads it from storage (after a
        failed write, when memory is ahead of the disk)."""
        self._evicted.pop(doc_id, None)
        room = self._rooms.pop(doc_id, None)
        if room is not None:
            room.release()
        return room
