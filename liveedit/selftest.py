"""``liveedit --self-test``: prove an installed (frozen) build works end to end.

Starts the bundled server in-process on a free loopback port (a temp database), opens the
main window offscreen, signs in two in-process clients, syncs one edit from one to the
other and checks the window shows it. Prints each check; exits 0 when all passed, 1 with
the failing check otherwise. Touches no user data (temp folders, nothing in the keyring).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["main"]

_PASSWORD = "self-test password"  # noqa: S105 - throwaway accounts in a temp database


class SelfTestFailed(Exception):
    """A check did not hold; the message says which."""


def _say(text: str) -> None:
    print(f"  ok  {text}", flush=True)


def _start_server(folder: Path) -> tuple[Any, threading.Thread, str]:
    """The reference server on a thread of this process; returns (server, thread, url)."""
    from sync.server.app import _Server, create_app, uvicorn_config
    from sync.server.auth import AuthService, Role
    from sync.server.config import ServerConfig

    db = folder / "server.db"
    with AuthService(db) as auth:
        auth.add_user("selftest-a", _PASSWORD, Role.REP)
        auth.add_user("selftest-b", _PASSWORD, Role.REP)
    config = ServerConfig(db_path=db, port=0)
    ready = threading.Event()
    urls: list[str] = []

    def on_ready(url: str) -> None:
        urls.append(url)
        ready.set()

    server = _Server(uvicorn_config(create_app(config), config), on_ready)
    thread = threading.Thread(target=server.run, name="selftest-server", daemon=True)
    thread.start()
    if not ready.wait(30):
        raise SelfTestFailed("the bundled server did not start within 30 s")
    return server, thread, urls[0]


async def _until(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SelfTestFailed(f"timed out waiting until {what}")
        await asyncio.sleep(0.05)


async def _scenario(folder: Path, url: str) -> None:
    from app.core import ClientCore
    from ui.bridge import CoreBridge
    from ui.main_window import MainWindow

    a = ClientCore.open(folder / "client-a")
    b = ClientCore.open(folder / "client-b")
    window = None
    try:
        await a.login(url, "selftest-a", _PASSWORD, remember=False)
        await b.login(url, "selftest-b", _PASSWORD, remember=False)
        _say("two clients signed in")
        from PySide6.QtCore import QSettings
        from PySide6.QtWidgets import QLineEdit

        settings = QSettings(str(folder / "window.ini"), QSettings.Format.IniFormat)
        window = MainWindow(b, CoreBridge(b), settings=settings)
        window.show()
        await window.start()
        _say("main window opened (offscreen)")
        customer = await a.create_customer({"name": "Self Test", "city": "Before"})
        await a.sync(30)
        await b.sync(30)
        window.show_customer(customer)
        await _until(lambda: window.customer_view.current_customer() == customer,
                     "the window shows the customer")
        started = time.perf_counter()
        await a.set_fields(customer, {"city": "After"})
        city = window.customer_view.fields["city"].editor
        assert isinstance(city, QLineEdit)
        await _until(lambda: city.text() == "After", "the edit reaches the other client's window")
        _say(f"an edit synced between the two clients in "
             f"{(time.perf_counter() - started) * 1000:.0f} ms and shows in the window")
        await a.sync(30)
        if a.outbox():
            raise SelfTestFailed("the sender's outbox did not empty")
        _say("the server acknowledged the edit (outbox empty)")
    finally:
        if window is not None:
            window.close()
        await a.close()
        await b.close()


def main(argv: list[str] | None = None) -> int:
    """Run the self-test; returns the exit code."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import qasync
    from PySide6.QtWidgets import QApplication

    from liveedit import __version__

    print(f"Live Edit {__version__} self-test", flush=True)
    with tempfile.TemporaryDirectory(prefix="liveedit-selftest-") as tmp:
        folder = Path(tmp)
        server = thread = None
        try:
            server, thread, url = _start_server(folder)
            _say(f"bundled server listening on {url}")
            app = QApplication.instance() or QApplication(sys.argv[:1])
            assert isinstance(app, QApplication)
            app.setQuitOnLastWindowClosed(False)
            loop = qasync.QEventLoop(app)
            asyncio.set_event_loop(loop)
            with loop:
                loop.run_until_complete(asyncio.wait_for(_scenario(folder, url), 120))
        except (SelfTestFailed, TimeoutError, OSError) as exc:
            print(f"  FAILED  {exc}", file=sys.stderr, flush=True)
            return 1
        finally:
            if server is not None and thread is not None:
                server.should_exit = True
                thread.join(15)
    print("self-test passed", flush=True)
    return 0
