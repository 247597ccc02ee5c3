#!/usr/bin/env python3
"""Set up the development environment, then run the demo or the tests.

Usage (from the repository root, with Python 3.11+):

    python3 scripts/dev.py demo     # set up, then start the bundled server + the app
    python3 scripts/dev.py test     # set up, then run the whole test suite and checks

Setting up means: create ``.venv`` next to this repository (once), install the pinned
dependencies from ``requirements/lock.txt`` with their hashes checked, and install this
project into it in editable mode. It is quick when nothing changed: a stamp file records the
lock's hash.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
LOCK = ROOT / "requirements" / "lock.txt"
STAMP = VENV / ".liveedit-lock-sha256"
MIN_PYTHON = (3, 11)


def venv_python() -> Path:
    """Path of the virtual environment's interpreter."""
    if os.name == "nt":
        return VENV / "Scripts" / "python.exe"
    return VENV / "bin" / "python"


def run(cmd: list[str | os.PathLike[str]], **kwargs: object) -> None:
    """Run a command, echoing it; exit with its code if it fails."""
    print("+", " ".join(str(c) for c in cmd), flush=True)
    code = subprocess.call([str(c) for c in cmd], cwd=ROOT, **kwargs)  # type: ignore[call-overload]
    if code != 0:
        sys.exit(code)


def setup() -> Path:
    """Create the venv and install the locked dependencies if they changed."""
    if sys.version_info < MIN_PYTHON:
        sys.exit(f"Live Edit needs Python {'.'.join(map(str, MIN_PYTHON))} or newer; "
                 f"this is {sys.version.split()[0]}.")
    py = venv_python()
    if not py.exists():
        print(f"creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    digest = hashlib.sha256(LOCK.read_bytes()).hexdigest()
    digest += hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not STAMP.exists() or STAMP.read_text() != digest:
        run([py, "-m", "pip", "install", "--disable-pip-version-check", "-q",
             "--require-hashes", "-r", LOCK])
        run([py, "-m", "pip", "install", "--disable-pip-version-check", "-q",
             "--no-deps", "--no-build-isolation", "-e", ROOT])
        STAMP.write_text(digest)
    return py


def main(argv: list[str]) -> int:
    """Entry point: ``demo`` or ``test``, extra arguments passed on."""
    if not argv or argv[0] not in {"demo", "test", "setup"}:
        print(__doc__)
        return 2
    what, rest = argv[0], argv[1:]
    py = setup()
    if what == "setup":
        return 0
    if what == "demo":
        os.execv(py, [str(py), "-m", "liveedit", "demo", *rest])
    return subprocess.call([str(py), str(ROOT / "scripts" / "check.py"), *rest], cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
