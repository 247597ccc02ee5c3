"""``liveedit demo``: the bundled server with fresh demo data, and two reps side by side.

Creates a new database of realistic demo customers (``--customers N``, 2,000 by default)
and two demo rep accounts, starts the reference server on a free loopback port (a child
process), and opens two desktop windows side by side signed in as the two reps, so a
newcomer sees a live edit, presence and a conflict within a minute. ``--offscreen`` runs
with no display and ``--exit-after S`` closes both windows after S seconds (tests); closing
both windows, Ctrl+C or SIGTERM stops everything, the server included.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from sync.server.auth import AuthService, Role
from sync.server.demo_data import DEMO_REPS, generate_customers
from sync.server.importer import import_customers

__all__ = ["main", "start_server"]

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="liveedit demo", description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=2000, metavar="N",
                        help="how many demo customers (2000)")
    parser.add_argument("--data-dir", type=Path, metavar="DIR",
                        help="where the demo's files go (default: a new temp folder)")
    parser.add_argument("--offscreen", action="store_true", help="no display (for tests)")
    parser.add_argument("--exit-after", type=float, metavar="S",
                        help="close both windows after S seconds (for tests)")
    parser.add_argument("--screenshot", type=Path, metavar="PNG",
                        help="save a picture of both windows just before quitting")
    return parser


def _liveedit_command() -> list[str]:
    """How to run this program again as a child (frozen builds are their own command)."""
    if getattr(sys, "frozen", False):
        return [sys.executable]
    return [sys.executable, "-m", "liveedit"]


def start_server(db_path: Path) -> tuple[subprocess.Popen[str], str]:
    """Start ``liveedit server serve`` on a free loopback port; returns (process, URL)."""
    process = subprocess.Popen(  # noqa: S603 - our own program, fixed arguments
        [*_liveedit_command(), "server", "serve", "--db", str(db_path), "--port", "0",
         "--log-level", "warning"],
        stdout=subprocess.PIPE, text=True,
    )
    assert process.stdout is not None
    try:
        line = process.stdout.readline()
    except BaseException:  # a SIGTERM (SystemExit) while it starts: do not leave it running
        process.kill()
        raise
    match = re.search(r"listening on (\S+)", line)
    if match is None:
        process.kill()
        raise RuntimeError(f"the demo server did not start: {line.strip() or 'no output'}")
    return process, match.group(1)


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    """Before the windows run (they handle SIGTERM themselves): unwind, so ``finally``
    stops the server."""
    raise SystemExit(128 + signum)


#: The demo's customer login for the Customer App (the first demo customer's account).
#: DEMO ONLY: this password is public.
DEMO_CUSTOMER = ("customer", "customer-demo-password")


def prepare(folder: Path, customers: int) -> Path:
    """A fresh server database with demo customers, the demo reps and a customer login."""
    db_path = folder / "demo-server.db"
    print(f"creating {customers:,} demo customers in {db_path} …", flush=True)
    records = generate_customers(customers)
    import_customers(db_path, records)
    with AuthService(db_path) as auth:
        for username, password in DEMO_REPS:
            auth.add_user(username, password, Role.REP)
        auth.add_user(*DEMO_CUSTOMER, Role.CUSTOMER, str(records[0]["id"]))
    return db_path


def main(argv: list[str]) -> int:
    """Run the demo; returns the exit code."""
    args = _parser().parse_args(argv)
    if not 1 <= args.customers <= 1_000_000:
        print("liveedit demo: error: --customers must be 1 to 1,000,000", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    folder = args.data_dir or Path(tempfile.mkdtemp(prefix="liveedit-demo-"))
    if (folder / "demo-server.db").exists():
        print(f"liveedit demo: error: {folder} already holds a demo; pick an empty --data-dir",
              file=sys.stderr)
        return 2
    if args.offscreen:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    db_path = prepare(folder, args.customers)
    server, url = start_server(db_path)
    try:
        print(f"demo server listening on {url}", flush=True)
        print("demo reps (user / password): "
              + ", ".join(f"{u} / {p}" for u, p in DEMO_REPS), flush=True)
        print(f"Customer App: {url}/app/ (customer login: {DEMO_CUSTOMER[0]} / "
              f"{DEMO_CUSTOMER[1]})", flush=True)
        from ui.demo_windows import run_demo_windows

        return run_demo_windows(url, folder, DEMO_REPS, exit_after=args.exit_after,
                                screenshot=args.screenshot,
                                on_ready=lambda: print("demo windows open", flush=True))
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()


