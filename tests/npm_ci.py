"""Install a test folder's pinned npm packages (``npm ci`` from its lockfile) once.

Shared by tests/interop (yjs, y-websocket) and tests/browser (axe-core). A file lock keeps
pytest-xdist workers from installing the same folder at once; a stamp holding the lock's
digest skips the install while nothing changed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

import pytest
from filelock import FileLock


def npm_ci(folder: Path, npm: str, args: list[str], digest: str, stamp: Path) -> None:
    """Run ``npm <args>`` in ``folder`` unless ``stamp`` already holds ``digest``; a
    failure fails the test with npm's output."""
    where = hashlib.sha256(bytes(folder)).hexdigest()[:16]
    with FileLock(str(Path(tempfile.gettempdir()) / f"liveedit-npm-{where}.lock")):
        if stamp.exists() and stamp.read_text() == digest:
            return
        env = {**os.environ, "npm_config_update_notifier": "false"}
        result = subprocess.run([npm, *args], cwd=folder, capture_output=True, text=True,
                                timeout=300, check=False, env=env)
        if result.returncode != 0:
            pytest.fail(f"'npm {' '.join(args)}' in {folder} failed "
                        f"(exit {result.returncode}):\n{result.stdout}\n{result.stderr}",
                        pytrace=False)
        stamp.write_text(digest)
