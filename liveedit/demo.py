"""``liveedit demo``: the bundled server with fresh demo data, then the app.

Creates a new database of realistic demo customers (``--customers N``, 2,000 by default)
and the two demo rep accounts, starts the reference server on a free loopback port, and
opens the desktop app signed in as both reps. Until the desktop app is built, it runs the
server alone and says how to reach it. ``--exit-after S`` stops after S seconds (tests);
Ctrl+C stops it any time.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import signal
import sys
import tempfile
import threading
from pathlib import Path

from sync.server.auth import AuthService, Role
from sync.server.config import ServerConfig
from sync.server.demo_data import DEMO_REPS, generate_customers
from sync.server.importer import import_customers

__all__ = ["main"]

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="liveedit demo", description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=2000, metavar="N",
                        help="how many demo customers (2000)")
    parser.add_argument("--port", type=int, default=0, help="server port (default: a free one)")
    parser.add_argument("--data-dir", type=Path, metavar="DIR",
                        help="where the demo database goes (default: a new temp folder)")
    parser.add_argument("--offscreen", action="store_true", help="no window (for tests)")
    parser.add_argument("--exit-after", type=float, metavar="S",
                        help="stop after S seconds (for tests)")
    return parser


def main(argv: list[str]) -> int:
    """Run the demo; returns the exit code."""
    args = _parser().parse_args(argv)
    if not 1 <= args.customers <= 1_000_000:
        print("liveedit demo: error: --customers must be 1 to 1,000,000", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    folder = args.data_dir or Path(tempfile.mkdtemp(prefix="liveedit-demo-"))
    db_path = folder / "demo-server.db"
    if db_path.exists():
        print(f"liveedit demo: error: {db_path} exists; pick an empty --data-dir",
              file=sys.stderr)
        return 2
    print(f"creating {args.customers:,} demo customers in {db_path} …", flush=True)
    import_customers(db_path, generate_customers(args.customers))
    with AuthService(db_path) as auth:
        for username, password in DEMO_REPS:
            auth.add_user(username, password, Role.REP)
    if args.exit_after is not None:
        timer = threading.Timer(args.exit_after, lambda: signal.raise_signal(signal.SIGINT))
        timer.daemon = True
        timer.start()

    def ready(url: str) -> None:
        print(f"listening on {url}", flush=True)
        reps = ", ".join(f"{u} / {p}" for u, p in DEMO_REPS)
        print(f"demo reps (user / password): {reps}", flush=True)
        if importlib.util.find_spec("ui") is None or importlib.util.find_spec(
            "ui.main"
        ) is None:
            print("app not built yet: the server runs alone; try "
                  f"curl -s {url}/healthz, or Ctrl+C to stop", flush=True)

    from sync.server.app import serve

    return serve(ServerConfig(db_path=db_path, port=args.port), ready)
