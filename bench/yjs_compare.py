"""Benchmark: our server's Yjs endpoint against @y/websocket-server (Node) and
pycrdt-websocket, with one load generator speaking the y-websocket protocol (issue 6).

Targets: ``ours`` (``liveedit server serve``, ``/yjs/{customer_id}?token=…``, a fresh
database with one rep and the customers imported), ``node`` (``@y/websocket-server``, the
reference server, no persistence) and ``pycrdt`` (pycrdt-websocket's WebsocketServer on
``websockets``). The peers are installed on first use into the gitignored
``scratch/bench/`` (npm ``--prefix`` and a venv); nothing is committed.

Measurements (issue 6), each on a freshly started server, the targets interleaved
(ours, node, pycrdt, ours, …), ``--reps`` repetitions, medians printed with our ratio to
each peer:

1. fan-out: N clients in one room (N = 10, 100, 500, 1,000), one writer making 200 edits at
   20/s; latency p50/p95/p99/max on 50 sampled readers, deliveries/s counted at every client
   (the writer's echo included), server CPU % (/proc/<pid>/stat) and the generator's own.
2. rooms: 500 rooms x 2 clients, a steady 1,000 edits/s for 10 s, then a burst of 10,000
   edits; latency and deliveries/s.
3. initial sync of a document with 10,000 prior edits: fresh client, time until its sync
   step 2 is applied (p50 of 10).
4. idle: server RSS with 0, 1,000 and 10,000 synced connections, in 1 room and in 500 rooms;
   KiB per connection; the server's CPU % while they sit idle (over 10 s, after 2 s of
   settling: ``Settings.idle_window``).

Writers insert a marker ``#e<n>#`` into the ``notes`` Text root and note the send time
(``time.monotonic_ns``, system-wide); readers find markers in the frame bytes with a regex.
The server runs on one core, the generator on another (``--cores``). The generator is one
asyncio process (uvloop) on websockets' sans-I/O client; its CPU % is reported so a
saturated generator shows.

Usage:
    .venv/bin/python bench/yjs_compare.py [--quick] [--reps 3] [--only ours,node]
        [--scenarios fanout,rooms,sync,idle] [--clients 10,100,500,1000]
        [--json results.json] [--plot latency.png] [--cores 0,1] [-v]

``--quick`` (N = 10 and 100, smaller rooms/burst/sync/idle sizes, 1 repetition) takes a
minute or two once the peers are installed.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from importlib.metadata import version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ygen import report, scenarios
from ygen.scenarios import Settings
from ygen.targets import (
    TARGETS,
    Cores,
    Running,
    Target,
    make_target,
    raise_nofile,
)

log = logging.getLogger("yjs_compare")

ROOT = Path(__file__).resolve().parent.parent
Scenario = Callable[[Running], Coroutine[Any, Any, dict[str, Any]]]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and 1 repetition (a smoke test)")
    parser.add_argument("--reps", type=int, help="repetitions (3; --quick: 1)")
    parser.add_argument("--only", action="append", metavar="TARGET",
                        help="ours, node or pycrdt (repeat or comma-separate); default all")
    parser.add_argument("--scenarios", default="fanout,rooms,sync,idle",
                        help="which measurements, comma-separated (fanout,rooms,sync,idle)")
    parser.add_argument("--clients", help="fan-out room sizes, e.g. 10,100,500,1000")
    parser.add_argument("--edits", type=int, help="fan-out edits by the writer (200)")
    parser.add_argument("--rate", type=float, help="fan-out edits per second (20)")
    parser.add_argument("--rooms", type=int, help="rooms in the rooms measurement (500)")
    parser.add_argument("--burst", type=int, help="edits in the burst (10,000)")
    parser.add_argument("--prior-edits", type=int, help="edits before the initial sync (10,000)")
    parser.add_argument("--idle", help="idle connection counts, e.g. 1000,10000")
    parser.add_argument("--drain-timeout", type=float,
                        help="seconds to wait for the last deliveries (60)")
    parser.add_argument("--cores", help="SERVER,GENERATOR core numbers, or 'none' "
                        "(default: the first two usable cores)")
    parser.add_argument("--scratch", type=Path, default=ROOT / "scratch" / "bench",
                        help="where the peers are installed (gitignored)")
    parser.add_argument("--ours-arg", action="append", default=[], metavar="ARG",
                        help="extra argument for `liveedit server serve` (repeatable)")
    parser.add_argument("--json", type=Path, help="write every run and the medians here")
    parser.add_argument("--plot", type=Path, help="write the latency-vs-clients PNG here")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    """Scenario sizes from the defaults, --quick and the size options."""
    settings = Settings.quick() if args.quick else Settings()
    if args.clients:
        settings.clients = [int(n) for n in args.clients.split(",")]
    if args.idle:
        settings.idle_counts = [int(n) for n in args.idle.split(",")]
    for name in ("edits", "rate", "rooms", "burst", "prior_edits", "drain_timeout"):
        value = getattr(args, name)
        if value is not None:
            setattr(settings, name, value)
    settings.idle_rooms = [r if r == 1 else settings.rooms for r in settings.idle_rooms]
    return settings


def selected_targets(only: list[str] | None) -> list[str]:
    """Targets in the fixed interleaving order."""
    if not only:
        return list(TARGETS)
    chosen = {name.strip() for item in only for name in item.split(",") if name.strip()}
    unknown = chosen - set(TARGETS)
    if unknown:
        raise SystemExit(f"unknown target(s) {', '.join(sorted(unknown))}; "
                         f"choose from {', '.join(TARGETS)}")
    return [t for t in TARGETS if t in chosen]


def measurements(settings: Settings, wanted: set[str]) -> list[tuple[str, Scenario]]:
    """(name, coroutine function on a started server) in the order they run."""
    out: list[tuple[str, Scenario]] = []
    if "fanout" in wanted:
        for n in settings.clients:
            out.append((f"fanout N={n:,}",
                        functools.partial(scenarios.fanout, settings=settings, clients=n)))
    if "rooms" in wanted:
        out.append((f"rooms {settings.rooms}x2",
                    functools.partial(scenarios.rooms, settings=settings)))
    if "sync" in wanted:
        out.append((f"sync {settings.prior_edits:,} edits",
                    functools.partial(scenarios.initial_sync, settings=settings)))
    if "idle" in wanted:
        for room_count in settings.idle_rooms:
            label = "1 room" if room_count == 1 else f"{room_count} rooms"
            out.append((f"idle {label}",
                        functools.partial(scenarios.idle, settings=settings,
                                          room_count=room_count)))
    return out


def run_all(targets: dict[str, Target], plan: list[tuple[str, Scenario]], reps: int,
            runner: asyncio.Runner) -> list[dict[str, Any]]:
    """Every measurement, repetition and target, interleaved; one fresh server each."""
    runs: list[dict[str, Any]] = []
    for name, scenario in plan:
        for rep in range(1, reps + 1):
            for target_name, target in targets.items():
                log.info("%s, repetition %d/%d: %s", name, rep, reps, target_name)
                record: dict[str, Any] = {"measurement": name, "target": target_name,
                                          "rep": rep}
                with tempfile.TemporaryDirectory(prefix="yjs-bench-") as tmp:
                    started = time.monotonic()
                    server: Running | None = None
                    try:
                        server = target.start(Path(tmp))
                        record["figures"] = runner.run(scenario(server))
                    except Exception as exc:  # one failed run must not stop the rest
                        log.error("%s on %s failed: %s", name, target_name, exc,
                                  exc_info=log.isEnabledFor(logging.DEBUG))
                        record["failed"] = f"{type(exc).__name__}: {exc}"[:300]
                        record["figures"] = {}
                    finally:
                        if server is not None:
                            server.stop()
                            tail = server.log_tail()
                            if tail:
                                record["server_log_tail"] = tail
                                log.warning("%s wrote to stderr: %s", target_name,
                                            tail[-500:])
                    record["seconds"] = round(time.monotonic() - started, 1)
                runs.append(record)
                log.info("  %s", _brief(record))
    return runs


def _brief(record: dict[str, Any]) -> str:
    if record.get("failed"):
        return f"FAILED: {record['failed']}"
    keys = ("p50_ms", "p99_ms", "deliveries_per_s", "server_cpu_pct", "generator_cpu_pct",
            "steady_p99_ms", "burst_deliveries_per_s", "missing", "burst_missing",
            "kib_per_conn_1000", "kib_per_conn_10000")
    figures = record["figures"]
    parts = [f"{k}={figures[k]:.1f}" for k in keys
             if isinstance(figures.get(k), int | float)]
    return ", ".join(parts) + f" ({record['seconds']} s)"


def _cores(cores: set[int] | None) -> str:
    return ",".join(map(str, sorted(cores))) if cores else "any"


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"cpu": model, "cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version()}


def publish(args: argparse.Namespace, runs: list[dict[str, Any]], targets: dict[str, Target],
            *, settings: Settings, cores: Cores, reps: int, seconds: float) -> dict[str, list[str]]:
    """Print the table; write the JSON and the plot if asked. Returns failed runs."""
    names = list(targets)
    summary = report.medians(runs)
    info = machine()
    failures: dict[str, list[str]] = {}
    for run in runs:
        if run.get("failed"):
            failures.setdefault(run["measurement"], []).append(
                f"{run['target']} #{run['rep']}: {run['failed']}")
    print()
    print(f"Yjs servers compared: medians of {reps} repetition(s); {seconds:.0f} s in all")
    print(f"machine: {info['cpu'] or 'unknown CPU'}, {info['cores']} cores; server on core "
          f"{_cores(cores.server)}, generator on core {_cores(cores.generator)}")
    print(report.table(summary, names, failures, settings.idle_counts))
    note = report.generator_note(runs)
    if note:
        print(note)
    versions = {name: t.versions for name, t in targets.items()}
    versions["generator"] = {"websockets": version("websockets"), "pycrdt": version("pycrdt"),
                             "python": platform.python_version()}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "machine": info,
            "cores": {"server": sorted(cores.server or []),
                      "generator": sorted(cores.generator or [])},
            "settings": vars(settings), "repetitions": reps, "targets": names,
            "versions": versions, "medians": summary, "runs": runs,
        }, indent=1, default=str))
        log.info("wrote %s", args.json)
    if args.plot:
        report.plot_latency(summary, names, args.plot,
                            "Fan-out: delivery latency vs clients in one room "
                            f"({settings.edits} edits at {settings.rate:g}/s)")
        log.info("wrote %s", args.plot)
    return failures


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; print the table; write JSON and plot if asked."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    settings = settings_from(args)
    reps = args.reps or (1 if args.quick else 3)
    wanted = {s.strip() for s in args.scenarios.split(",") if s.strip()}
    unknown = wanted - {"fanout", "rooms", "sync", "idle"}
    if unknown:
        raise SystemExit(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    names = selected_targets(args.only)
    nofile = raise_nofile()
    if "idle" in wanted and max(settings.idle_counts) + 100 > nofile:
        log.warning("open-file limit %d is below %d idle connections", nofile,
                    max(settings.idle_counts))
    cores = Cores.choose(args.cores)
    cores.pin_generator()
    log.info("server core %s, generator core %s", cores.server, cores.generator)
    rooms_needed = max([settings.rooms, *settings.idle_rooms, 1])
    args.scratch.mkdir(parents=True, exist_ok=True)
    targets = {name: make_target(name, args.scratch, rooms_needed, cores,
                                 ours_args=args.ours_arg) for name in names}
    for target in targets.values():
        target.prepare()
    plan = measurements(settings, wanted)
    try:
        import uvloop

        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    started = time.monotonic()
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runs = run_all(targets, plan, reps, runner)
    failures = publish(args, runs, targets, settings=settings, cores=cores, reps=reps,
                       seconds=time.monotonic() - started)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
