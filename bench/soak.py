"""Soak run: the randomized fault run of ``tests/faults`` for as long as you like.

Five headless clients (the real core, separate processes) edit shared customers through a
fault-injecting proxy while clients and the server are SIGKILLed and restarted; then
everything heals and the checker verifies convergence, that every edit is present exactly
once, that every outbox is empty and that every conflict is a real concurrent write.
Reproducible from the seed (the fault plan, the kills and each worker's edits; the exact
interleaving depends on timing). Prints figures; exits 1 if the checker found a problem.

With ``--nodes 3`` the server is the cluster of ``tests/faults/cluster.py``: three nodes on
one throwaway Postgres behind HAProxy (both from the OS packages, as in the tests), where a
server kill is, in turn, a SIGKILL of one node, a crash of Postgres, or every database
connection of the nodes cut.

Usage: .venv/bin/python bench/soak.py --minutes 5 --seed 42 [--seeds 3] [--nodes 3]
       [--keep DIR]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.faults.harness import RunConfig, RunReport, run


def main() -> int:
    """Run one or more seeds and print a summary of each."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="editing time per seed")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--seeds", type=int, default=1, help="run seed, seed+1, ...")
    parser.add_argument("--workers", type=int, default=5)
    parser.add_argument("--nodes", type=int, default=1,
                        help="1: one node on SQLite; more: that many nodes on Postgres "
                             "behind HAProxy")
    parser.add_argument("--keep", type=Path, help="keep the run folders under DIR")
    parser.add_argument("--strict-conflicts", action="store_true",
                        help="count conflicts that were not concurrent as a failure")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    failed = False
    reports: list[RunReport] = []
    for seed in range(args.seed, args.seed + args.seeds):
        started = time.monotonic()
        folder = args.keep / f"seed-{seed}" if args.keep else None
        # On a cluster, as in tests/faults/test_cluster_fault_run.py: the server's faults
        # (node, Postgres, connections) come more often, and the first two are forced.
        cluster = {"nodes": args.nodes, "server_kill_share": 0.4,
                   "first_server_kills": 2} if args.nodes > 1 else {}
        report = run(RunConfig(seed=seed, edit_seconds=args.minutes * 60,
                               workers=args.workers, folder=folder, **cluster))
        reports.append(report)
        print(f"server: {args.nodes} nodes on Postgres behind HAProxy" if args.nodes > 1
              else "server: one node on SQLite")
        print(report.summary())
        print(f"  wall time {time.monotonic() - started:.0f} s; files in {report.folder}")
        failed |= bool(report.problems) or (args.strict_conflicts
                                            and bool(report.false_conflicts))
    if len(reports) > 1:
        print(f"{len(reports)} seeds: {sum(r.edits_done for r in reports)} edits verified, "
              f"{sum(sum(r.faults.values()) for r in reports)} faults, "
              f"{sum(r.worker_kills + r.server_kills for r in reports)} kills, "
              f"{sum(bool(r.problems) for r in reports)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
