"""The server lock: one process at a time hands out sequence numbers for a database.

``liveedit server serve`` holds it while running; ``import`` and ``demo-data`` take it for
their run. A second holder gets a clear error instead of corrupting the sequence.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from .errors import ConfigError

__all__ = ["server_lock"]


@contextmanager
def server_lock(db_path: Path, *, purpose: str) -> Iterator[None]:
    """Hold the database's server lock, or raise ConfigError at once if another has it."""
    db_path = Path(db_path)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(f"{db_path}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout as exc:
        raise ConfigError(
            f"cannot {purpose}: another Live Edit server or import is using {db_path}; "
            "stop it first (to add customers while it runs, use POST /customers)"
        ) from exc
    try:
        yield
    finally:
        lock.release()
