"""The bus: what server nodes tell each other, and the one interface every bus implements.

Several nodes serve the same database (docs/deploy.md). What one node accepts, the others
must learn: new updates of a document (so their subscribers get them live), new
notifications, presence,
revoked accounts and sessions that moved to another node. The data itself is already
durable in the database; the bus carries **signals** (Odoo's bus, CONVENTIONS.md): a
document id and a sequence number, never the update bytes. A node that gets
:class:`UpdatesCommitted` reads the rows after what it holds from the log, by sequence.

Implementations (the hub sees only :class:`Bus`; a new one needs no change there):

- :class:`LocalBus`: one node (SQLite, or tests). Several ``LocalBus`` objects may share a
  :class:`LocalNetwork` to stand for nodes inside one process.
- ``sync.server.storage.postgres.bus.PostgresBus``: ``LISTEN``/``NOTIFY`` on the shared
  database, with a catch-up read by sequence after every (re)connect of the listener (a
  dropped listener misses notifications silently). It lives in the storage package because
  only that package may import a database driver.
- Redis Streams or NATS JetStream later: they keep their own history, so they declare
  ``BusCapabilities(replays=True)`` and need no catch-up read; nothing else changes.

Rules every implementation keeps, and every handler may rely on:

- Delivery is at least once after a reconnect and may reorder documents: handlers are
  idempotent (an ``UpdatesCommitted`` for a sequence the node already holds changes
  nothing).
- A node never receives its own events.
- ``on_resync`` is called after every (re)connect of the listener, once the missed
  updates were delivered: what is not in the log (presence) must be announced again.
- A payload stays below ``capabilities.max_payload`` bytes (NOTIFY's hard limit is 8,000);
  :meth:`Bus.publish` raises :class:`~sync.server.errors.BusPayloadTooLarge` beyond it.
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

from sync.protocol.messages import PresenceState, PresenceValue

from .errors import BusMessageInvalid, BusPayloadTooLarge

__all__ = [
    "MAX_PAYLOAD",
    "AccountChanged",
    "Bus",
    "BusCapabilities",
    "BusEvent",
    "BusHandler",
    "LocalBus",
    "LocalNetwork",
    "NotificationsCommitted",
    "PresenceSignal",
    "SessionMoved",
    "SingleNode",
    "UpdateFeed",
    "UpdatesCommitted",
    "decode_event",
    "encode_event",
    "new_node_id",
]

log = logging.getLogger(__name__)

#: Largest encoded event, bytes: far below NOTIFY's 8,000, so a signal always fits.
MAX_PAYLOAD = 4000
#: Wire version of the encoding; a node ignores (and logs) events of another version.
VERSION = 1


def new_node_id() -> str:
    """A fresh id for this server process (nodes restart with a new one)."""
    return uuid.uuid4().hex[:16]


# -- events --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UpdatesCommitted:
    """``doc_id`` has durable updates up to ``seq`` (read them from the log)."""

    node: str
    doc_id: str
    seq: int
    time: float = 0.0


@dataclass(frozen=True, slots=True)
class NotificationsCommitted:
    """``doc_id`` has durable notifications numbered ``first`` to ``seq`` (read them from
    the notifications table and show them to the document's subscribers)."""

    node: str
    doc_id: str
    first: int
    seq: int
    time: float = 0.0


@dataclass(frozen=True, slots=True)
class PresenceSignal:
    """A session's presence on a document changed (``state`` None: it left)."""

    node: str
    doc_id: str
    session_id: str
    username: str
    state: PresenceState | None
    time: float = 0.0


@dataclass(frozen=True, slots=True)
class AccountChanged:
    """An account was disabled, or its role or password changed: close its connections."""

    node: str
    username: str
    time: float = 0.0


@dataclass(frozen=True, slots=True)
class SessionMoved:
    """``session_id`` resumed on node ``node``: whoever else holds it lets go."""

    node: str
    session_id: str
    time: float = 0.0


BusEvent: TypeAlias = (
    UpdatesCommitted | NotificationsCommitted | PresenceSignal | AccountChanged | SessionMoved
)

_KINDS: dict[type[Any], str] = {
    UpdatesCommitted: "u", NotificationsCommitted: "n", PresenceSignal: "p",
    AccountChanged: "a", SessionMoved: "m",
}


def encode_event(event: BusEvent) -> str:
    """Compact JSON text of an event; BusPayloadTooLarge past MAX_PAYLOAD bytes."""
    body: list[Any] = [VERSION, _KINDS[type(event)], event.node, round(event.time, 6)]
    if isinstance(event, UpdatesCommitted):
        body += [event.doc_id, event.seq]
    elif isinstance(event, NotificationsCommitted):
        body += [event.doc_id, event.first, event.seq]
    elif isinstance(event, PresenceSignal):
        state = None if event.state is None else dict(event.state)
        body += [event.doc_id, event.session_id, event.username, state]
    elif isinstance(event, AccountChanged):
        body.append(event.username)
    else:
        body.append(event.session_id)
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    size = len(text.encode())
    if size > MAX_PAYLOAD:
        raise BusPayloadTooLarge(
            f"a {type(event).__name__} event of {size} bytes exceeds the bus limit of "
            f"{MAX_PAYLOAD} bytes"
        )
    return text


def decode_event(text: str | bytes) -> BusEvent:
    """The event in ``text``; BusMessageInvalid for anything else (never another error)."""
    try:
        body = json.loads(text)
        if not isinstance(body, list) or len(body) < 5 or body[0] != VERSION:
            raise BusMessageInvalid("not a Live Edit bus event of this version")
        kind, node, when, rest = body[1], _text(body[2]), _number(body[3]), body[4:]
        if kind == "u" and len(rest) == 2:
            return UpdatesCommitted(node, _text(rest[0]), _seq(rest[1]), when)
        if kind == "n" and len(rest) == 3:
            first, last = _seq(rest[1]), _seq(rest[2])
            if first > last:
                raise ValueError("the first notification comes after the last")
            return NotificationsCommitted(node, _text(rest[0]), first, last, when)
        if kind == "p" and len(rest) == 4:
            return PresenceSignal(node, _text(rest[0]), _text(rest[1]), _text(rest[2]),
                                  _state(rest[3]), when)
        if kind == "a" and len(rest) == 1:
            return AccountChanged(node, _text(rest[0]), when)
        if kind == "m" and len(rest) == 1:
            return SessionMoved(node, _text(rest[0]), when)
    except (ValueError, TypeError, RecursionError) as exc:
        raise BusMessageInvalid(f"unreadable bus event: {exc}") from exc
    raise BusMessageInvalid(f"unknown bus event kind {str(body[1])[:20]!r}")


def _text(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > 256:
        raise ValueError("expected a short non-empty string")
    return value


def _seq(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError("expected a positive sequence number")
    return value


def _number(value: object) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError("expected a number")
    return float(value)


def _state(value: object) -> PresenceState | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError("expected a presence object")
    out: dict[str, PresenceValue] = {}
    for key, item in value.items():
        if not isinstance(item, str | int | float | bool) and item is not None:
            raise ValueError("presence values are scalars")
        out[str(key)] = item
    return out


# -- the interface -------------------------------------------------------------------------


class BusHandler(Protocol):
    """What a bus delivers to (the hub). Both are called on the event loop."""

    def on_event(self, event: BusEvent) -> None:
        """An event from another node (idempotent: see the module docstring)."""

    def on_resync(self) -> None:
        """The listener (re)connected and the missed updates were delivered."""


class UpdateFeed(Protocol):
    """The update log as a bus without history reads it after a reconnect (storage)."""

    async def last_seq(self) -> int:
        """The highest committed sequence number now."""

    async def changed_since(self, seq: int, limit: int) -> Sequence[tuple[str, int]]:
        """``(doc_id, seq)`` of committed log rows after ``seq``, oldest first, at most
        ``limit``. Commit-ordered: a row committing later never has a lower number than
        one already returned (the storage engine guarantees it)."""


@dataclass(frozen=True, slots=True)
class BusCapabilities:
    """What a bus can do, declared by the implementation (never sniffed by callers)."""

    #: Events reach other processes (False: one node only).
    cross_node: bool
    #: The bus keeps history and replays what a listener missed (Redis Streams, JetStream);
    #: without it the bus reads the missed updates from the log after a reconnect.
    replays: bool
    #: Largest encoded event, bytes.
    max_payload: int = MAX_PAYLOAD


class Bus(abc.ABC):
    """What nodes tell each other. One instance per server process.

    Call order: :meth:`start` once (it returns when the bus listens, or raises), then
    :meth:`publish` any number of times from the event loop, then :meth:`close`.
    """

    capabilities: BusCapabilities

    def __init__(self, node_id: str | None = None) -> None:
        self.node_id = node_id or new_node_id()
        self.handler: BusHandler | None = None
        #: Seconds between publishing and receiving, of the latest event from another
        #: node (wall clocks of two machines: as good as their time sync).
        self.last_lag = 0.0
        #: Called with each received event's lag (the metrics histogram).
        self.on_lag: Callable[[float], None] | None = None
        self.received = 0
        self.published = 0

    @property
    @abc.abstractmethod
    def listening(self) -> bool:
        """Whether events from other nodes arrive now (``/readyz``)."""

    @abc.abstractmethod
    async def start(self, handler: BusHandler) -> None:
        """Start listening; deliver events from other nodes to ``handler``."""

    @abc.abstractmethod
    async def publish(self, event: BusEvent) -> None:
        """Tell the other nodes. Raises BusPayloadTooLarge; other errors are logged and
        the event dropped (they reach the others through the log or the next resync)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop listening and release connections."""

    def stamp(self, event: BusEvent) -> BusEvent:
        """The event with this node's id and the current time (what publish sends)."""
        return dataclasses.replace(event, node=self.node_id, time=time.time())

    def deliver(self, event: BusEvent) -> None:
        """Hand one received event to the handler (implementations call this)."""
        if event.node == self.node_id or self.handler is None:
            return
        self.received += 1
        if event.time:
            self.last_lag = max(0.0, time.time() - event.time)
            if self.on_lag is not None:
                self.on_lag(self.last_lag)
        try:
            self.handler.on_event(event)
        except Exception:  # one bad event must not stop the listener; it is reported
            log.exception("handling bus event %r failed", event)


class SingleNode:
    """The handler of a node that has no one to hear from (:class:`LocalBus` without a
    network): nothing arrives, and a resync has nothing to announce again."""

    def on_event(self, event: BusEvent) -> None:
        log.warning("a single node got a bus event from node %s; ignored", event.node)

    def on_resync(self) -> None:
        return None


class LocalNetwork:
    """Stands for the network between in-process :class:`LocalBus` nodes."""

    def __init__(self) -> None:
        self.buses: list[LocalBus] = []


class LocalBus(Bus):
    """The bus of a single node: nothing to tell anyone, always listening.

    With a shared :class:`LocalNetwork`, events reach the other buses on it (on the next
    turn of the event loop, as a network would deliver them).
    """

    def __init__(self, node_id: str | None = None, network: LocalNetwork | None = None) -> None:
        super().__init__(node_id)
        self.network = network
        self.capabilities = BusCapabilities(cross_node=False, replays=False)
        self._started = False

    @property
    def listening(self) -> bool:
        return self._started

    async def start(self, handler: BusHandler) -> None:
        self.handler = handler
        self._started = True
        if self.network is not None:
            self.network.buses.append(self)

    async def publish(self, event: BusEvent) -> None:
        stamped = self.stamp(event)
        text = encode_event(stamped)  # same limits as a real bus
        self.published += 1
        if self.network is None:
            return
        loop = asyncio.get_running_loop()
        for bus in self.network.buses:
            if bus is not self:
                loop.call_soon(bus.deliver, decode_event(text))

    async def close(self) -> None:
        self._started = False
        if self.network is not None and self in self.network.buses:
            self.network.buses.remove(self)

