"""``liveedit server migrate`` on a real Postgres database."""

from __future__ import annotations

import subprocess
import sys

from .pg import PostgresCluster
from .waiting import scaled


def _server(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "liveedit", "server", *args],
                          capture_output=True, text=True, timeout=scaled(60), check=False)


def test_migrate_creates_the_schema_once(pg_cluster: PostgresCluster, pg_dsn: str) -> None:
    """The first migrate creates the tables, the second finds nothing to do."""
    first = _server("migrate", "--db", pg_dsn)
    assert first.returncode == 0, first.stderr
    assert "ran 1 migration" in first.stdout
    again = _server("migrate", "--db", pg_dsn)
    assert again.returncode == 0 and "already up to date" in again.stdout
    tables = set(pg_cluster.psql(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'",
        pg_dsn.rsplit("/", 1)[1]).split())
    assert {"updates", "notifications", "snapshots", "directory", "schema_version"} <= tables


def test_backup_of_a_postgres_url_names_pg_dump(pg_dsn: str) -> None:
    """backup with a URL is refused with one line naming pg_dump, and exit 2."""
    refused = _server("backup", "--db", pg_dsn, "out.db")
    assert refused.returncode == 2
    assert "pg_dump" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
