"""pycrdt-websocket's WebsocketServer on the ``websockets`` library (its documented setup).

Run by bench/yjs_compare.py with the scratch venv's Python (pycrdt-websocket lives there,
not in the project's venv): ``python pycrdt_server.py [--host H] [--port P]``. Prints
``listening on ws://HOST:PORT`` once it listens; each room is the request path. The thin
adapter only gives websockets' ServerConnection the ``path`` and bytes-iteration that
pycrdt-websocket's Channel expects (websockets 14+ moved ``path`` to ``request.path``).
Stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from typing import Any

from pycrdt.websocket import WebsocketServer
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed


class Channel:
    """websockets' connection as a pycrdt Channel."""

    def __init__(self, connection: ServerConnection) -> None:
        self._connection = connection
        request = connection.request
        self._path = request.path.split("?", 1)[0] if request is not None else "/"

    @property
    def path(self) -> str:
        return self._path

    def __aiter__(self) -> Channel:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self.recv()
        except ConnectionClosed:
            raise StopAsyncIteration from None

    async def send(self, message: bytes) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self._connection.send(message)

    async def recv(self) -> bytes:
        message = await self._connection.recv()
        return message if isinstance(message, bytes) else message.encode()


async def main(host: str, port: int) -> None:
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    websocket_server = WebsocketServer()

    async def handler(connection: ServerConnection) -> None:
        await websocket_server.serve(Channel(connection))  # type: ignore[arg-type]

    kwargs: dict[str, Any] = {"max_size": None, "compression": None, "backlog": 4096}
    async with websocket_server, serve(handler, host, port, **kwargs) as server:
        bound = next(iter(server.sockets)).getsockname()
        print(f"listening on ws://{bound[0]}:{bound[1]}", flush=True)
        await stop


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(main(args.host, args.port))
    else:
        uvloop.run(main(args.host, args.port))
    sys.exit(0)
