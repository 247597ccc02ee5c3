"""Benchmark: the server's CPU per accepted update, by phase, without the network.

Drives the real hot path of one ``/ws`` update in one process: ``decode`` of the Update
frame, ``Room.apply_update`` (dependency check, pycrdt integration, change tracking), the
hub's ``accept_change_then`` (numbering, notifications, directory row, the log entry's
commit to a real SQLite file with ``synchronous=FULL`` on the writer thread, the fan-out
frame to one other subscriber) and, once durable, the Ack's encoding. Phases are measured
by differential runs (the clocks are read around whole runs only: a per-update thread-CPU
clock costs ~5 µs on a VM), so the figures add up to the full run. What it leaves out is
the transport (uvicorn's WebSocket parsing and writes): compare with the server CPU per
update that ``bench/server_acks.py`` prints.

Prints figures, never asserts. Usage: .venv/bin/python bench/update_budget.py [--updates N]
(for the code of another checkout: ``PYTHONPATH=<checkout> python <checkout>/bench/...``).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.shared import make_updates  # noqa: E402
from liveedit.client_cli.args import positive  # noqa: E402
from sync.protocol import document  # noqa: E402
from sync.protocol.messages import (  # noqa: E402
    Ack,
    RemoteUpdate,
    Update,
    customer_doc_id,
    decode,
    encode,
)
from sync.server.auth import AuthService  # noqa: E402
from sync.server.config import ServerConfig  # noqa: E402
from sync.server.hub import SyncHub  # noqa: E402
from sync.server.rooms import Room  # noqa: E402
from sync.server.storage import open_engine  # noqa: E402
from sync.server.update_deps import one_contiguous_client  # noqa: E402

DOC = customer_doc_id("00000000-0000-4000-8000-000000000001")


class Watcher:
    """Another subscriber of the document: receives the fan-out frame, sends nothing."""

    session_id = "watcher"
    username = "other"

    def post(self, frame: bytes) -> None:
        """Take a frame (the transport's cost is not measured here)."""


def cpu_us(fn: Callable[[], Any], count: int) -> float:
    """Main-thread CPU of one call of ``fn``, in µs per update."""
    gc.collect()
    started = time.thread_time_ns()
    fn()
    return (time.thread_time_ns() - started) / count / 1000


def fresh_room() -> Room:
    """An empty customer document in a room."""
    return Room(DOC, document.new_document(), 0, False)


async def full_path(frames: list[bytes], count: int) -> tuple[float, float]:
    """Everything through the durable Ack; (main thread, other threads) µs per update."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "budget.db"
        auth = AuthService(db)  # creates the schema, as the server's start does
        engine = open_engine(db, max_batch=2000)
        hub = SyncHub(ServerConfig(db_path=db), engine, auth)
        await engine.start()
        room = await hub.rooms.get(DOC)
        room.subscribers[Watcher.session_id] = Watcher()
        acked = asyncio.Event()
        done = [0]

        def stored(seq: int | None, ref: int) -> None:
            encode(Ack(DOC, ref, seq or 0))
            done[0] += 1
            if done[0] == count:
                acked.set()

        def acked_as(ref: int, seq: int | None, _error: BaseException | None) -> None:
            stored(seq, ref)

        def acked_by(ref: int, future: asyncio.Future[int]) -> None:
            stored(future.result(), ref)

        gc.collect()
        process, main = time.process_time_ns(), time.thread_time_ns()
        for i, frame in enumerate(frames):
            message = decode(frame)
            assert isinstance(message, Update)
            change = room.apply_update(message.update, writer=None)
            assert change is not None
            then = getattr(hub, "accept_change_then", None)
            if then is not None:
                then(room, change, "bench", "writer", functools.partial(acked_as, message.ref))
            else:  # the code before accept_change_then (a future per update)
                _, future = hub.accept_change(room, change, "bench", "writer")
                future.add_done_callback(functools.partial(acked_by, message.ref))
            if i % 50 == 49:  # frames arrive in reads of a few dozen: let commits settle
                await asyncio.sleep(0)
        await acked.wait()
        main = time.thread_time_ns() - main
        process = time.process_time_ns() - process
        await engine.close()
    return main / count / 1000, (process - main) / count / 1000


def main() -> None:
    """Measure and print the budget."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--updates", type=positive, default=20_000)
    count = parser.parse_args().updates
    updates = make_updates(count)
    frames = [encode(Update(DOC, i + 1, u)) for i, u in enumerate(updates)]

    decoding = cpu_us(lambda: [decode(f) for f in frames], count)

    def check_then_apply() -> None:
        room = fresh_room()
        for u in updates:
            one_contiguous_client(u, room.doc.get_state())
            room.doc.apply_update(u)

    def apply_only() -> None:
        room = fresh_room()
        for u in updates:
            room.doc.apply_update(u)

    def decode_and_integrate() -> None:
        room = fresh_room()
        for f in frames:
            message = decode(f)
            assert isinstance(message, Update)
            room.apply_update(message.update, writer=None)

    dependency = cpu_us(check_then_apply, count) - cpu_us(apply_only, count)
    integrated = cpu_us(decode_and_integrate, count) - decoding
    fanout = cpu_us(lambda: [encode(RemoteUpdate(DOC, i, u, "bench", 1.0))
                             for i, u in enumerate(updates)], count)
    ack = cpu_us(lambda: [encode(Ack(DOC, i, i)) for i in range(count)], count)
    main_us, other_us = asyncio.run(full_path(frames, count))
    rows = [
        ("decode (Update frame)", decoding),
        ("dependency check (issue 7)", dependency),
        ("integration + change tracking (rest of Room.apply_update)", integrated - dependency),
        ("hub: numbering, notifications, directory row, commit, fan-out, after-commit, "
         "ack, loop", main_us - decoding - integrated),
        ("  of which: encode the fan-out frame", fanout),
        ("  of which: encode the Ack", ack),
        ("writer thread (rows, SQLite insert + commit)", other_us),
        ("total", main_us + other_us),
    ]
    print(f"per-update CPU, {count:,} updates (µs):")
    for name, value in rows:
        print(f"  {name:<92} {value:6.1f}")


if __name__ == "__main__":
    main()
