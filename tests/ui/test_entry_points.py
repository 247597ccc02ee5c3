"""The program's own entry points, run as real processes: the demo and the self-test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.integration.conftest import scaled


def run(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``python -m liveedit ARGS`` offscreen and capture its output."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run([sys.executable, "-m", "liveedit", *args], capture_output=True,
                          text=True, timeout=scaled(timeout), env=env, check=False)


def test_self_test_passes_and_says_what_it_checked() -> None:
    """``liveedit --self-test`` exits 0 after printing each check it made."""
    result = run("--self-test", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    for check in ("bundled server listening on http://127.0.0.1:", "main window opened",
                  "an edit synced between the two clients", "self-test passed"):
        assert check in result.stdout


def test_demo_runs_offscreen_and_exits(tmp_path: Path) -> None:
    """``liveedit demo --offscreen --exit-after`` starts the server, opens both reps'
    windows, saves the picture and exits 0."""
    shot = tmp_path / "demo.png"
    result = run("demo", "--customers", "50", "--offscreen", "--exit-after", "4",
                 "--data-dir", str(tmp_path / "demo"), "--screenshot", str(shot),
                 timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "demo server listening on http://127.0.0.1:" in result.stdout
    assert "alex / alex-demo-password" in result.stdout
    assert shot.stat().st_size > 10_000
    assert (tmp_path / "demo" / "profile-alex").is_dir()
    assert (tmp_path / "demo" / "profile-sam").is_dir()


def test_demo_refuses_a_folder_that_already_holds_one(tmp_path: Path) -> None:
    """A second demo in the same folder is refused with one clear line."""
    (tmp_path / "demo-server.db").write_bytes(b"")
    result = run("demo", "--data-dir", str(tmp_path), "--offscreen", timeout=60)
    assert result.returncode == 2
    assert "already holds a demo" in result.stderr


def test_app_icon_comes_from_the_one_source_image(qapp: object) -> None:
    """The window icon loads from resources/liveedit.svg (the source packaging renders)."""
    from ui.app_icon import app_icon

    icon = app_icon()
    assert not icon.isNull()
    assert not icon.pixmap(64, 64).toImage().isNull()
