"""``liveedit server migrate`` on a SQLite file: bring its schema up to date."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ...errors import DatabaseError
from . import db

__all__ = ["migrate_file"]


def _version(path: Path) -> int:
    if not path.exists():
        return 0
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            return int(conn.execute("PRAGMA user_version").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise DatabaseError(f"cannot use database {path}: {exc}") from exc


def migrate_file(path: Path) -> tuple[int, int]:
    """Migrate the server database at ``path`` (created if missing); returns (migrations
    run, schema version). The directory's derived columns follow the field table too."""
    before = _version(Path(path))
    db.connect(path).close()
    return max(0, db.SCHEMA_VERSION - before), db.SCHEMA_VERSION
