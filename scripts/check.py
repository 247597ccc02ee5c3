#!/usr/bin/env python3
"""Run every check of the project: lint, types, layer contracts, then the test suite.

Called by ``scripts/dev.py test`` inside the virtual environment; extra arguments go to pytest.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def step(name: str, cmd: list[str]) -> bool:
    """Run one check and report how long it took; True when it passed."""
    print(f"\n=== {name}: {' '.join(cmd)}", flush=True)
    started = time.monotonic()
    code = subprocess.call(cmd, cwd=ROOT)
    print(f"=== {name}: {'ok' if code == 0 else f'FAILED (exit {code})'} "
          f"in {time.monotonic() - started:.1f} s", flush=True)
    return code == 0


def pytest_workers(argv: list[str]) -> list[str]:
    """pytest-xdist options: two workers by default (most tests wait on sockets and
    subprocesses, so two cores run two of them well), one test file per worker at a time so
    a module's fixtures (a browser, a built .deb, a server) are made once.
    ``LIVEEDIT_TEST_WORKERS=0`` runs in one process; an explicit ``-n`` wins."""
    if any(arg == "-n" or arg.startswith(("-n", "--numprocesses")) for arg in argv):
        return []
    workers = os.environ.get("LIVEEDIT_TEST_WORKERS", "2")
    if workers == "0":
        return []
    return ["-n", workers, "--dist", "loadfile"]


def main(argv: list[str]) -> int:
    """Run all checks; the suite runs even when a lint step failed, so one run shows all."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    results = [
        step("ruff", [str(BIN / "ruff"), "check", "."]),
        step("mypy", [str(BIN / "mypy")]),
        step("import-linter", [str(BIN / "lint-imports")]),
        step("pytest", [sys.executable, "-m", "pytest", *pytest_workers(argv), *argv]),
    ]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
