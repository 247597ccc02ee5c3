"""uvicorn's sans-I/O WebSocket protocol, lean per connection (issue 14: memory per idle
connection).

uvicorn builds one ``WebSocketsSansIOProtocol`` per connection. Of the ~22 KiB an idle
/yjs connection cost, about 6 KiB was that object's own state (tracemalloc, 1,000 against
2,000 idle connections): an ``asyncio.Queue`` for the ASGI receive channel (four deques
of ~760 bytes each), an ``asyncio.Event`` with its deque, an instance dictionary of ~40
attributes, and the parsed upgrade request and the response kept for the whole life of
the connection. :class:`LeanWebSocketProtocol` keeps uvicorn's behaviour and code, and

- declares ``__slots__`` for every attribute uvicorn sets (no instance dictionary);
- receives through :class:`_Inbox` (a list and one waiter, made when needed) instead of
  the ``asyncio.Queue``, and uses :class:`_Writable` (its waiter deque made when someone
  waits) instead of the ``asyncio.Event``;
- drops the upgrade request and the response once the handshake is answered (the
  request's headers are emptied, and ``websockets``' parser, which keeps the request, is
  replaced by a fresh frame parser where that is safe: :func:`_restart_frame_parser`);
- pauses reading only once a few messages wait for the app, not after each one.

The next step, not taken: a protocol class of our own on ``asyncio.Protocol`` that calls
the peer's frame handler directly, with no ASGI task, receive channel or coroutine chain per
connection (docs/performance.md, "Memory and CPU per idle connection").
``tests/unit/server/test_uvicorn_ws.py`` checks that the pinned uvicorn still has the shape
this relies on.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Literal

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import Protocol, State
from websockets.server import ServerProtocol
from websockets.streams import StreamReader

__all__ = ["PAUSE_READING_AT", "LeanWebSocketProtocol"]

#: Messages received and not yet taken by the app at which reading from the socket pauses
#: (uvicorn: 1). Each is at most ``ws_max_size``.
PAUSE_READING_AT = 4


class _Inbox:
    """The ASGI receive channel of one connection: ``asyncio.Queue``'s ``put_nowait``,
    ``get`` and ``empty``, for the one reader an ASGI app is (several readers also work:
    each wakes and takes an item if one is left)."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[Any] | None = None
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        """Add ``item`` and wake the reader."""
        if self._items is None:
            self._items = [item]
        else:
            self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def empty(self) -> bool:
        """True if nothing is waiting to be read."""
        return not self._items

    def qsize(self) -> int:
        """How many items wait to be read."""
        return len(self._items) if self._items else 0

    async def get(self) -> Any:
        """The oldest item, waiting for one if there is none."""
        while not self._items:
            waiter = self._waiter
            if waiter is None or waiter.done():
                waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                if self._waiter is waiter and waiter.done():
                    self._waiter = None
        items = self._items
        item = items.pop(0)
        if not items:
            self._items = None
        return item


class _Writable(asyncio.Event):
    """``asyncio.Event`` without its instance dictionary, and with no deque until a writer
    waits for the transport to drain (rare: only while it is paused)."""

    __slots__ = ("_loop", "_value", "_waiters")

    def __init__(self) -> None:  # no super().__init__(): it would make the deque
        self._loop = None
        self._value = False
        self._waiters = ()  # type: ignore[assignment]  # a deque once someone waits

    async def wait(self) -> Literal[True]:
        """Wait until the flag is set (as ``asyncio.Event.wait``)."""
        if self._value:
            return True
        if not isinstance(self._waiters, deque):
            self._waiters = deque()
        return await super().wait()


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's ``websockets-sansio`` protocol with less state per connection."""

    __slots__ = (
        "app", "app_state", "asgi_version", "client", "close_sent", "close_timeout",
        "close_timer", "config", "conn", "connections", "curr_msg_data_type",
        "default_headers", "disconnected", "frames", "handshake_complete",
        "handshake_initiated", "initial_response", "last_ping_rtt", "logger", "loop",
        "pending_ping_payload", "ping_interval", "ping_sent_at", "ping_timeout", "ping_timer",
        "pong_timer", "queue", "read_paused", "request", "response", "root_path", "scheme",
        "scope", "server", "tasks", "transport", "writable",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = _Inbox()  # type: ignore[assignment]
        self.writable = _Writable()
        self.writable.set()
        self.request = None  # type: ignore[assignment]  # set by handle_connect
        self.response = None  # type: ignore[assignment]

    def send_receive_event_to_app(self) -> None:
        """uvicorn's, but reading pauses only once :data:`PAUSE_READING_AT` messages wait.

        uvicorn pauses the transport after every message until the app has taken it: two
        epoll calls per message received (every /yjs nudge answer, every update), although
        the peer's receive loop takes each message at its next turn anyway. A few messages
        may now wait in the inbox; past that, back-pressure is the same.
        """
        paused = self.read_paused
        self.read_paused = True  # so that uvicorn's code does not pause
        try:
            super().send_receive_event_to_app()
        finally:
            self.read_paused = paused
        # Never once the close frame is sent: the app reads no more, and the peer's close
        # reply must still be read (uvicorn discards messages then, without pausing).
        if not paused and not self.close_sent and self.queue.qsize() >= PAUSE_READING_AT:
            self.read_paused = True
            self.transport.pause_reading()

    async def send(self, message: Any) -> None:
        """uvicorn's ``send``; the upgrade request and response are dropped once answered."""
        await super().send(message)
        request = self.request
        if self.handshake_complete and request is not None:
            # websockets' parser generator keeps the request as a local for the life of the
            # connection (ServerProtocol.parse parses it, then goes on parsing frames):
            # its headers, most of its size, are emptied since nothing reads them now.
            request.headers.clear()
            self.request = None  # type: ignore[assignment]
            self.response = None  # type: ignore[assignment]
            _restart_frame_parser(self.conn)


def _restart_frame_parser(conn: ServerProtocol) -> None:
    """Give ``conn`` a fresh frame parser once the handshake is done, if it is safe.

    ``ServerProtocol.parse`` parses the upgrade request, then goes on as the frame parser
    (``Protocol.parse``), so its generator frame holds the request (and its generator
    chain) as long as the connection lives. While it waits at the start of a frame (in
    ``StreamReader.at_eof``) with nothing buffered, it has consumed nothing of the frames,
    so an equivalent fresh ``Protocol.parse`` can take its place (~0.8 KiB less per
    connection). Otherwise (a client that sent frames right behind its upgrade request,
    or a ``websockets`` of another shape) the parser is left as it is.
    """
    reader = conn.reader
    if conn.state is not State.OPEN or reader.buffer or reader.eof or conn.parser_exc:
        return
    frames = getattr(conn.parser, "gi_yieldfrom", None)
    waiting = getattr(frames, "gi_yieldfrom", None)
    if (getattr(frames, "gi_code", None) is not Protocol.parse.__code__
            or getattr(waiting, "gi_code", None) is not StreamReader.at_eof.__code__):
        return
    parser = Protocol.parse(conn)
    next(parser)
    previous, conn.parser = conn.parser, parser
    previous.close()
