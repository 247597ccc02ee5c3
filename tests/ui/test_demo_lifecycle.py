"""``liveedit demo`` as a real process: it ends when its windows are closed, and a SIGTERM
stops it together with the server it started."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import scaled

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def _start_demo(folder: Path, *extra: str) -> tuple[subprocess.Popen[str], list[str],
                                                    threading.Event]:
    """Start the demo offscreen; returns the process, its output lines so far, and an
    event set once both windows are open."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    process = subprocess.Popen(
        [sys.executable, "-m", "liveedit", "demo", "--customers", "20", "--offscreen",
         "--data-dir", str(folder), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, bufsize=1,
    )
    lines: list[str] = []
    ready = threading.Event()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip())
            if "demo windows open" in line:
                ready.set()

    threading.Thread(target=pump, daemon=True).start()
    return process, lines, ready


def _server_url(lines: list[str]) -> str:
    for line in lines:
        match = re.search(r"demo server listening on (\S+)", line)
        if match:
            return match.group(1)
    raise AssertionError("no server URL in:\n" + "\n".join(lines))


def _server_gone(url: str) -> bool:
    try:
        httpx.get(f"{url}/healthz", timeout=2)
    except httpx.TransportError:
        return True
    return False


@contextmanager
def _running_demo(folder: Path, *extra: str) -> Iterator[tuple[subprocess.Popen[str],
                                                              list[str], str]]:
    """A demo started with both windows open: the process, its output lines and its
    server's URL; killed at the end if it is still running."""
    process, lines, ready = _start_demo(folder, *extra)
    try:
        assert ready.wait(scaled(90)), "\n".join(lines)
        yield process, lines, _server_url(lines)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_demo_stops_with_its_server_on_sigterm(tmp_path: Path) -> None:
    """SIGTERM to ``liveedit demo`` closes its windows, stops its server and exits 0."""
    with _running_demo(tmp_path / "demo") as (process, lines, url):
        assert not _server_gone(url)
        process.send_signal(signal.SIGTERM)
        assert process.wait(scaled(30)) == 0, "\n".join(lines)
        assert _server_gone(url)


def test_demo_exits_when_both_windows_are_closed(tmp_path: Path) -> None:
    """Closing both windows (as a rep clicks their close buttons) ends the demo and its
    server; ``--exit-after`` closes the windows that way."""
    with _running_demo(tmp_path / "demo", "--exit-after", "1") as (process, lines, url):
        assert process.wait(scaled(30)) == 0, "\n".join(lines)
        assert _server_gone(url)
