"""A headless client process for the fault runs: the real ``ClientCore`` on its own folder.

Run as ``python -m tests.faults.worker --mode edit|sync|dump …``:

- ``edit``: sign in (once per profile), connect through the given URL with short
  dead-link and backoff timings, and make a seeded random sequence of edits to the shared
  customers until SIGTERM (or SIGKILL: the point of the exercise);
- ``sync``: connect and wait until in sync (outbox empty, every held customer synced);
- ``dump``: like ``sync``, then write every shared customer as this replica holds it, its
  open conflicts and its outbox size to ``dump.json``.

Every edit is logged to ``edits.jsonl`` in the data folder, which survives kills and
restarts: ``try`` before the edit (with a per-worker counter ``n`` that is never reused),
``done`` once it returned (durable in the replica, with its outbox ref), ``ack`` once its
outbox entry is gone (the server acked it). Field writes also log their stamp (version
and base) so the checker can tell a real concurrent write from a later overwrite.
Values and tokens name the worker and ``n``, so each one is unique in the whole run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Any

from app.core import ClientCore
from app.errors import CoreError
from app.events import ConflictRecorded
from sync.protocol import document
from tests.memory_keyring import memory_keyring

#: Fields the workers write (last writer wins; conflicts possible).
FIELDS = ("city", "state", "street1", "street2")
#: Edit kinds and their weights.
KINDS = {"field": 4, "note": 3, "comment": 2, "task_add": 2, "task_toggle": 2, "task_move": 2}

log = logging.getLogger("tests.faults.worker")


class EditLog:
    """The worker's append-only JSONL log (flushed per line: survives SIGKILL)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.next_n = 0
        self.pending: dict[int, int] = {}  # outbox ref -> n, done but not yet acked
        if path.exists():
            for entry in read_log(path):
                self.next_n = max(self.next_n, int(entry["n"]) + 1)
                if entry["op"] == "done" and entry.get("ref") is not None:
                    self.pending[int(entry["ref"])] = int(entry["n"])
                elif entry["op"] == "ack":
                    self.pending = {r: n for r, n in self.pending.items() if n != entry["n"]}
        self._file = path.open("a", encoding="utf-8")

    def write(self, **entry: Any) -> None:
        """Append one entry and hand it to the OS at once."""
        self._file.write(json.dumps(entry) + "\n")
        self._file.flush()

    def close(self) -> None:
        """Close the file."""
        self._file.close()


