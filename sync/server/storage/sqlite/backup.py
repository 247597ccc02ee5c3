"""Online backup of a SQLite server database: consistent, while the server keeps serving.

``liveedit server backup --db PATH OUT`` copies the database with SQLite's backup API in
one step: the copy reads one snapshot of the database (WAL: the server's writer is never
blocked, and what it commits meanwhile is simply not in this backup). The copy goes to a
temporary file next to ``OUT``, is switched out of WAL mode (one self-contained file),
checked with ``PRAGMA integrity_check``, flushed to disk, and only then renamed to ``OUT``:
a backup interrupted at any point leaves no half-written ``OUT``.

Restore (docs/deploy.md): stop the server, move the database file and its ``-wal`` and
``-shm`` files away, copy the backup to the database path, start the server.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from ...errors import ConfigError, DatabaseError

__all__ = ["BackupResult", "backup"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BackupResult:
    """What a backup holds."""

    path: Path
    size: int
    schema_version: int
    updates: int
    last_seq: int
    users: int
    seconds: float


def backup(db_path: Path, out: Path) -> BackupResult:
    """Copy the server database ``db_path`` to the new file ``out`` (see the module doc).

    ConfigError for unusable paths (no database, ``out`` exists); DatabaseError when the
    file is not a Live Edit database or the copy fails its integrity check.
    """
    db_path, out = Path(db_path), Path(out)
    if not db_path.is_file():
        raise ConfigError(f"{db_path}: no such database file")
    if out.exists():
        raise ConfigError(f"{out} already exists; choose a new name (a backup never "
                          "overwrites a file)")
    if not out.parent.is_dir():
        raise ConfigError(f"{out.parent}: no such folder")
    if out.resolve() == db_path.resolve():
        raise ConfigError("the backup must go to another file than the database")
    started = time.monotonic()
    tmp = out.with_name(f".{out.name}.partial")
    try:
        source = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=rw", uri=True)
    except sqlite3.Error as exc:
        raise DatabaseError(f"cannot open {db_path}: {exc}") from exc
    try:
        source.execute("PRAGMA busy_timeout = 10000")
        version = _schema_version(source, db_path)
        tmp.unlink(missing_ok=True)
        target = sqlite3.connect(tmp)
        try:
            source.backup(target)  # pages=-1: the whole database from one snapshot
            target.execute("PRAGMA journal_mode = DELETE")
            check = target.execute("PRAGMA integrity_check").fetchone()[0]
            if check != "ok":
                raise DatabaseError(f"the backup of {db_path} failed its integrity check: "
                                    f"{check}")
            updates, last_seq = target.execute(
                "SELECT COUNT(*), COALESCE(MAX(seq), 0) FROM updates"
            ).fetchone()
            users = target.execute("SELECT COUNT(*) FROM users").fetchone()[0]
        finally:
            target.close()
        _fsync(tmp)
        os.replace(tmp, out)
        _fsync(out.parent)
    except sqlite3.Error as exc:
        raise DatabaseError(f"backing up {db_path} failed: {exc}") from exc
    finally:
        source.close()
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    result = BackupResult(out, out.stat().st_size, version, int(updates), int(last_seq),
                          int(users), time.monotonic() - started)
    log.info("backed up %s to %s: %d updates, %d bytes", db_path, out, result.updates,
             result.size)
    return result


def _schema_version(conn: sqlite3.Connection, path: Path) -> int:
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    except sqlite3.DatabaseError as exc:
        raise DatabaseError(f"{path} is not a SQLite database: {exc}") from exc
    if version < 1 or not {"updates", "users"} <= tables:
        raise DatabaseError(f"{path} is not a Live Edit server database")
    return version


def _fsync(path: Path) -> None:
    """Flush a file, or a folder's entries, to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
