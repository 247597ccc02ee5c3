"""Operating a node: /healthz, /readyz, Prometheus metrics, online backup and restore."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from .conftest import ServerHandle, both_engines, scaled


def _rep(server: ServerHandle) -> httpx.Client:
    server.add_user("alex")
    token = server.token("alex")
    return httpx.Client(base_url=server.http_url, timeout=scaled(10),
                        headers={"Authorization": f"Bearer {token}"})


def _create(http: httpx.Client, name: str) -> str:
    response = http.post("/customers", json={"name": name})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _metrics_url(server: ServerHandle) -> str:
    deadline = time.monotonic() + scaled(10)
    while time.monotonic() < deadline:
        for line in list(server.output):
            if line.startswith("metrics on "):
                return line.removeprefix("metrics on ").strip()
        time.sleep(0.02)  # polling the server's output, under a deadline
    raise AssertionError("the server never said where its metrics are:\n"
                         + "\n".join(server.output[-20:]))


def _scrape(url: str) -> dict[str, float]:
    text = httpx.get(url, timeout=scaled(10)).text
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.labels or sample.labels.get("le") == "+Inf"
    }


@both_engines
def test_a_serving_node_is_alive_and_ready(server: ServerHandle) -> None:
    """/healthz says alive and /readyz 200 with the database and bus checks passing."""
    assert httpx.get(f"{server.http_url}/healthz").status_code == 200
    response = httpx.get(f"{server.http_url}/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "bus": "ok"}}


@both_engines
def test_metrics_count_changes_on_a_private_port_only(server_factory: Any) -> None:
    """Metrics live on their own port and count accepted and acked updates and commits."""
    server = server_factory("--metrics-port", "0")
    url = _metrics_url(server)
    assert not url.startswith(server.http_url)
    assert httpx.get(f"{server.http_url}/metrics").status_code == 404
    before = _scrape(url)
    assert before["liveedit_updates_accepted_total"] == 0
    http = _rep(server)
    for i in range(3):
        _create(http, f"Customer {i}")
    after = _scrape(url)
    assert after["liveedit_updates_accepted_total"] >= 3
    assert after["liveedit_updates_acked_total"] >= 3
    assert after["liveedit_commit_seconds_count"] >= 1
    assert after["liveedit_bus_listening"] == 1
    assert after["liveedit_connections"] == 0
    assert "liveedit_refused_connections_total" in after


def test_backup_while_serving_then_restore(server: ServerHandle, tmp_path: Path) -> None:
    """A backup taken while writes go on is consistent, and restoring it brings it back."""
    http = _rep(server)
    first = [_create(http, f"Before {i}") for i in range(10)]
    stop = threading.Event()
    during: list[str] = []

    def keep_writing() -> None:
        with httpx.Client(base_url=server.http_url, timeout=scaled(10),
                          headers=dict(http.headers)) as writer:
            while not stop.is_set():
                during.append(_create(writer, f"During {len(during)}"))

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        while len(during) < 3:
            time.sleep(0.01)  # waiting for the writer to be busy, under the join below
        out = tmp_path / "backup.db"
        done = subprocess.run(
            [sys.executable, "-m", "liveedit", "server", "backup", "--db",
             str(server.db_path), str(out)], capture_output=True, text=True,
            timeout=scaled(60), check=False,
        )
    finally:
        stop.set()
        writer.join(scaled(30))
    assert done.returncode == 0, done.stderr
    assert f"to {out}" in done.stdout
    with sqlite3.connect(out) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        seqs = [r[0] for r in conn.execute("SELECT seq FROM updates ORDER BY seq")]
    assert seqs == list(range(1, len(seqs) + 1)), "a consistent prefix of the log"
    assert len(seqs) >= len(first) + 3
    assert not list(tmp_path.glob(".backup.db.partial*"))

    server.stop()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{server.db_path}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(out, server.db_path)
    server.restart()
    token = server.token("alex")
    listed = httpx.get(f"{server.http_url}/customers", params={"limit": 500},
                       headers={"Authorization": f"Bearer {token}"}, timeout=scaled(10))
    ids = {c["id"] for c in listed.json()["items"]}
    assert set(first) <= ids
    assert len(ids) == len(seqs)


def test_backup_refuses_what_it_cannot_do(server: ServerHandle, tmp_path: Path) -> None:
    """An existing OUT, a missing database or a non-database get a one-line error, exit 2/1."""
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "liveedit", "server", "backup", *args],
                              capture_output=True, text=True, timeout=scaled(60), check=False)

    existing = tmp_path / "taken.db"
    existing.write_text("keep me")
    taken = run("--db", str(server.db_path), str(existing))
    assert taken.returncode == 2 and "already exists" in taken.stderr
    assert existing.read_text() == "keep me"
    missing = run("--db", str(tmp_path / "nope.db"), str(tmp_path / "x.db"))
    assert missing.returncode == 2 and "no such database file" in missing.stderr
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    bad = run("--db", str(junk), str(tmp_path / "y.db"))
    assert bad.returncode == 1 and "not a SQLite database" in bad.stderr
    assert not (tmp_path / "y.db").exists()