def read_log(path: Path) -> list[dict[str, Any]]:
    """Every complete entry of a worker's log (a torn last line is skipped)."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


class Worker:
    """One client process: its core, log and random generator."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.data_dir = Path(args.data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.customers: list[str] = args.customers.split(",")
        self.log = EditLog(self.data_dir / "edits.jsonl")
        # A different stream after each restart, still reproducible from the seed.
        self.rng = random.Random(f"{args.seed}:{args.user}:{self.log.next_n}")
        self.core: ClientCore | None = None
        self.password_calls = 0

    async def password(self) -> str | None:
        """The password provider: the refresh token is lost with the process, so the first
        call after a restart is expected; any further call means the server refused a
        refresh token (a rep without a stored password would be signed out): logged."""
        self.password_calls += 1
        if self.password_calls > 1:
            self.log.write(op="signed_out", n=-1, calls=self.password_calls)
        return str(self.args.password)

    async def open(self) -> ClientCore:
        """Open the profile, sign in if it is new, and start syncing."""
        core = ClientCore.open(self.data_dir, password_provider=self.password)
        self.core = core
        core.bus.subscribe(self.on_event)
        if core.username is None:
            for _ in range(200):
                try:
                    await core.login(self.args.url, self.args.user, self.args.password)
                    break
                except CoreError as exc:  # the network is faulty on purpose
                    log.warning("login failed, retrying: %s", exc)
                    await asyncio.sleep(0.5)
            else:
                raise SystemExit("could not sign in")
        await core.connect(dead_after=self.args.dead_after, backoff_max=self.args.backoff_max)
        for cid in self.customers:
            await core.open_customer(cid)
        return core

    def on_event(self, event: Any) -> None:
        """Log every conflict the core records (one open record per field is kept, so
        the replica alone would not show them all)."""
        if isinstance(event, ConflictRecorded):
            self.log.write(op="conflict", n=-1, cid=event.customer_id, field=event.field,
                           mine=event.mine, theirs=event.theirs, author=event.author)

    def last_ref(self) -> int | None:
        """The last outbox ref the replica handed out (AUTOINCREMENT: never reused)."""
        with sqlite3.connect(self.data_dir / "replica.db") as conn:
            row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
        return int(row[0]) if row else None

    def check_acks(self) -> None:
        """Log an ack for every logged edit whose outbox entry is gone."""
        assert self.core is not None
        if not self.log.pending:
            return
        queued = {e.ref for e in self.core.outbox()}
        for ref, n in list(self.log.pending.items()):
            if ref not in queued:
                self.log.write(op="ack", n=n, ref=ref, mode=self.args.mode)
                del self.log.pending[ref]

    async def edit_once(self) -> None:
        """One random edit, logged before and after."""
        core = self.core
        assert core is not None
        rng = self.rng
        cid = rng.choice(self.customers)
        kind = rng.choices(list(KINDS), list(KINDS.values()))[0]
        n = self.log.next_n
        self.log.next_n += 1
        tag = f"{self.args.user}.{n}"
        tasks = core.customer(cid).tasks
        if kind in ("task_toggle", "task_move") and not tasks:
            kind = "task_add"
        entry: dict[str, Any] = {"n": n, "kind": kind, "cid": cid}
        if kind == "field":
            entry.update(field=rng.choice(FIELDS), value=f"v-{tag}")
        elif kind == "note":
            entry.update(token=f"<{tag}>")
        elif kind == "comment":
            entry.update(text=f"c-{tag}")
        elif kind == "task_add":
            entry.update(title=f"t-{tag}")
        elif kind == "task_toggle":
            task = rng.choice(tasks)
            entry.update(task=task.id, done=not task.done)
        else:
            task = rng.choice(tasks)
            entry.update(task=task.id, index=rng.randrange(len(tasks)))
        self.log.write(op="try", **entry)
        before = self.last_ref()
        extra: dict[str, Any] = {}
        if kind == "field":
            await core.set_fields(cid, {entry["field"]: entry["value"]})
            stamp = document.read_stamp(core.docs.doc(cid), entry["field"])
            assert stamp is not None
            extra = {"version": stamp.version, "base": stamp.base}
        elif kind == "note":
            await core.notes_append(cid, entry["token"])
        elif kind == "comment":
            await core.add_comment(cid, entry["text"])
        elif kind == "task_add":
            extra = {"task": await core.add_task(cid, entry["title"])}
        elif kind == "task_toggle":
            await core.edit_task(cid, entry["task"], done=entry["done"])
        else:
            await core.move_task(cid, entry["task"], entry["index"])
        ref = self.last_ref()
        ref = ref if ref != before else None
        self.log.write(op="done", n=n, ref=ref, **extra)
        if ref is not None:
            self.log.pending[ref] = n
        self.check_acks()

    async def run_edits(self, stop: asyncio.Event) -> None:
        """Edit until told to stop (SIGTERM), then close cleanly."""
        core = await self.open()
        try:
            while not stop.is_set():
                await self.edit_once()
                # The workload's own pace, not a synchronisation.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.rng.uniform(0.02, 0.3))
        finally:
            self.check_acks()
            await core.close()

    async def run_sync(self, dump: bool) -> None:
        """Sync until quiescent (retrying timeouts), then optionally dump the replica."""
        core = await self.open()
        try:
            for attempt in range(6):
                try:
                    await core.sync(self.args.timeout)
                    break
                except CoreError as exc:
                    log.warning("sync attempt %d: %s", attempt, exc)
            else:
                pending = core.engine.pending() if core.engine else "not connected"
                raise SystemExit(f"{self.args.user}: not in sync: {pending}")
            self.check_acks()
            if dump:
                out = {
                    "user": self.args.user,
                    "customers": {cid: core.customer(cid).as_json() for cid in self.customers},
                    "conflicts": [
                        {"doc": c.doc_id, "field": c.field, "mine": c.mine, "theirs": c.theirs,
                         "author": c.author}
                        for c in core.conflicts()
                    ],
                    "outbox": len(core.outbox()),
                    "pending_acks": len(self.log.pending),
                }
                (self.data_dir / "dump.json").write_text(json.dumps(out, indent=1))
        finally:
            await core.close()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m tests.faults.worker")
    parser.add_argument("--mode", choices=("edit", "sync", "dump"), default="edit")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--url", required=True, help="http://127.0.0.1:PORT (the proxy)")
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--customers", required=True, help="comma-separated ids")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dead-after", type=float, default=5.0)
    parser.add_argument("--backoff-max", type=float, default=2.0)
    parser.add_argument("--timeout", type=float, default=20.0)
    return parser.parse_args(argv)


async def amain(args: argparse.Namespace) -> None:
    """Run one mode."""
    worker = Worker(args)
    try:
        if args.mode == "edit":
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGTERM, stop.set)
            await worker.run_edits(stop)
        else:
            await worker.run_sync(dump=args.mode == "dump")
    finally:
        worker.log.close()


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m tests.faults.worker``."""
    args = parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("LIVEEDIT_FAULT_LOG", "WARNING"), stream=sys.stderr,
        format=f"%(asctime)s {args.user} %(levelname)s %(name)s: %(message)s",
    )
    with memory_keyring():
        asyncio.run(amain(args))


if __name__ == "__main__":
    main()
