"""The demo's two windows: two reps signed in side by side on the same customer.

Used by ``liveedit demo`` (liveedit/demo.py starts the server and calls
:func:`run_demo_windows`). Demo sign-ins are not remembered (nothing goes to the keyring),
and each window keeps its layout in the demo folder, not in the rep's own settings.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import qasync
from PySide6.QtCore import QSettings, QTimer
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtWidgets import QApplication, QWidget

from app.core import ClientCore
from ui.app_icon import app_icon
from ui.gc_guard import GuiThreadCollector

__all__ = ["run_demo_windows"]

log = logging.getLogger(__name__)


async def _open_window(url: str, folder: Path, user: str, password: str) -> tuple[
    ClientCore, QWidget
]:
    from ui.bridge import CoreBridge
    from ui.main_window import MainWindow

    core = ClientCore.open(folder / f"profile-{user}")
    await core.login(url, user, password, remember=False)
    settings = QSettings(str(folder / f"window-{user}.ini"), QSettings.Format.IniFormat)
    window = MainWindow(core, CoreBridge(core), settings=settings)
    await window.start()
    await core.sync(60)  # the directory is here before the demo opens a customer
    return core, window


def _place_side_by_side(windows: Sequence[QWidget]) -> None:
    screen = QGuiApplication.primaryScreen()
    area = screen.availableGeometry() if screen is not None else None
    width = max(900, (area.width() if area else 1800) // len(windows))
    height = max(650, int(area.height() * 0.85) if area else 900)
    for index, window in enumerate(windows):
        window.resize(width, height)
        window.move((area.x() if area else 0) + index * width, area.y() if area else 0)
        window.show()


def _save_picture(windows: Sequence[QWidget], path: Path) -> None:
    """Both windows side by side in one PNG (works offscreen too)."""
    shots = [w.grab().toImage() for w in windows]
    image = QImage(sum(s.width() for s in shots), max(s.height() for s in shots),
                   QImage.Format.Format_ARGB32)
    image.fill(0xFF202020)
    painter = QPainter(image)
    x = 0
    for shot in shots:
        painter.drawImage(x, 0, shot)
        x += shot.width()
    painter.end()
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(str(path))


async def _session(app: QApplication, url: str, folder: Path,
                   reps: Sequence[tuple[str, str]], *, exit_after: float | None,
                   screenshot: Path | None, on_ready: Callable[[], None] | None) -> None:
    """Everything on one running loop: open, wait until closed (or timed out), clean up."""
    from ui.tasks import cancel_all

    cores: list[ClientCore] = []
    windows: list[QWidget] = []
    closed: set[int] = set()
    all_closed = asyncio.Event()

    def one_closed(window: QWidget) -> None:
        # Emitted from closeEvent, while the window still counts as visible: count the
        # closed windows rather than asking which are visible.
        closed.add(id(window))
        if len(closed) >= len(windows):
            all_closed.set()

    def stop() -> None:
        log.info("stopping the demo")
        for window in windows:
            window.close_unattended()  # type: ignore[attr-defined]
        all_closed.set()

    def finish() -> None:
        if screenshot is not None and windows:
            _save_picture(windows, screenshot)
        for window in windows:
            # As a rep would, minus the quit question nobody is there to answer (queued
            # changes would hold the window open): one_closed ends the session.
            window.close_unattended()  # type: ignore[attr-defined]

    loop = asyncio.get_running_loop()
    previous = signal.signal(signal.SIGTERM, lambda *_: loop.call_soon_threadsafe(stop))
    # Python runs signal handlers only between bytecodes: while Qt waits in C, a tick
    # gives it the chance (a SIGTERM is then handled within a quarter second).
    tick = QTimer()
    tick.setInterval(250)
    tick.timeout.connect(lambda: None)
    tick.start()
    try:
        for user, password in reps:
            core, window = await _open_window(url, folder, user, password)
            cores.append(core)
            windows.append(window)
            window.closed.connect(  # type: ignore[attr-defined]
                lambda w=window: one_closed(w))
        _place_side_by_side(windows)
        if on_ready is not None:
            on_ready()
        first = next(iter(cores[0].search("", limit=1)), None)
        if first is not None:
            for window in windows:
                window.show_customer(first.customer_id)  # type: ignore[attr-defined]
        if exit_after is not None:
            QTimer.singleShot(int(exit_after * 1000), finish)
        app.aboutToQuit.connect(all_closed.set)
        await all_closed.wait()
    finally:
        tick.stop()
        signal.signal(signal.SIGTERM, previous)
        await cancel_all()
        for core in cores:
            await core.close()


def run_demo_windows(url: str, folder: Path, reps: Sequence[tuple[str, str]], *,
                     exit_after: float | None = None, screenshot: Path | None = None,
                     on_ready: Callable[[], None] | None = None) -> int:
    """Open one window per rep against the demo server; returns when all are closed."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    from ui.theme import apply_theme

    apply_theme(app, "system")  # the desktop app's look (ui.theme)
    app.setApplicationName("Live Edit")
    app.setWindowIcon(app_icon())
    app.setQuitOnLastWindowClosed(False)  # _session decides when to stop, after cleanup
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    collector = GuiThreadCollector(app)
    with loop:
        loop.run_until_complete(_session(app, url, folder, reps, exit_after=exit_after,
                                         screenshot=screenshot, on_ready=on_ready))
    collector.stop()
    return 0
