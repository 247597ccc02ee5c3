"""The randomized fault run, reproducible from a seed: used by the test and bench/soak.py.

Five worker processes (:mod:`tests.faults.worker`, the real ``ClientCore``) edit three
shared customers through a :class:`~tests.faults.proxy.FaultProxy` in front of the real
server, while the proxy injects faults and a chaos driver SIGKILLs and restarts workers and
the server. Then everything is healed and restarted, every worker syncs to quiescence and
dumps its replica, and :func:`check` compares them with each other, with the server's HTTP
API and with every worker's edit log (see :mod:`tests.faults.worker`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.faults.cluster import ClusterServer
from tests.faults.proxy import FaultProxy
from tests.faults.worker import read_log
from tests.integration.conftest import DEFAULT_PASSWORD, ServerHandle, scaled

__all__ = ["RunConfig", "RunReport", "check", "run"]

REPO = Path(__file__).resolve().parents[2]
_NOTE = re.compile(r"<(w\d+\.\d+)>")


@dataclass
class RunConfig:
    """What to run: how long, how hard, from which seed."""

    seed: int = 1
    edit_seconds: float = 30.0
    workers: int = 5
    customers: int = 3
    mean_fault_gap: float = 2.5
    mean_kill_gap: float = 4.0
    server_kill_share: float = 0.3
    #: The first this many chaos events fault the server whatever the draw, and (if more
    #: than 0) the next one kills a client, so a short run under load (slow restarts leave
    #: time for few events) still covers those faults.
    first_server_kills: int = 0
    dead_after: float = 5.0
    backoff_max: float = 2.0
    #: Short access tokens, so in-band renewal and refresh happen under faults too.
    access_token_ttl: float = 20.0
    folder: Path | None = None
    #: 1: one node on SQLite; more: that many nodes on Postgres behind HAProxy
    #: (tests/faults/cluster.py), where a "server kill" kills a node, crashes Postgres or
    #: cuts the nodes' database connections.
    nodes: int = 1


@dataclass
class RunReport:
    """Figures of one run and what the checker found (``problems`` empty: all good)."""

    seed: int
    edit_seconds: float = 0.0
    edits_tried: int = 0
    edits_done: int = 0
    acked_during_run: int = 0
    acked_at_end: int = 0
    edits_by_kind: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    connections: int = 0
    worker_kills: int = 0
    worker_restarts: int = 0
    server_kills: int = 0
    server_restarts: int = 0
    worker_crashes: int = 0
    conflicts: int = 0
    #: Times a worker had to give its password again because a refresh was refused.
    sign_outs: int = 0
    converge_seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    #: Conflicts recorded although the winner had seen "mine" (see docs/reliability.md).
    false_conflicts: list[str] = field(default_factory=list)
    folder: str = ""

    def summary(self) -> str:
        """Human-readable figures."""
        lines = [
            f"seed {self.seed}: {self.edit_seconds:.0f} s of edits by faulty clients",
            f"  edits: {self.edits_tried} tried, {self.edits_done} done, "
            f"{self.acked_during_run} acked during the run, {self.acked_at_end} at the end "
            f"({', '.join(f'{k} {v}' for k, v in sorted(self.edits_by_kind.items()))})",
            f"  proxy: {self.connections} connections; faults "
            f"{', '.join(f'{k} {v}' for k, v in sorted(self.faults.items())) or 'none'}",
            f"  kills: worker {self.worker_kills} (restarts {self.worker_restarts}), "
            f"server {self.server_kills} (restarts {self.server_restarts}); "
            f"unexpected worker exits {self.worker_crashes}",
            f"  refresh refused (a rep without a saved password is signed out): "
            f"{self.sign_outs}",
            f"  conflicts recorded: {self.conflicts}, of which not concurrent: "
            f"{len(self.false_conflicts)}",
            f"  converged after healing in {self.converge_seconds:.1f} s: "
            + ("yes, nothing lost or duplicated" if not self.problems
               else f"NO, {len(self.problems)} problem(s)"),
        ]
        lines += [f"    - {p}" for p in self.problems[:40]]
        lines += [f"    - {p}" for p in self.false_conflicts[:10]]
        return "\n".join(lines)


class _Run:
    def __init__(self, config: RunConfig, folder: Path) -> None:
        self.config = config
        self.folder = folder
        self.report = RunReport(config.seed, folder=str(folder))
        args = ["--access-token-ttl", str(config.access_token_ttl)]
        self.server: Any = (ServerHandle(folder / "server.db", args) if config.nodes == 1
                            else ClusterServer(args, config.nodes, folder))
        self.proxy: FaultProxy | None = None
        self.names = [f"w{i}" for i in range(config.workers)]
        self.procs: dict[str, asyncio.subprocess.Process] = {}
        self.customers: list[str] = []

    # --- processes ---------------------------------------------------------------------------

    def data_dir(self, name: str) -> Path:
        return self.folder / name

    async def spawn(self, name: str, mode: str) -> asyncio.subprocess.Process:
        assert self.proxy is not None
        self.data_dir(name).mkdir(exist_ok=True)
        stderr = (self.data_dir(name) / "worker.log").open("ab")
        try:
            return await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.faults.worker", "--mode", mode,
                "--data-dir", str(self.data_dir(name)),
                "--url", f"http://127.0.0.1:{self.proxy.port}", "--user", name,
                "--password", DEFAULT_PASSWORD, "--customers", ",".join(self.customers),
                "--seed", str(self.config.seed), "--dead-after", str(self.config.dead_after),
                "--backoff-max", str(self.config.backoff_max),
                "--timeout", str(scaled(20)),
                cwd=REPO, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL, stderr=stderr,
            )
        finally:
            stderr.close()

    async def start_editor(self, name: str) -> None:
        self.procs[name] = await self.spawn(name, "edit")

    def worker_log_tail(self, name: str) -> str:
        path = self.data_dir(name) / "worker.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-15:])

    # --- phases ------------------------------------------------------------------------------

    async def setup(self) -> None:
        await asyncio.to_thread(self.server.start)
        for name in [*self.names, "auditor"]:
            await asyncio.to_thread(self.server.add_user, name)
        token = await asyncio.to_thread(self.server.token, "auditor")
        async with httpx.AsyncClient(base_url=self.server.http_url, timeout=scaled(10),
                                     headers={"Authorization": f"Bearer {token}"}) as http:
            for i in range(self.config.customers):
                response = await http.post("/customers", json={
                    "name": f"Shared {i}", "address": {"city": "start", "state": "start"}})
                response.raise_for_status()
                self.customers.append(response.json()["id"])
        self.proxy = FaultProxy(self.server.port)
        await self.proxy.start()

    async def chaos(self, stop: asyncio.Event) -> None:
        """SIGKILL and restart workers and the server at seeded random times."""
        rng = random.Random(f"{self.config.seed}:chaos")
        while not stop.is_set():
            gap = rng.expovariate(1 / self.config.mean_kill_gap)
            forced = self.report.server_kills < self.config.first_server_kills
            # Then one client kill whatever the draw, for the same reason (a run under load
            # whose slow server restarts left no time for one did not test client kills).
            client_due = (not forced and self.config.first_server_kills > 0
                          and self.report.worker_kills == 0)
            if forced or client_due:  # and soon enough to fit in a short run
                gap = min(gap, self.config.mean_kill_gap)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), gap)
            if stop.is_set():
                break
            if (rng.random() < self.config.server_kill_share or forced) and not client_due:
                await asyncio.to_thread(self.server.kill)
                self.report.server_kills += 1
                await asyncio.sleep(rng.uniform(0.2, 2.0))  # the outage's length
                await asyncio.to_thread(self.server.restart)
                self.report.server_restarts += 1
            else:
                name = rng.choice(self.names)
                proc = self.procs[name]
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
                    self.report.worker_kills += 1
                await asyncio.sleep(rng.uniform(0.0, 1.5))  # the app stays closed a while
                await self.start_editor(name)
                self.report.worker_restarts += 1

    async def watch(self, stop: asyncio.Event) -> None:
        """Restart a worker that exited by itself (and count it: it is a finding)."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
            for name, proc in list(self.procs.items()):
                if proc.returncode is not None and proc.returncode != -signal.SIGKILL:
                    self.report.worker_crashes += 1
                    self.report.problems.append(
                        f"{name} exited by itself with {proc.returncode}:\n"
                        f"{self.worker_log_tail(name)}")
                    await self.start_editor(name)

    async def edit_phase(self) -> None:
        assert self.proxy is not None
        for name in self.names:
            await self.start_editor(name)
        stop = asyncio.Event()
        tasks = [
            asyncio.create_task(self.proxy.schedule(
                self.config.seed, stop, mean_gap=self.config.mean_fault_gap,
                dead_after=self.config.dead_after)),
            asyncio.create_task(self.chaos(stop)),
            asyncio.create_task(self.watch(stop)),
        ]
        started = time.monotonic()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), self.config.edit_seconds)
        stop.set()
        await asyncio.gather(*tasks)
        self.report.edit_seconds = time.monotonic() - started
        for proc in self.procs.values():
            if proc.returncode is None:
                proc.terminate()
        for name, proc in self.procs.items():
            try:
                code = await asyncio.wait_for(proc.wait(), scaled(30))
            except TimeoutError:
                proc.kill()
                await proc.wait()
                self.report.problems.append(f"{name} did not stop on SIGTERM")
                continue
            # -SIGTERM: a worker the chaos driver had just restarted was still starting up
            # (no handler yet); its edits are durable all the same.
            if code not in (0, -signal.SIGKILL, -signal.SIGTERM):
                self.report.problems.append(
                    f"{name} ended with {code}:\n{self.worker_log_tail(name)}")

    async def heal_phase(self) -> None:
        """Healthy network, server restarted (a crash), every worker syncs, then dumps."""
        assert self.proxy is not None
        self.proxy.heal()
        started = time.monotonic()
        await asyncio.to_thread(self.server.kill)
        await asyncio.to_thread(self.server.restart)
        for mode in ("sync", "dump"):
            procs = {name: await self.spawn(name, mode) for name in self.names}
            for name, proc in procs.items():
                try:
                    code = await asyncio.wait_for(proc.wait(), scaled(150))
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
                    code = None
                if code != 0:
                    self.report.problems.append(
                        f"{name} {mode} failed ({code}):\n{self.worker_log_tail(name)}")
        self.report.converge_seconds = time.monotonic() - started
        self.report.faults = Counter(self.proxy.faults)
        self.report.connections = self.proxy.connections

    async def server_view(self) -> dict[str, dict[str, Any]]:
        token = await asyncio.to_thread(self.server.token, "auditor")
        out: dict[str, dict[str, Any]] = {}
        async with httpx.AsyncClient(base_url=self.server.http_url, timeout=scaled(10),
                                     headers={"Authorization": f"Bearer {token}"}) as http:
            for cid in self.customers:
                current = (await http.get(f"/customers/{cid}")).json()
                history = (await http.get(f"/customers/{cid}/history?limit=1")).json()
                seq = history["items"][0]["seq"]
                version = (await http.get(f"/customers/{cid}/versions/{seq}")).json()
                out[cid] = {"current": current, "version": version}
        return out

    async def execute(self) -> RunReport:
        try:
            await self.setup()
            await self.edit_phase()
            await self.heal_phase()
            check(self.report, self.folder, self.names, self.customers,
                  await self.server_view())
        finally:
            for proc in self.procs.values():
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
            if self.proxy is not None:
                await self.proxy.stop()
            await asyncio.to_thread(getattr(self.server, "shutdown", self.server.kill))
        return self.report


