"""``liveedit server copy``: a SQLite server's data into Postgres, identities kept."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx

from tests.integration.conftest import ServerHandle

from .pg import PostgresCluster
from .waiting import scaled


def _server(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "liveedit", "server", *args],
                          capture_output=True, text=True, timeout=scaled(60), check=False)


def test_copy_keeps_sequence_numbers_accounts_and_directory(
    tmp_path: Path, pg_cluster: PostgresCluster, pg_dsn: str
) -> None:
    """Every log row, account, token and directory row arrives with its id; a rerun is refused."""
    server = ServerHandle(tmp_path / "server.db")
    server.start()
    try:
        server.add_user("alex")
        token = server.token("alex")
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=server.http_url, headers=headers, timeout=scaled(10)) as http:
            ids = [http.post("/customers", json={"name": f"Customer {i}"}).json()["id"]
                   for i in range(3)]
            patched = http.patch(f"/customers/{ids[0]}", json={"name": "Renamed"})
            assert patched.status_code == 200, patched.text
        busy = _server("copy", "--from", str(server.db_path), "--to", pg_dsn)
        assert busy.returncode == 2 and "another Live Edit server" in busy.stderr
    finally:
        server.stop()

    done = _server("copy", "--from", str(server.db_path), "--to", pg_dsn)
    assert done.returncode == 0, done.stderr
    assert "3 customers, 1 accounts" in done.stdout

    dbname = pg_dsn.rsplit("/", 1)[1]
    with sqlite3.connect(server.db_path) as lite:
        log = lite.execute("SELECT seq, doc_id, author, hex(data) FROM updates ORDER BY seq")
        expected_log = "\n".join("|".join(str(v) for v in row) for row in log)
        user = lite.execute("SELECT id, username, password_hash FROM users").fetchone()
        head = lite.execute("SELECT MAX(seq) FROM updates").fetchone()[0]
    copied_log = pg_cluster.psql(
        "SELECT seq, doc_id, author, upper(encode(data, 'hex')) FROM updates ORDER BY seq",
        dbname)
    assert copied_log == expected_log
    assert pg_cluster.psql("SELECT id, username, password_hash FROM users", dbname) == \
        "|".join(str(v) for v in user)
    assert pg_cluster.psql("SELECT seq FROM log_head", dbname) == str(head)
    assert pg_cluster.psql("SELECT count(*) FROM refresh_tokens", dbname) == "1"
    assert pg_cluster.psql("SELECT count(*) FROM meta", dbname) != "0"
    names = pg_cluster.psql("SELECT name FROM directory ORDER BY name", dbname).splitlines()
    assert names == ["Customer 1", "Customer 2", "Renamed"]
    assert pg_cluster.psql(f"SELECT cursor FROM directory WHERE customer_id = '{ids[0]}'",
                           dbname) == str(head)

    again = _server("copy", "--from", str(server.db_path), "--to", pg_dsn)
    assert again.returncode == 2 and "not empty" in again.stderr
