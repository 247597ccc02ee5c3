#!/usr/bin/env python3
"""Take the README's screenshots: run the real demo scenario and save PNGs in docs/.

Starts the bundled server with demo data, opens two reps' windows side by side, and drives
a short story through the app: Sam edits the city while Alex types notes (live edit,
highlight, presence); both change the same field while Sam is offline (a conflict banner
on the side that lost); the history dialog. Run it under Xvfb for a real display:

    xvfb-run -s "-screen 0 1920x1080x24" .venv/bin/python scripts/screenshots.py

(or ``QT_QPA_PLATFORM=offscreen``; the pictures come from the windows themselves).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import qasync  # noqa: E402
from PySide6.QtCore import QSettings  # noqa: E402
from PySide6.QtWidgets import QApplication, QWidget  # noqa: E402

from app.core import ClientCore  # noqa: E402
from liveedit.demo import prepare, start_server  # noqa: E402
from sync.server.demo_data import DEMO_REPS  # noqa: E402
from ui.bridge import CoreBridge  # noqa: E402
from ui.demo_windows import _place_side_by_side, _save_picture  # noqa: E402
from ui.main_window import MainWindow  # noqa: E402

DOCS = ROOT / "docs"


async def until(check: Callable[[], object], timeout: float = 15.0) -> None:
    """Wait (letting Qt and asyncio run) until ``check()`` is true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise TimeoutError(f"screenshot scenario stuck waiting for {check}")
        await asyncio.sleep(0.05)


async def story(folder: Path, url: str) -> None:
    """The scenario, with a picture at each step."""
    cores: list[ClientCore] = []
    windows: list[MainWindow] = []
    for user, password in DEMO_REPS:
        core = ClientCore.open(folder / f"profile-{user}")
        await core.login(url, user, password, remember=False)
        settings = QSettings(str(folder / f"{user}.ini"), QSettings.Format.IniFormat)
        window = MainWindow(core, CoreBridge(core), settings=settings)
        await window.start()
        await core.sync(60)
        cores.append(core)
        windows.append(window)
    alex, sam = cores
    _place_side_by_side(windows)
    customer = alex.search("", limit=1)[0].customer_id
    for window in windows:
        window.show_customer(customer)
    await until(lambda: all(w.customer_view.current_customer() == customer for w in windows))
    await until(lambda: sam.presence(customer) and alex.presence(customer))

    await alex.notes_append(customer, "Called about the late delivery; promised a refund "
                                      "by Friday. ")
    await alex.add_task(customer, "Send refund confirmation")
    await sam.set_fields(customer, {"city": "Springfield", "phone": "217-555-0142"})
    await until(lambda: windows[0].customer_view.fields["city"].editor.text() == "Springfield")
    await asyncio.sleep(0.3)  # let the highlight show (a picture, not synchronisation)
    _save(windows, DOCS / "screenshot-live-edit.png")

    await sam.disconnect()
    await alex.set_fields(customer, {"state": "IL"})
    await sam.set_fields(customer, {"state": "MO"})
    await sam.connect()
    await sam.sync(30)
    await alex.sync(30)
    await until(lambda: any(w.customer_view.conflict_banners for w in windows))
    await asyncio.sleep(0.3)
    _save(windows, DOCS / "screenshot-conflict.png")

    dialog = windows[0].customer_view.open_history()
    assert dialog is not None
    await until(lambda: dialog.versions.rowCount() >= 3, timeout=20)
    dialog.select_version(dialog.versions.rowCount() - 1)  # the first version: most differs
    await until(lambda: dialog.loaded_version() is not None, timeout=20)
    dialog.select_field("city")
    dialog.resize(900, 560)
    await asyncio.sleep(0.3)
    _save([dialog], DOCS / "screenshot-history.png")
    dialog.close()
    for window in windows:
        window.close()
    for core in cores:
        await core.close()


def _save(widgets: list[QWidget] | list[MainWindow], path: Path) -> None:
    _save_picture(list(widgets), path)
    print(f"saved {path}", flush=True)


def main() -> int:
    """Run the scenario against a fresh demo server."""
    app = QApplication(sys.argv[:1])
    app.setStyle("Fusion")
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
