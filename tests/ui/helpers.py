"""What the UI tests against the real server share: signed-in cores, a customer two reps
hold, and a main window built the way the app builds it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings

from app.core import ClientCore
from tests.integration.conftest import DEFAULT_PASSWORD, ServerHandle, scaled
from tests.integration.wire import eventually
from ui.activity import ActivityDock
from ui.bridge import CoreBridge
from ui.main_window import MainWindow
from ui.signin import sign_in

#: Quick reconnects, so a restarted server is found within a second or two.
FAST = {"backoff_initial": 0.1, "backoff_max": 1.0}


@asynccontextmanager
async def registered_core(server: ServerHandle, folder: Path,
                          user: str) -> AsyncIterator[ClientCore]:
    """A core in ``folder / user`` for ``user`` (created on the server), not signed in;
    closed at the end."""
    server.add_user(user)
    core = ClientCore.open(folder / user)
    try:
        yield core
    finally:
        await core.close()


@asynccontextmanager
async def signed_in(server: ServerHandle, folder: Path, user: str) -> AsyncIterator[ClientCore]:
    """A core signed in as ``user`` (created on the server), connected; closed at the end."""
    async with registered_core(server, folder, user) as core:
        await sign_in(core, server.http_url, user, DEFAULT_PASSWORD, remember=False)
        await core.connect(**FAST)
        yield core


async def shared_customer(a: ClientCore, b: ClientCore, name: str = "John Smith") -> str:
    """A customer created by ``a`` and opened (followed, synced) by ``b``."""
    cid = await a.create_customer({"name": name, "city": "Boston"})
    await a.sync(scaled(20))
    # b learns of it from the live directory feed, which may trail b's own "in sync".
    await eventually(lambda: cid in {row.customer_id for row in b.search(name)})
    await b.open_customer(cid)
    await b.sync(scaled(20))
    return cid


def main_window(core: ClientCore, settings: QSettings, qtbot: Any,
                *, show: bool = True) -> tuple[MainWindow, CoreBridge]:
    """The app's main window on ``core`` and its bridge (the test closes both), owned by
    ``qtbot``; shown unless ``show`` is False."""
    bridge = CoreBridge(core)
    window = MainWindow(core, bridge, settings=settings)
    qtbot.addWidget(window)
    if show:
        window.show()
    return window, bridge


def activity_dock(core: ClientCore, qtbot: Any) -> tuple[ActivityDock, CoreBridge]:
    """An activity dock on ``core`` and its bridge (the test closes the bridge), owned by
    ``qtbot``."""
    bridge = CoreBridge(core)
    dock = ActivityDock(core, bridge)
    qtbot.addWidget(dock)
    return dock, bridge