def check(report: RunReport, folder: Path, names: list[str], customers: list[str],
          server: dict[str, dict[str, Any]]) -> None:
    """Compare every replica, the server and the edit logs; append problems to ``report``."""
    problems = report.problems
    dumps: dict[str, dict[str, Any]] = {}
    for name in names:
        path = folder / name / "dump.json"
        if path.exists():
            dumps[name] = json.loads(path.read_text())
        else:
            problems.append(f"{name}: no dump")
    if not dumps:
        return
    first_name, first = next(iter(dumps.items()))
    for name, dump in dumps.items():
        if dump["outbox"]:
            problems.append(f"{name}: {dump['outbox']} change(s) still in the outbox")
        if dump["pending_acks"]:
            problems.append(f"{name}: {dump['pending_acks']} logged edit(s) never acked")
        for cid in customers:
            if dump["customers"][cid] != first["customers"][cid]:
                problems.append(f"{name} and {first_name} differ on {cid}: "
                                f"{_diff(dump['customers'][cid], first['customers'][cid])}")
    views = first["customers"]
    for cid in customers:
        mine = views[cid]
        current, version = server[cid]["current"], server[cid]["version"]
        local_fields = {k: v for k, v in mine.items()
                        if k not in ("notes", "tasks", "comments")}
        remote_fields = {k: v for k, v in current.items() if k in local_fields}
        if remote_fields != local_fields:
            problems.append(f"server fields differ on {cid}: {_diff(remote_fields, local_fields)}")
        if version["notes"] != mine["notes"]:
            problems.append(f"server notes differ on {cid}")
        if [{k: t[k] for k in ("id", "title", "done")} for t in version["tasks"]] != mine["tasks"]:
            problems.append(f"server tasks differ on {cid}")
        if version["comments"] != mine["comments"]:
            problems.append(f"server comments differ on {cid}")

    logs = {name: read_log(folder / name / "edits.jsonl") for name in names
            if (folder / name / "edits.jsonl").exists()}
    _check_edits(report, logs, views)


