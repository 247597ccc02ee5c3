"""The desktop app's entry point: ``liveedit`` with no subcommand.

``liveedit [--data-dir DIR] [--server URL] [--user NAME]`` opens the profile in DIR
(default: the platform's user data folder, ``liveedit/profile``), asks the rep to sign in
(or opens offline), then shows the main window until the rep quits. Qt and asyncio share
one qasync loop; on quit the connection and the replica are closed cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

import platformdirs
import qasync
from PySide6.QtWidgets import QApplication, QMessageBox

from app.core import ClientCore
from app.errors import CoreError

from .app_icon import app_icon
from .gc_guard import GuiThreadCollector

__all__ = ["main", "run_window"]

log = logging.getLogger(__name__)


def default_data_dir() -> Path:
    """Where the rep's profile (replica) lives by default."""
    return Path(platformdirs.user_data_dir("liveedit")) / "profile"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="liveedit", description="Live Edit desktop app")
    parser.add_argument("--data-dir", type=Path, default=None, metavar="DIR",
                        help=f"the profile folder (default: {default_data_dir()})")
    parser.add_argument("--server", metavar="URL", help="server address to sign in to")
    parser.add_argument("--user", metavar="NAME", help="user name to sign in as")
    return parser


def _application() -> QApplication:
    """The QApplication: Fusion style, palette from the system (light or dark)."""
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(sys.argv[:1])
    app.setOrganizationName("LiveEdit")
    app.setApplicationName("Live Edit")
    app.setApplicationDisplayName("Live Edit")
    app.setStyle("Fusion")  # the platform theme's palette still applies
    app.setWindowIcon(app_icon())
    return app


async def run_window(core: ClientCore, *, notice: str | None = None) -> None:
    """Show the main window for a signed-in (or offline) profile until it is closed."""
    from .bridge import CoreBridge
    from .main_window import MainWindow
    from .tasks import cancel_all

    bridge = CoreBridge(core)
    window = MainWindow(core, bridge)
    closed = asyncio.Event()
    window.closed.connect(closed.set)
    window.show()
    if notice:
        window.show_notice(notice)
    try:
        await window.start()
        await closed.wait()
    finally:
        await cancel_all()
        bridge.close()
        window.deleteLater()


async def _session(app: QApplication, core: ClientCore, server: str | None,
                   user: str | None) -> int:
    from .signin import Outcome, SignInDialog

    dialog = SignInDialog(core, server_url=server, user=user)
    dialog.show()
    outcome = await dialog.result_ready()
    notice = dialog.notice
    dialog.deleteLater()
    if outcome is Outcome.CANCELLED:
        return 0
    quitting = asyncio.create_task(_quit_requested(app))
    try:
        await asyncio.wait([asyncio.create_task(run_window(core, notice=notice)), quitting],
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        quitting.cancel()
    return 0


async def _quit_requested(app: QApplication) -> None:
    """Returns when the application is asked to quit (e.g. from the OS menu)."""
    event = asyncio.Event()
    app.aboutToQuit.connect(event.set)
    await event.wait()


def main(argv: list[str]) -> int:
    """Run the desktop app; returns the exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app = _application()
    data_dir = args.data_dir or default_data_dir()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        core = ClientCore.open(data_dir)
    except (CoreError, OSError) as exc:
        log.error("cannot open the profile in %s: %s", data_dir, exc)
        QMessageBox.critical(None, "Live Edit", f"Live Edit cannot open {data_dir}:\n{exc}")
        return 1
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    app.setQuitOnLastWindowClosed(False)  # the session decides when to stop
    collector = GuiThreadCollector(app)
    with loop:
        code: int = loop.run_until_complete(_run(app, core, args.server, args.user))
    collector.stop()
    return code


async def _run(app: QApplication, core: ClientCore, server: str | None,
               user: str | None) -> int:
    """The whole session; the core is closed (connection, replica) however it ends."""
    try:
        return await _session(app, core, server, user)
    finally:
        await core.close()
