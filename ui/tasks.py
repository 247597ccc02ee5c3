"""Running coroutines from Qt code, and the one place errors go.

Qt slots are plain functions; the core's API is async. :func:`spawn` starts a coroutine on
the running (qasync) loop, keeps a reference until it finishes (a task nobody references
may be garbage-collected mid-flight), and sends any exception it raises to the error sink.
The main window installs its status-bar error area as the sink with
:func:`set_error_sink`; before there is one, errors go to a message box. Nothing is
swallowed: every error is also logged with its traceback.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from app.errors import CoreError

__all__ = [
    "ErrorSink", "cancel_all", "error_sink", "pending", "report_error", "set_error_sink", "spawn",
    "user_message",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: ``sink(message, details)``: shows an error to the rep; ``details`` may be empty.
ErrorSink = Callable[[str, str], None]

_sink: ErrorSink | None = None
_running: set[asyncio.Task[Any]] = set()


def set_error_sink(sink: ErrorSink | None) -> None:
    """Route errors to ``sink`` from now on (None: back to the fallback message box)."""
    global _sink  # noqa: PLW0603 (one sink per process, by design)
    _sink = sink


def error_sink() -> ErrorSink | None:
    """The sink errors go to now (None: the fallback message box)."""
    return _sink


def report_error(message: str, details: str = "") -> None:
    """Show an error in the one place errors are shown."""
    if _sink is not None:
        _sink(message, details)
        return
    _fallback(message, details)


def _fallback(message: str, details: str) -> None:
    """Before the main window exists: a non-modal message box (never a nested loop)."""
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication, QMessageBox

    if QApplication.instance() is None:
        log.error("%s", message)
        return
    box = QMessageBox(QMessageBox.Icon.Warning, "Live Edit", message)
    box.setDetailedText(details)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()


def user_message(exc: BaseException) -> str:
    """What to tell the rep about ``exc``: core errors are written for people already."""
    if isinstance(exc, CoreError):
        return str(exc)
    return f"Something went wrong: {exc or type(exc).__name__}"


def spawn(coro: Coroutine[Any, Any, T], *, what: str = "") -> asyncio.Task[T]:
    """Run ``coro`` on the loop; its exception (if any) is logged and reported.

    ``what`` names the job for the log ("sync now"). Returns the task, which callers may
    await or cancel; cancelling is not an error.
    """
    task = asyncio.ensure_future(coro)
    _running.add(task)
    task.add_done_callback(lambda t: _finished(t, what or _name(coro)))
    return task


def _name(coro: Coroutine[Any, Any, Any]) -> str:
    return getattr(coro, "__qualname__", repr(coro))


def _finished(task: asyncio.Task[Any], what: str) -> None:
    _running.discard(task)
    if task.cancelled():
        return
    exc = task.exception()
    if exc is None:
        return
    log.error("%s failed", what, exc_info=exc)
    details = "".join(traceback.format_exception(exc))
    report_error(user_message(exc), details)


def pending() -> int:
    """How many spawned tasks are still running (for tests and shutdown)."""
    return len(_running)


async def cancel_all() -> None:
    """Cancel every spawned task and wait for them (at shutdown)."""
    tasks = list(_running)
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)

