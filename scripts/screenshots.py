#!/usr/bin/env python3
"""Take the README's screenshots: run the real demo scenario and save PNGs in docs/.

Starts the bundled server with demo data and drives a short story through the real app,
on a real X display (Xvfb, 1920x1080):

- ``screenshot-live-edit.png``: two reps' windows side by side, 960 px each (the default
  size: the directory must be readable at it). Sam edits City and Phone while Alex has
  the customer open (live edit, highlight, presence avatars in the header and the rows).
- ``screenshot-desktop-1920.png``: the whole 1920x1080 screen at that moment.
- ``screenshot-conflict.png``: both change State while Sam is offline; the losing side's
  conflict banner.
- ``screenshot-history.png``: the history dialog.
- ``screenshot-offline-1024.png``: one window at 1024x700, offline with changes queued
  (the offline bar, presence greyed out, a field marked "not yet synced"), the directory
  filtered with its matches highlighted.

Run it under Xvfb::

    Xvfb :99 -screen 0 1920x1080x24 &
    DISPLAY=:99 .venv/bin/python scripts/screenshots.py

(``QT_QPA_PLATFORM=offscreen`` also works; the window pictures come from the windows
themselves, the whole-screen one then shows nothing around them.)
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import qasync  # noqa: E402
from PySide6.QtCore import QSettings, Qt  # noqa: E402
from PySide6.QtGui import QGuiApplication  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication, QLineEdit, QWidget  # noqa: E402

from app.core import ClientCore  # noqa: E402
from liveedit.demo import prepare, start_server  # noqa: E402
from sync.server.demo_data import DEMO_REPS  # noqa: E402
from ui.bridge import CoreBridge  # noqa: E402
from ui.demo_windows import _save_picture  # noqa: E402
from ui.main_window import MainWindow  # noqa: E402
from ui.theme import apply_theme  # noqa: E402

DOCS = ROOT / "docs"
#: The default window width the directory must be readable at.
DEFAULT_WIDTH = 960


async def until(check: Callable[[], object], timeout: float = 15.0) -> None:
    """Wait (letting Qt and asyncio run) until ``check()`` is true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise TimeoutError(f"screenshot scenario stuck waiting for {check}")
        await asyncio.sleep(0.05)


async def settle(seconds: float = 0.4) -> None:
    """Let paint events and fades run before a picture (a picture, not synchronisation)."""
    await asyncio.sleep(seconds)


async def open_windows(folder: Path, url: str) -> tuple[list[ClientCore], list[MainWindow]]:
    """Both demo reps signed in, windows side by side at the default width."""
    cores: list[ClientCore] = []
    windows: list[MainWindow] = []
    area = QGuiApplication.primaryScreen().availableGeometry()
    for index, (user, password) in enumerate(DEMO_REPS):
        core = ClientCore.open(folder / f"profile-{user}")
        await core.login(url, user, password, remember=False)
        settings = QSettings(str(folder / f"{user}.ini"), QSettings.Format.IniFormat)
        window = MainWindow(core, CoreBridge(core), settings=settings)
        await window.start()
        await core.sync(60)
        window.resize(DEFAULT_WIDTH, area.height() - 40)
        window.move(area.x() + index * DEFAULT_WIDTH, area.y())
        window.show()
        cores.append(core)
        windows.append(window)
    return cores, windows


async def story(folder: Path, url: str) -> None:
    """The scenario, with a picture at each step."""
    cores, windows = await open_windows(folder, url)
    alex, sam = cores
    customer = alex.search("", limit=1)[0].customer_id
    for window in windows:
        window.show_customer(customer)
    await until(lambda: all(w.customer_view.current_customer() == customer for w in windows))
    await until(lambda: sam.presence(customer) and alex.presence(customer))

    await alex.notes_append(customer, "Called about the late delivery; promised a refund "
                                      "by Friday. ")
    await alex.add_task(customer, "Send refund confirmation")
    await sam.set_presence(customer, {"field": "zip", "cursor": 0, "name": "sam"})
    await until(lambda: windows[0].customer_view.editing_note("zip"))
    await sam.set_fields(customer, {"city": "Springfield", "phone": "217-555-0142"})
    await until(lambda: windows[0].customer_view.fields["city"].text() == "Springfield")
    await settle(0.25)  # the highlight holds ~0.7 s before it fades
    _save(windows, DOCS / "screenshot-live-edit.png")
    _save_screen(DOCS / "screenshot-desktop-1920.png")

    await sam.disconnect()
    await alex.set_fields(customer, {"state": "IL"})
    await sam.set_fields(customer, {"state": "MO"})
    await sam.connect()
    await sam.sync(30)
    await alex.sync(30)
    await until(lambda: any(w.customer_view.conflict_banners for w in windows))
    await settle()
    _save(windows, DOCS / "screenshot-conflict.png")

    dialog = windows[0].customer_view.open_history()
    assert dialog is not None
    await until(lambda: dialog.versions.rowCount() >= 3, timeout=20)
    dialog.select_version(dialog.versions.rowCount() - 1)  # the first version: most differs
    await until(lambda: dialog.loaded_version() is not None, timeout=20)
    dialog.select_field("city")
    dialog.resize(900, 560)
    await settle()
    _save([dialog], DOCS / "screenshot-history.png")
    dialog.close()

    await offline_story(windows[0], alex, customer)
    for window in windows:
        window.quit_anyway()
    for core in cores:
        await core.close()


async def offline_story(window: MainWindow, core: ClientCore, customer: str) -> None:
    """Alex at 1024x700, offline with changes queued, searching the directory."""
    window.showNormal()
    window.resize(1024, 700)
    window.move(0, 0)
    window.raise_()
    window.set_offline(True)
    await until(lambda: window.indicator.text().startswith("Offline"))
    others = [row.customer_id for row in core.search("", limit=3)[1:]]
    await core.set_fields(customer, {"zip": "62704"})
    for other in others:
        await core.set_fields(other, {"tier": "plus"})
    phone = window.customer_view.fields["phone"].editor
    assert isinstance(phone, QLineEdit)
    phone.setFocus()
    phone.selectAll()
    QTest.keyClicks(phone, "217-555-0199")
    QTest.keyClick(phone, Qt.Key.Key_Return)
    await until(lambda: window.offline_bar.isVisible()
                and window.offline_bar.text().startswith("Offline · "))
    window.directory.search.setText("new")
    await until(lambda: window.directory.model.query == "new")
    await settle(0.6)
    _save([window], DOCS / "screenshot-offline-1024.png")


def _save(widgets: Sequence[QWidget], path: Path) -> None:
    _save_picture(list(widgets), path)
    print(f"saved {path}", flush=True)


def _save_screen(path: Path) -> None:
    """The whole screen (a real display shows both windows as a rep sees them)."""
    screen = QGuiApplication.primaryScreen()
    screen.grabWindow(0).save(str(path))
    print(f"saved {path} ({screen.size().width()}x{screen.size().height()})", flush=True)


def main() -> int:
    """Run the scenario against a fresh demo server."""
    app = QApplication(sys.argv[:1])
    apply_theme(app, "light")
    app.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        server, url = start_server(prepare(folder, 500))
        try:
            with loop:
                loop.run_until_complete(story(folder, url))
        finally:
            server.terminate()
            server.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
