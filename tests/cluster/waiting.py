"""Waiting for a condition under a timeout (never sleeping as synchronisation)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable

__all__ = ["eventually", "scaled"]

TIMEOUT_SCALE = float(os.environ.get("LIVEEDIT_TIMEOUT_SCALE", "1"))


def scaled(seconds: float) -> float:
    """A timeout scaled for this machine (``LIVEEDIT_TIMEOUT_SCALE``)."""
    return seconds * TIMEOUT_SCALE


async def eventually(condition: Callable[[], object], timeout: float = 10.0,
                     what: str = "the condition") -> None:
    """Return once ``condition()`` is true; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + scaled(timeout)
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {scaled(timeout):g} s waiting for {what}")
        await asyncio.sleep(0.02)  # polling the condition, under the deadline
