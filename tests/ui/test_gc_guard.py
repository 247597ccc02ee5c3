"""The GUI-thread collector (ui.gc_guard) skips its passes while a worker holds them."""

from __future__ import annotations

import gc

from PySide6.QtWidgets import QApplication

from app.collection_hold import hold_collection
from ui.gc_guard import FULL_EVERY, GuiThreadCollector


def test_no_pass_runs_while_a_worker_holds_collection(qapp: QApplication) -> None:
    """A held tick collects nothing; the next free one does (gc.callbacks count passes)."""
    passes: list[int] = []

    def counted(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            passes.append(info["generation"])

    collector = GuiThreadCollector(qapp)
    gc.callbacks.append(counted)
    try:
        with hold_collection():
            for _ in range(FULL_EVERY + 1):
                collector._tick()
        assert passes == []
        collector._tick()
        assert passes == [0]
    finally:
        gc.callbacks.remove(counted)
        collector.stop()
        collector.deleteLater()
