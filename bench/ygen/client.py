"""A lean y-websocket client: websockets' sans-I/O ClientProtocol on an asyncio Protocol.

No task and no future per message: bytes arrive in ``data_received``, the sans-I/O protocol
cuts them into frames (answering pings and closes itself), and each y-websocket message is
handled inline. Readers only look at the first two bytes and search the frame for latency
markers; only a client given a pycrdt ``Doc`` (a writer, or a fresh client measuring the
initial sync) applies what it receives. This keeps the generator cheap enough for 1,000
clients in one room and 10,000 idle connections on one core.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

from pycrdt import Doc, Text
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from . import wire

__all__ = ["Tally", "Writer", "YClient", "open_clients"]

log = logging.getLogger(__name__)


class Tally:
    """What every client of one measurement adds to.

    ``sent_ns`` maps a marker number to its send time (``time.monotonic_ns()``, one clock
    for the whole machine on Linux). Deliveries count markers received by any client
    (an echo to the writer included); ``latencies_ns`` holds those seen by sampled readers,
    ``echo_ns`` those seen by writers (their own update coming back).
    """

    def __init__(self) -> None:
        self.sent_ns: dict[int, int] = {}
        self.deliveries = 0
        self.expected = 0
        self.first_send_ns = 0
        self.last_delivery_ns = 0
        self.latencies_ns: list[int] = []
        self.echo_ns: list[int] = []
        self.errors: list[str] = []
        self.unexpected_closes = 0
        self.done = asyncio.Event()

    def expect(self, count: int) -> None:
        """Set how many deliveries complete the measurement."""
        self.expected = count
        if self.deliveries >= count:
            self.done.set()

    def reset(self) -> None:
        """Forget deliveries and latencies (between two phases on the same clients)."""
        self.sent_ns.clear()
        self.deliveries = self.expected = self.first_send_ns = self.last_delivery_ns = 0
        self.latencies_ns = []
        self.echo_ns = []
        self.done = asyncio.Event()


class YClient(asyncio.Protocol):
    """One y-websocket connection to one room.

    ``synced`` resolves (to the monotonic ns time) once the server's sync step 2 has arrived
    (and, with a ``doc``, has been applied): the client is then in the room.
    """

    def __init__(self, url: str, tally: Tally, *, sample: bool = False,
                 doc: Doc[Any] | None = None, writer: bool = False) -> None:
        self.url = url
        self.tally = tally
        self.sample = sample
        self.doc = doc
        self.writer = writer
        self.protocol = ClientProtocol(parse_uri(url), max_size=None)
        self.transport: asyncio.Transport | None = None
        self.synced: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.step2_received_ns = 0
        self.closing = False
        self._fragments: list[bytes] = []

    # asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self.protocol.send_request(self.protocol.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        self.protocol.receive_data(data)
        for event in self.protocol.events_received():
            if isinstance(event, Frame):
                self._on_frame(event, now)
            elif isinstance(event, Response):
                self._on_response()
        self._flush()

    def eof_received(self) -> bool | None:
        self.protocol.receive_eof()
        self._flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.synced.done():
            self.synced.set_exception(ConnectionError(
                f"closed before sync: {self.protocol.close_code} {self.protocol.close_reason} "
                f"{self.protocol.handshake_exc or exc or ''}".strip()))
        elif not self.closing:
            self.tally.unexpected_closes += 1
            if len(self.tally.errors) < 20:
                self.tally.errors.append(
                    f"connection closed by the server: {self.protocol.close_code} "
                    f"{self.protocol.close_reason}")

    # y-websocket ------------------------------------------------------------------------

    def send(self, message: bytes) -> None:
        """Send one y-websocket message."""
        if self.protocol.state is State.OPEN:
            self.protocol.send_binary(message)
            self._flush()

    def close(self) -> None:
        """Close (a close frame, then the socket) without waiting for the handshake."""
        self.closing = True
        if self.transport is None or self.transport.is_closing():
            return
        if self.protocol.state is State.OPEN:
            self.protocol.send_close(1000)
            self._flush()
        self.transport.close()

    def _on_response(self) -> None:
        if self.protocol.handshake_exc is not None:
            if not self.synced.done():
                self.synced.set_exception(ConnectionError(
                    f"handshake refused: {self.protocol.handshake_exc}"))
            return
        state_vector = self.doc.get_state() if self.doc is not None else wire.EMPTY_STATE_VECTOR
        self.protocol.send_binary(wire.sync_message(wire.SYNC_STEP1, state_vector))

    def _on_frame(self, frame: Frame, now: int) -> None:
        opcode = frame.opcode
        if opcode is Opcode.BINARY or opcode is Opcode.CONT:
            if not frame.fin:
                self._fragments.append(bytes(frame.data))
                return
            data = bytes(frame.data)  # the same object when it is bytes already
            if self._fragments:
                data = b"".join([*self._fragments, data])
                self._fragments.clear()
            self._on_message(data, now)

    def _on_message(self, data: bytes, now: int) -> None:
        kind = data[0]
        if kind == wire.MSG_SYNC:
            sync_type = data[1]
            if sync_type == wire.SYNC_UPDATE:
                self._count(data, now)
                if self.doc is not None and not self.writer:
                    self.doc.apply_update(wire.sync_payload(data))
            elif sync_type == wire.SYNC_STEP2:
                self.step2_received_ns = now
                if self.doc is not None:
                    self.doc.apply_update(wire.sync_payload(data))
                if not self.synced.done():
                    self.synced.set_result(time.monotonic_ns())
            elif sync_type == wire.SYNC_STEP1:
                update = (self.doc.get_update(wire.sync_payload(data))
                          if self.doc is not None else wire.EMPTY_UPDATE)
                self.protocol.send_binary(wire.sync_message(wire.SYNC_STEP2, update))
        elif kind == wire.MSG_QUERY_AWARENESS:
            # a provider answers with its awareness; ours has no state: an empty update
            self.protocol.send_binary(wire.EMPTY_AWARENESS)
        elif kind == wire.MSG_AUTH:
            reason = wire.auth_reason(data)
            self.tally.errors.append(f"permission denied: {reason}")
            if not self.synced.done():
                self.synced.set_exception(PermissionError(reason))

    def _count(self, data: bytes, now: int) -> None:
        tally = self.tally
        numbers = wire.MARKER.findall(data)
        found = len(numbers)
        if found and (self.sample or self.writer):
            into = tally.echo_ns if self.writer else tally.latencies_ns
            sent = tally.sent_ns
            for number in numbers:
                started = sent.get(int(number))
                if started is not None:
                    into.append(now - started)
        if found:
            tally.deliveries += found
            tally.last_delivery_ns = now
            if tally.deliveries >= tally.expected > 0:
                tally.done.set()

    def _flush(self) -> None:
        transport = self.transport
        if transport is None:
            return
        for chunk in self.protocol.data_to_send():
            if chunk:
                transport.write(chunk)
            elif transport.can_write_eof() and not transport.is_closing():
                transport.write_eof()


class Writer:
    """A client that edits: inserts marker text into the ``notes`` Text root of its doc.

    The writer syncs first (its doc then mirrors the room), so every update it sends is a
    valid successor of the server's document.
    """

    def __init__(self, client: YClient) -> None:
        assert client.doc is not None
        self.client = client
        self.doc = client.doc
        self.notes = self.doc.get("notes", type=Text)
        self._captured: list[bytes] = []
        self._subscription = self.doc.observe(lambda event: self._captured.append(event.update))

    def build(self, n: int, position: int | None = None) -> bytes:
        """Apply edit ``n`` to the local doc; returns the y-websocket update message."""
        self._captured.clear()
        text = wire.marker(n)
        if position is None:
            self.notes += text
        else:
            self.notes.insert(min(position, len(self.notes)), text)
        return wire.sync_message(wire.SYNC_UPDATE, b"".join(self._captured))

    def send(self, n: int, message: bytes) -> None:
        """Send a built edit, noting its send time under its marker number."""
        now = time.monotonic_ns()
        tally = self.client.tally
        tally.sent_ns[n] = now
        if not tally.first_send_ns:
            tally.first_send_ns = now
        self.client.send(message)

    def edit(self, n: int) -> None:
        """Build and send edit ``n`` (appended to the notes)."""
        self.send(n, self.build(n))


async def open_clients(factories: Sequence[Callable[[], YClient]], *, concurrency: int = 64,
                       within: float = 60.0) -> list[YClient]:
    """Connect every client and wait until each is synced (in its room).

    At most ``concurrency`` handshakes are in flight, so no listen backlog overflows; each
    client has ``within`` seconds to connect and sync. Raises the first connection error
    (after closing the clients already open).
    """
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(concurrency)
    clients: list[YClient] = []

    async def one(factory: Callable[[], YClient]) -> YClient:
        async with gate:
            client = factory()
            clients.append(client)
            uri = parse_uri(client.url)
            async with asyncio.timeout(within):
                await loop.create_connection(lambda: client, uri.host, uri.port)
                await client.synced
            return client

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(f)) for f in factories]
    except BaseExceptionGroup as group_error:
        close_all(clients)
        raise group_error.exceptions[0] from None
    return [task.result() for task in tasks]


def close_all(clients: Sequence[YClient]) -> None:
    """Close every client (no waiting)."""
    for client in clients:
        client.close()
