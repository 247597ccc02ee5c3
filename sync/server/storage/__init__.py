"""Storage engines of the reference server: the only package that imports a database driver.

The engine is chosen by the ``--db`` value: a ``postgresql://`` URL selects Postgres
(``storage.postgres``), anything else is a path to a SQLite file (``storage.sqlite``).
Callers never import ``sqlite3``, ``asyncpg`` or ``psycopg`` themselves (an import-linter
contract in pyproject.toml), and they ask an engine what it can do instead of testing
which one it is.

- ``storage.base``: the contract (``Engine``) and what an engine declares
  (``Capabilities``); ``storage.records``: the engine-neutral records.
- ``storage.sqlite``: the embedded default (``engine.SqliteEngine`` over ``store.py``),
  ``backup.py`` (online backup), ``migrate.py``.
- ``storage.postgres``: ``engine.PostgresEngine`` and its parts, the Postgres bus
  (``LISTEN``/``NOTIFY`` signals between nodes, sync/server/bus.py), here because it holds
  driver connections.
- ``storage.copy``: a SQLite server's data into Postgres.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import Engine

__all__ = ["is_postgres_url", "open_engine"]

_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(value: str) -> bool:
    """Whether a ``--db`` value names a Postgres database (else: a SQLite file path)."""
    return value.strip().lower().startswith(_SCHEMES)



def open_engine(location: Path | str, *, node_id: str = "", max_batch: int = 2000) -> Engine:
    """The engine for a ``--db`` value: Postgres for a URL, else SQLite (not started)."""
    if isinstance(location, str) and is_postgres_url(location):
        from .postgres.engine import PostgresEngine

        return PostgresEngine(location, node_id=node_id, max_batch=max_batch)
    from .sqlite.engine import SqliteEngine

    return SqliteEngine(Path(location), max_batch=max_batch)
