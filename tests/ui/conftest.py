"""UI test harness: pytest-qt offscreen, with the asyncio network on a qasync loop.

A UI test is a plain function taking ``ui_loop``; it runs its async body with
``ui_loop.run(body())``. Inside, Qt events and asyncio callbacks run on the same loop, so
waiting is ``await eventually(condition)`` (never ``qtbot.wait``, which would nest event
loops). The real server fixtures come from the integration tests.
"""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
import qasync
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from tests.integration.conftest import (  # noqa: F401 - fixtures
    _memory_keyring,
    db_engine,
    server,
    server_factory,
)
from ui.tasks import set_error_sink

T = TypeVar("T")


class UiLoop:
    """A qasync event loop bound to the test's QApplication."""

    def __init__(self, app: QApplication) -> None:
        self.loop = qasync.QEventLoop(app)
        asyncio.set_event_loop(self.loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        """Run an async test body to completion (with a timeout)."""
        return self.loop.run_until_complete(asyncio.wait_for(coro, timeout))

    def close(self) -> None:
        """Cancel what is left and close the loop."""
        pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self.loop.close()
        asyncio.set_event_loop(None)


@pytest.fixture(autouse=True)
def _collect_on_the_gui_thread() -> Iterator[None]:
    """Qt objects must die on the GUI thread: no cyclic GC in the loop's worker threads
    (ui.gc_guard does the same in the app)."""
    gc.collect()
    gc.disable()
    yield
    gc.enable()
    gc.collect()


@pytest.fixture
def ui_loop(qapp: QApplication) -> Iterator[UiLoop]:
    """A qasync loop for this test."""
    loop = UiLoop(qapp)
    yield loop
    loop.close()


@pytest.fixture
def keep_running(qapp: QApplication) -> Iterator[None]:
    """Closing a shown window must not quit the app (and stop the loop) mid-test; the
    desktop app sets the same."""
    before = qapp.quitOnLastWindowClosed()
    qapp.setQuitOnLastWindowClosed(False)
    yield
    qapp.setQuitOnLastWindowClosed(before)


@pytest.fixture
def settings(tmp_path: Path) -> QSettings:
    """Window settings in a temp file, never the rep's own."""
    return QSettings(str(tmp_path / "window.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def errors() -> Iterator[list[str]]:
    """Whatever reaches the app's one error area during the test."""
    seen: list[str] = []

    def sink(message: str, _details: str = "") -> None:
        seen.append(message)

    set_error_sink(sink)
    yield seen
    set_error_sink(None)
