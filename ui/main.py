"""The desktop app's entry point: ``liveedit`` with no subcommand.

``liveedit [--data-dir DIR] [--server URL] [--user NAME]`` opens the profile in DIR
(default: the platform's user data folder, ``liveedit/profile``). With a remembered
sign-in (a refresh token in the OS keyring) it opens straight into the main window;
otherwise it asks the rep to sign in (or opens offline). File > Sign out comes back to
the sign-in dialog; File > Switch server or account signs in elsewhere, in a profile
folder of its own beside DIR (``DIR-<user>@<host>``: replicas of different accounts never
mix), remembered as the one to open next time.

One app runs per profile folder: a second launch on the same DIR brings the running
window forward and exits (:mod:`ui.single_instance`). Qt and asyncio share one qasync
loop; on quit the connection and the replica are closed cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

import platformdirs
import qasync
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication, QMessageBox

from app.core import ClientCore
from app.errors import CoreError

from .app_icon import app_icon
from .gc_guard import GuiThreadCollector
from .single_instance import SingleInstance
from .theme import apply_theme, saved_theme

__all__ = ["SIGNED_OUT", "SWITCH", "main", "profile_for", "run_window"]

log = logging.getLogger(__name__)

#: How a window ended, besides quitting: File > Sign out / Switch server or account.
SIGNED_OUT, SWITCH = "signed-out", "switch"
_LAST_PROFILE = "session/lastProfile"


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


def profile_for(base: Path, server_url: str, user: str) -> Path:
    """The profile folder of another account than ``base``'s: ``base-<user>@<host>``."""
    from urllib.parse import urlsplit

    parts = urlsplit(server_url)
    host = (parts.hostname or "server") + (f"_{parts.port}" if parts.port else "")
    slug = "".join(c if c.isalnum() or c in "._-" else "_" for c in f"{user}@{host}")
    return base.with_name(f"{base.name}-{slug}")


def _settings() -> QSettings:
    return QSettings("LiveEdit", "Live Edit")


def _application() -> QApplication:
    """The QApplication: Fusion style, the theme the rep chose (system, light, dark)."""
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(sys.argv[:1])
    app.setOrganizationName("LiveEdit")
    app.setApplicationName("Live Edit")
    app.setApplicationDisplayName("Live Edit")
    apply_theme(app, saved_theme(_settings()))
    app.setWindowIcon(app_icon())
    return app


async def run_window(core: ClientCore, *, notice: str | None = None,
                     guard: SingleInstance | None = None) -> str | None:
    """Show the main window for a signed-in (or offline) profile until it is closed;
    returns :data:`SIGNED_OUT` or :data:`SWITCH` when the rep signed out, else None."""
    from .bridge import CoreBridge
    from .main_window import MainWindow
    from .tasks import cancel_all

    bridge = CoreBridge(core)
    window = MainWindow(core, bridge)
    closed = asyncio.Event()
    ending: list[str] = []
    window.closed.connect(closed.set)

    def sign_out(switch: bool) -> None:
        ending.append(SWITCH if switch else SIGNED_OUT)
        window.close()

    window.signOutRequested.connect(sign_out)
    if guard is not None:
        guard.activated.connect(window.bring_forward)
    window.show()
    if notice:
        window.show_notice(notice)
    try:
        await window.start()
        await closed.wait()
    finally:
        if guard is not None:
            guard.activated.disconnect(window.bring_forward)
        await cancel_all()
        bridge.close()
        window.deleteLater()
    return ending[0] if ending else None


async def _sign_out(core: ClientCore) -> None:
    """Forget the sign-in (server and keyring); the profile's data and queue stay."""
    from app.errors import NotSignedIn

    await core.disconnect()
    try:
        await core.authenticator().logout()
    except NotSignedIn:
        return


async def _session(app: QApplication, core: ClientCore, server: str | None,
                   user: str | None, *, guard: SingleInstance | None = None,
                   base: Path | None = None, folder: Path | None = None) -> int:
    """Sign in (unless remembered), run the window; after a sign-out, sign in again.
    ``base`` (the --data-dir) allows switching accounts into sibling profile folders;
    ``folder`` is where ``core`` lives."""
    from .signin import Outcome, SignInDialog, has_saved_sign_in

    settings = _settings()
    ask = not has_saved_sign_in(core)
    current = core
    cores: dict[Path, ClientCore] = {folder: core} if folder is not None else {}
    try:
        while True:
            notice: str | None = None
            if ask:
                dialog = SignInDialog(
                    current, server_url=server, user=user, settings=settings,
                    open_profile=(lambda url, name: _open_profile(base, url, name, cores))
                    if base is not None else None)
                dialog.show()
                outcome = await dialog.result_ready()
                notice = dialog.notice
                current = dialog.core
                dialog.deleteLater()
                if outcome is Outcome.CANCELLED:
                    return 0
            shown = next((f for f, c in cores.items() if c is current), None)
            if base is not None and shown is not None:
                settings.setValue(_LAST_PROFILE, str(shown))
            quitting = asyncio.create_task(_quit_requested(app))
            window = asyncio.create_task(run_window(current, notice=notice, guard=guard))
            try:
                await asyncio.wait([window, quitting], return_when=asyncio.FIRST_COMPLETED)
            finally:
                quitting.cancel()
            ending = window.result() if window.done() else None
            if ending is None:
                return 0
            await _sign_out(current)
            ask, user = True, None
            server = None if ending == SWITCH else current.server_url
    finally:
        for extra in cores.values():
            if extra is not core:
                await extra.close()


def _open_profile(base: Path | None, server_url: str, user: str,
                  cores: dict[Path, ClientCore]) -> ClientCore:
    """The profile of another account (opened once per session, closed at its end)."""
    assert base is not None
    for core in cores.values():
        if core.username == user and core.server_url == server_url:
            return core
    folder = profile_for(base, server_url, user)
    if folder not in cores:
        folder.mkdir(parents=True, exist_ok=True)
        cores[folder] = ClientCore.open(folder)
    return cores[folder]


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
    base = args.data_dir or default_data_dir()
    guard = SingleInstance(base)
    if not guard.acquire():
        log.info("Live Edit already runs on %s; brought it forward", base)
        return 0
    last = _settings().value(_LAST_PROFILE)
    data_dir = Path(last) if (isinstance(last, str) and args.data_dir is None
                              and Path(last).parent == base.parent
                              and Path(last).name.startswith(base.name)
                              and Path(last).is_dir()) else base
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        core = ClientCore.open(data_dir)
    except (CoreError, OSError) as exc:
        log.error("cannot open the profile in %s: %s", data_dir, exc)
        QMessageBox.critical(None, "Live Edit", f"Live Edit cannot open {data_dir}:\n{exc}")
        guard.release()
        return 1
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    app.setQuitOnLastWindowClosed(False)  # the session decides when to stop
    collector = GuiThreadCollector(app)
    with loop:
        code: int = loop.run_until_complete(_run(app, core, args.server, args.user,
                                                 guard=guard, base=base, folder=data_dir))
    collector.stop()
    guard.release()
    return code


async def _run(app: QApplication, core: ClientCore, server: str | None,
               user: str | None, *, guard: SingleInstance | None = None,
               base: Path | None = None, folder: Path | None = None) -> int:
    """The whole session; the core is closed (connection, replica) however it ends."""
    try:
        return await _session(app, core, server, user, guard=guard, base=base,
                              folder=folder)
    finally:
        await core.close()
