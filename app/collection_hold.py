"""Hold the app's cycle collection while a worker thread builds something large.

The desktop app collects garbage on the UI thread (``ui/gc_guard.py``: the young generation
every half second). A collection visits every container allocated since the last one,
whichever thread made it: while a first directory sync moves 100,000 rows in a worker
thread, one such pass over the move's columns took 50-70 ms, a frozen window. The move
therefore runs under :func:`hold_collection`, and the collector skips its passes while
:func:`collection_held` says so; its next pass, after the move, finds the move's containers
freed (reference counting frees them; they hold no cycles).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["collection_held", "hold_collection"]

class _Holds:
    """How many holds are open (a lock: workers open and close them)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.count = 0


_HOLDS = _Holds()


@contextmanager
def hold_collection() -> Iterator[None]:
    """While inside, :func:`collection_held` is true (nests; any thread)."""
    with _HOLDS.lock:
        _HOLDS.count += 1
    try:
        yield
    finally:
        with _HOLDS.lock:
            _HOLDS.count -= 1


def collection_held() -> bool:
    """Whether a worker asked the collector to wait."""
    return _HOLDS.count > 0