def _check_edits(report: RunReport, logs: dict[str, list[dict[str, Any]]],
                 views: dict[str, dict[str, Any]]) -> None:
    problems = report.problems
    tried: dict[tuple[str, int], dict[str, Any]] = {}
    done: set[tuple[str, int]] = set()
    acked: set[tuple[str, int]] = set()
    versions: dict[str, str | None] = {}  # field version -> base
    version_of: dict[Any, str] = {}  # field value -> its version
    conflicts: list[tuple[str, dict[str, Any]]] = []
    for name, entries in logs.items():
        for e in entries:
            key = (name, int(e["n"]))
            if e["op"] == "try":
                tried[key] = e
                report.edits_tried += 1
                report.edits_by_kind[e["kind"]] += 1
            elif e["op"] == "done":
                done.add(key)
                if e.get("ref") is None:
                    acked.add(key)  # nothing changed: nothing to send
                if "version" in e:
                    versions[e["version"]] = e["base"]
                    version_of[tried[key]["value"]] = e["version"]
            elif e["op"] == "ack":
                acked.add(key)
                report.acked_during_run += e.get("mode") == "edit"
            elif e["op"] == "signed_out":
                report.sign_outs += 1
            elif e["op"] == "conflict":
                conflicts.append((name, e))
    report.edits_done = len(done)
    report.acked_at_end = len(acked)
    report.conflicts = len(conflicts)
    written: dict[tuple[str, str], set[Any]] = {}
    for e in tried.values():
        if e["kind"] == "field":
            written.setdefault((e["cid"], e["field"]), set()).add(e["value"])
    if missing_acks := sorted(done - acked):
        problems.append(f"{len(missing_acks)} done edit(s) never acked, e.g. {missing_acks[:3]}")

    for cid, view in views.items():
        note_tokens = Counter(_NOTE.findall(view["notes"]))
        comment_texts = Counter(c["text"] for c in view["comments"])
        task_titles = Counter(t["title"] for t in view["tasks"])
        for key, e in tried.items():
            if e["cid"] != cid:
                continue
            found = None
            if e["kind"] == "note":
                found = note_tokens.pop(e["token"][1:-1], 0)
            elif e["kind"] == "comment":
                found = comment_texts.pop(e["text"], 0)
            elif e["kind"] == "task_add":
                found = task_titles.pop(e["title"], 0)
            if found is None:
                continue
            allowed = {1} if key in done else {0, 1}
            if found not in allowed:
                state = "acked" if key in acked else "done" if key in done else "tried"
                problems.append(f"{e['kind']} {key} ({state}) appears {found} times on {cid}")
        leftovers = [k for k, v in (note_tokens + comment_texts + task_titles).items()
                     if v and not str(k).startswith("Shared")]
        if leftovers:
            problems.append(f"{cid}: content nobody logged: {leftovers[:5]}")
        for (fcid, fname), values in written.items():
            if fcid != cid:
                continue
            final = view["address"].get(fname, view.get(fname))
            if final not in values and final != "start" and final is not None:
                problems.append(f"{cid}.{fname} = {final!r}, which nobody wrote")

    for name, c in conflicts:
        mine, theirs = c["mine"], c["theirs"]
        mine_v, theirs_v = version_of.get(mine), version_of.get(theirs)
        if not str(mine).startswith(f"v-{name}."):
            problems.append(f"{name}: conflict on {c['field']} names {mine!r} as mine")
            continue
        if mine_v is None or theirs_v is None:
            continue  # the setup's value, or a write killed before its stamp was logged
        ancestors = set()
        version: str | None = theirs_v
        while version is not None and version not in ancestors:
            ancestors.add(version)
            version = versions.get(version)
        if mine_v in ancestors:
            report.false_conflicts.append(
                f"{name}: false conflict on {c['cid']}.{c['field']}: {theirs!r} was written "
                f"after seeing {mine!r} (a sequential overwrite, not a concurrent write)")


def _diff(a: dict[str, Any], b: dict[str, Any]) -> str:
    keys = sorted({*a, *b})
    text = "; ".join(f"{k}: {a.get(k)!r} != {b.get(k)!r}" for k in keys if a.get(k) != b.get(k))
    return text[:400]


def run(config: RunConfig) -> RunReport:
    """Run one seeded fault run (blocking) and return its report."""
    if config.folder is not None:
        config.folder.mkdir(parents=True, exist_ok=True)
        folder = config.folder
    else:
        folder = Path(tempfile.mkdtemp(prefix=f"liveedit-faults-{config.seed}-"))
    return asyncio.run(_Run(config, folder).execute())


def seed_from_env(default: int) -> int:
    """``LIVEEDIT_FAULT_SEED`` if set, else ``default``."""
    return int(os.environ.get("LIVEEDIT_FAULT_SEED", default))
