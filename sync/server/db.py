"""Where the server's SQLite database module was: it is now the SQLite engine's.

Everything here is :mod:`sync.server.storage.sqlite.db` (schema, migrations, connections,
the ``Database`` of the account and token services). This module keeps the old import
path working while the rest of the server moves to the storage interface (issue 12). It
imports no database driver.
"""

from __future__ import annotations

from .storage.sqlite.db import (
    DIRECTORY,
    MIGRATIONS,
    SCHEMA_VERSION,
    Connection,
    Database,
    IntegrityError,
    connect,
    migrate,
)

__all__ = [
    "DIRECTORY", "MIGRATIONS", "SCHEMA_VERSION", "Connection", "Database", "IntegrityError",
    "connect", "migrate",
]
