"""The Postgres bus: ``LISTEN``/``NOTIFY`` as a signal between nodes, caught up by sequence.

Every node keeps one listener connection (``application_name`` ``liveedit-bus-<node id>``) that
``LISTEN``\\s on one channel; :meth:`PostgresBus.publish` sends ``pg_notify`` on another
connection. A payload is one encoded :mod:`sync.server.bus` event (a document id and a
sequence number, a presence change, …), far below NOTIFY's 8,000 bytes.

A listener that drops misses notifications silently, and a TCP connection can hang
without an error. So the listener

1. probes its connection every ``probe_interval`` seconds (``SELECT 1`` under a timeout)
   and treats a failed probe like a dropped connection;
2. on a drop: stops counting as listening (``/readyz`` says so), reconnects with capped,
   jittered backoff, ``LISTEN``\\s again, and only then reads the log "since the highest
   sequence it saw" (:class:`~sync.server.bus.UpdateFeed`), delivering one
   ``UpdatesCommitted`` per document it missed. ``LISTEN`` comes first, so a commit during
   the catch-up is seen by one or both (handlers are idempotent), never by neither;
3. calls ``on_resync`` so the hub announces again what is not in the log (presence).

The writer sends the update and notification signals in the commit's own transaction
(``log.send_signals``): Postgres delivers them exactly when the rows are visible, and a
node that dies right after its commit still gets the signals out.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any

import asyncpg

from ...bus import (
    MAX_PAYLOAD,
    Bus,
    BusCapabilities,
    BusEvent,
    BusHandler,
    UpdateFeed,
    UpdatesCommitted,
    decode_event,
    encode_event,
)
from ...errors import BusError, BusMessageInvalid, DatabaseError
from .errors import DATABASE_ERRORS

__all__ = ["CHANNEL", "PostgresBus"]

log = logging.getLogger(__name__)

#: The NOTIFY channel of the Live Edit bus (one per database).
CHANNEL = "liveedit_bus"
APPLICATION_NAME = "liveedit-bus"
#: Errors that mean "the database connection is gone or unusable": reconnect.
_CONNECTION_ERRORS: tuple[type[Exception], ...] = (*DATABASE_ERRORS, DatabaseError)


class PostgresBus(Bus):
    """LISTEN/NOTIFY between the nodes of one Postgres database (module docstring)."""

    def __init__(
        self,
        dsn: str,
        feed: UpdateFeed | None,
        *,
        node_id: str | None = None,
        probe_interval: float = 5.0,
        probe_timeout: float = 3.0,
        connect_timeout: float = 5.0,
        max_backoff: float = 5.0,
        start_timeout: float = 30.0,
        page: int = 1000,
    ) -> None:
        super().__init__(node_id)
        self.dsn = dsn
        self.feed = feed
        self.probe_interval = probe_interval
        self.probe_timeout = probe_timeout
        self.connect_timeout = connect_timeout
        self.max_backoff = max_backoff
        self.start_timeout = start_timeout
        self.page = page
        self.capabilities = BusCapabilities(
            cross_node=True, replays=False, max_payload=MAX_PAYLOAD
        )
        #: The highest update sequence number this node knows to be committed.
        self.high_water = 0
        #: How many times the listener (re)connected (1 after a start without trouble).
        self.connects = 0
        self._listening = False
        self._up = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._publisher: Any = None
        self._publish_lock = asyncio.Lock()
        self._closing = False

    @property
    def listening(self) -> bool:
        return self._listening

    async def start(self, handler: BusHandler) -> None:
        """Listen; returns once listening, BusError if the database stays unreachable for
        ``start_timeout`` seconds (the listener keeps trying in the background until
        close)."""
        self.handler = handler
        if self.feed is not None:
            try:
                self.high_water = await self.feed.last_seq()
            except _CONNECTION_ERRORS as exc:
                raise BusError(f"the bus cannot read the update log: {exc}") from exc
        self._task = asyncio.create_task(self._listen_forever(), name="liveedit-bus-listener")
        try:
            await asyncio.wait_for(self._up.wait(), self.start_timeout)
        except TimeoutError:
            raise BusError(
                f"the bus could not listen on the database within {self.start_timeout:g} s"
            ) from None

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._publisher is not None:
            await self._publisher.close()
            self._publisher = None
        self._listening = False

    # -- publishing ---------------------------------------------------------------------

    async def publish(self, event: BusEvent) -> None:
        text = encode_event(self.stamp(event))
        async with self._publish_lock:
            for attempt in (1, 2):  # a connection that died since the last publish: once more
                try:
                    if self._publisher is None or self._publisher.is_closed():
                        self._publisher = await self._connect(f"{APPLICATION_NAME}-publish")
                    await self._publisher.execute("SELECT pg_notify($1, $2)", CHANNEL, text)
                except _CONNECTION_ERRORS as exc:
                    if self._publisher is not None:
                        self._publisher.terminate()
                        self._publisher = None
                    if attempt == 1:
                        continue
                    # Updates reach the others through the log (catch-up); presence is
                    # announced again on resync; revocations are also polled every 2 s.
                    log.warning("bus: could not publish a %s event: %s",
                                type(event).__name__, exc)
                    return
                break
        self.published += 1

    # -- listening ----------------------------------------------------------------------

    async def _connect(self, application_name: str) -> Any:
        return await asyncpg.connect(
            self.dsn, timeout=self.connect_timeout,
            server_settings={"application_name": application_name},
        )

    async def _listen_forever(self) -> None:
        delay = 0.1
        while not self._closing:
            try:
                conn = await self._connect(f"{APPLICATION_NAME}-{self.node_id}")
            except _CONNECTION_ERRORS as exc:
                log.warning("bus: cannot reach the database (%s); retrying in %.1f s",
                            exc, delay)
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, self.max_backoff)
                continue
            failed = False
            listened = self.connects
            try:
                await self._serve(conn)
            except _CONNECTION_ERRORS as exc:
                log.warning("bus: listener connection lost: %s", exc)
            except Exception:
                # Nothing may end the listener for good: a node that stops listening misses
                # the other nodes' updates silently and never becomes ready again. Logged
                # with its traceback, then the listener starts over.
                log.exception("bus: the listener failed; listening again")
                failed = True
            finally:
                self._listening = False
                conn.terminate()
            if self.connects > listened:
                # It listened on this connection: the next drop is a new outage, whose
                # first retry comes soon again (not after the last outage's longest wait).
                delay = 0.1
            if failed:
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, self.max_backoff)

    async def _serve(self, conn: Any) -> None:
        """LISTEN, catch up, then watch the connection until it drops."""
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        # LISTEN and the catch-up each within connect_timeout: a reconnect that hangs on a
        # stuck connection or pool must not keep the node deaf (and unready) for good.
        async with asyncio.timeout(self.connect_timeout):
            await conn.add_listener(CHANNEL, self._on_notify)
        await self._catch_up()
        self.connects += 1
        self._listening = True
        self._up.set()
        if self.connects > 1:
            log.info("bus: listening again (reconnect %d)", self.connects - 1)
        if self.handler is not None:
            self.handler.on_resync()
        while not lost.is_set():
            try:
                await asyncio.wait_for(lost.wait(), self.probe_interval)
            except TimeoutError:
                await asyncio.wait_for(conn.fetchval("SELECT 1"), self.probe_timeout)
        raise ConnectionError("the database closed the listener connection")

    async def _catch_up(self) -> None:
        """Deliver what was committed while nobody listened: one event per document."""
        if self.feed is None or self.capabilities.replays:
            return
        started = time.monotonic()
        total = 0
        while True:
            async with asyncio.timeout(self.connect_timeout):
                rows = await self.feed.changed_since(self.high_water, self.page)
            latest: dict[str, int] = {}
            for doc_id, seq in rows:
                latest[doc_id] = max(seq, latest.get(doc_id, 0))
                self.high_water = max(self.high_water, seq)
            for doc_id, seq in latest.items():
                self.deliver(UpdatesCommitted("log", doc_id, seq))
            total += len(rows)
            if len(rows) < self.page:
                break
        if total:
            log.info("bus: caught up %d updates in %.3f s", total, time.monotonic() - started)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            event = decode_event(payload)
        except BusMessageInvalid as exc:
            log.warning("bus: skipped a message on %s: %s", CHANNEL, exc)
            return
        if isinstance(event, UpdatesCommitted):
            self.high_water = max(self.high_water, event.seq)
        self.deliver(event)
