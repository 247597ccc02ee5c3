"""Collect Python garbage on the GUI thread only.

Qt objects must be destroyed on the thread that owns them. Python's cycle collector runs on
whichever thread happens to allocate when a threshold is crossed: with the asyncio
executor's worker threads (directory sync, ``asyncio.to_thread``) that can be a worker,
which then frees widgets whose timers still fire: a crash. So the automatic collector is
off while the app runs, and a timer on the GUI thread collects instead (generation 0 often,
a full pass now and then). Reference counting still frees everything not in a cycle at once.
A pass is skipped while a worker builds something large (``app.collection_hold``).
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

from app.collection_hold import collection_held

__all__ = ["GuiThreadCollector"]

#: How often the young generation is collected, and every how many ticks a full pass runs.
TICK_MS = 500
FULL_EVERY = 60


class GuiThreadCollector(QObject):
    """Owns the collection schedule; ``stop()`` restores the automatic collector."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._ticks = 0
        self._was_enabled = gc.isenabled()
        gc.disable()
        self._timer = QTimer(self)
        self._timer.setInterval(TICK_MS)
        self._timer.timeout.connect(self._tick)
        self._timer.start()

    def _tick(self) -> None:
        if collection_held():
            return
        self._ticks += 1
        gc.collect(2 if self._ticks % FULL_EVERY == 0 else 0)

    def stop(self) -> None:
        """Back to Python's automatic collector (after a last full pass here)."""
        self._timer.stop()
        gc.collect()
        if self._was_enabled:
            gc.enable()
