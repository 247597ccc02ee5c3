"""Rooms: one loaded customer document, its subscribers and their presence.

A :class:`Room` holds the server's pycrdt copy of a document. Every change (a client's
update or a server-side edit from the HTTP API) goes through :meth:`Room.apply_update` or
:meth:`Room.edit`, which report what the change did as a :class:`Change`: the integrated
update bytes (what gets logged and fanned out), which fields changed, and the notification
kinds. Loading is lazy and happens once even when many clients ask at the same instant
(:class:`RoomRegistry`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from pycrdt import Decoder, Doc, get_update

from sync.protocol import document
from sync.protocol.messages import NotificationKind, PresenceState
from sync.protocol.yjs import AwarenessEntry

__all__ = [
    "Change", "InvalidUpdate", "MissingDependencies", "Room", "RoomRegistry", "Subscriber",
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
    """The update builds on changes the server does not have; the client must resync."""


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
    _deleted_before: bool = False
    _tracker: document.ChangeTracker = field(init=False)

    def __post_init__(self) -> None:
        self._tracker = document.ChangeTracker(self.doc)
        self.deleted = document.is_deleted(self.doc)

    @contextmanager
    def _tracking(self) -> Iterator[None]:
        with self._tracker.tracking():
            self._deleted_before = self.deleted
            yield

    def _change(self) -> Change | None:
        update = self._tracker.update
        if update is None:
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
        field_names = tuple(f for f in document.FIELDS if f in self._tracker.fields)
        title = document.read_field(self.doc, "name")
        return Change(update, field_names, tuple(sorted(roots)), tuple(kinds), title)

    def apply_update(self, update: bytes) -> Change | None:
        """Integrate a peer's update; None when it added nothing new.

        Raises InvalidUpdate for bytes pycrdt cannot decode, MissingDependencies when the
        update needs changes this server lacks (it is kept pending inside the document and
        integrated once they arrive).
        """
        with self._tracking():
            try:
                self.doc.apply_update(update)
            except ValueError as exc:
                raise InvalidUpdate(f"not a valid document update: {exc}") from exc
            except RuntimeError as exc:
                # yrs may have integrated a part before failing: report it (see InvalidUpdate).
                raise InvalidUpdate(
                    f"not a valid document update: {exc}", partial=self._change()
                ) from exc
            change = self._change()
        if change is None and not self._covers(update):
            raise MissingDependencies(
                "this update builds on changes the server does not have; resync the document"
            )
        return change

    def _covers(self, update: bytes) -> bool:
        """True when every struct of ``update`` is already in the document.

        ``get_update(update, state)`` keeps the structs the state vector lacks; an update
        v1 starts with the number of client groups of structs, so 0 means nothing is left.
        """
        try:
            missing = get_update(update, self.doc.get_state())
        except ValueError as exc:
            raise InvalidUpdate(f"not a valid document update: {exc}") from exc
        return Decoder(missing).read_var_uint() == 0

    def edit(self, fn: Callable[[Doc[Any]], object]) -> Change | None:
        """Make a server-side change (HTTP API) in one transaction; None if it changed nothing.

        ``fn`` may raise (e.g. InvalidFieldValue) before writing anything: then nothing
        changes.
        """
        with self._tracking(), self.doc.transaction():
            fn(self.doc)
        return self._change()

    def broadcast(self, frame: bytes, exclude: str | None = None) -> int:
        """Queue a frame to every subscriber except session ``exclude``; returns how many."""
        return _post_all(self.subscribers, frame, exclude)

    def broadcast_yjs(self, frame: bytes, exclude: str | None = None) -> int:
        """The same for the Yjs endpoint's connections (y-websocket encoded frames)."""
        return _post_all(self.yjs, frame, exclude)


def _post_all(subscribers: dict[str, Subscriber], frame: bytes, exclude: str | None) -> int:
    sent = 0
    for key, subscriber in subscribers.items():
        if key != exclude:
            subscriber.post(frame)
            sent += 1
    return sent


class RoomRegistry:
    """Loaded rooms by document id; loads each at most once at a time."""

    def __init__(self, loader: Callable[[str], Awaitable[tuple[list[bytes], int, bool]]]) -> None:
        self._loader = loader
        self._rooms: dict[str, Room] = {}
        self._loading: dict[str, asyncio.Future[Room]] = {}

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
            self._rooms[doc_id] = room
            future.set_result(room)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            del self._loading[doc_id]
        return room

    def evict(self, doc_id: str) -> Room | None:
        """Drop a room from memory (it reloads from storage on next use)."""
        return self._rooms.pop(doc_id, None)
