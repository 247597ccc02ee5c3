"""Three server nodes on one Postgres behind HAProxy, as the fault harness's "server".

:class:`ClusterServer` has what the harness uses of a
:class:`~tests.integration.conftest.ServerHandle` (``start``, ``add_user``, ``token``,
``port``, ``http_url``, ``kill``, ``restart``), so a run takes the cluster unchanged: the
fault proxy sits in front of HAProxy, and a "server kill" is, in turn, a SIGKILL of one node,
a crash of Postgres (every backend killed, crash recovery at restart), or every database
connection of the nodes cut (as a network fault between a node and Postgres would).
:meth:`shutdown` stops all of it and removes the Postgres folder.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.cluster.haproxy import HAProxy
from tests.cluster.pg import PostgresCluster
from tests.integration.conftest import DEFAULT_PASSWORD, ServerHandle, scaled

__all__ = ["ClusterServer"]

#: What a "server kill" does, in turn.
FAULTS = ("node", "postgres", "node", "connections")


class ClusterServer:
    """``nodes`` server processes on one throwaway Postgres database, behind HAProxy."""

    def __init__(self, extra_args: list[str], nodes: int = 3,
                 log_folder: Path | None = None) -> None:
        self.pg = PostgresCluster()
        self.log_folder = log_folder
        self.extra_args = extra_args
        self.count = nodes
        self.nodes: list[ServerHandle] = []
        self.proxy: HAProxy | None = None
        self.dbname = ""
        self.faults: list[str] = []
        self._kills = 0
        self._down: tuple[str, int] | None = None

    @property
    def port(self) -> int:
        """HAProxy's port (where the fault proxy sends its traffic)."""
        assert self.proxy is not None
        return self.proxy.port

    @property
    def http_url(self) -> str:
        """The HTTP API through HAProxy."""
        assert self.proxy is not None
        return self.proxy.http_url

    def start(self) -> None:
        """Postgres, a migrated database, the nodes, HAProxy with every node up."""
        self.pg.start()
        self.dbname = self.pg.create_database("faults")
        dsn = self.pg.dsn(self.dbname)
        migrated = subprocess.run(
            [sys.executable, "-m", "liveedit", "server", "migrate", "--db", dsn],
            capture_output=True, text=True, timeout=scaled(60), check=False)
        if migrated.returncode != 0:
            raise RuntimeError(f"migrate failed: {migrated.stderr}")
        self.nodes = [ServerHandle(dsn, [*self.extra_args, "--node-id", f"node{i + 1}"])
                      for i in range(self.count)]
        for node in self.nodes:
            node.start()
        self.proxy = HAProxy([("127.0.0.1", node.port) for node in self.nodes])
        self.proxy.start()
        self.proxy.wait_for({f"node{i + 1}": "UP" for i in range(self.count)},
                            timeout=scaled(30))

    def add_user(self, username: str) -> None:
        """Create a rep account in the shared database."""
        self.nodes[0].add_user(username)

    def token(self, username: str) -> str:
        """An access token, signed in through HAProxy (retried while a node is down)."""
        deadline = time.monotonic() + scaled(30)
        while True:
            try:
                response = httpx.post(
                    f"{self.http_url}/auth/login", timeout=scaled(10),
                    json={"username": username, "password": DEFAULT_PASSWORD})
                response.raise_for_status()
                return str(response.json()["access_token"])
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)  # a retry after a failed sign-in, under a deadline

    def kill(self) -> None:
        """The next fault of :data:`FAULTS` (undone by :meth:`restart`)."""
        fault = FAULTS[self._kills % len(FAULTS)]
        victim = self._kills % self.count
        self._kills += 1
        self.faults.append(fault)
        if fault == "node":
            self.nodes[victim].kill()
        elif fault == "postgres":
            self.pg.kill()
        else:
            self.pg.terminate_backends(self.dbname)
        self._down = (fault, victim)

    def restart(self) -> None:
        """Undo the last fault: start the node again, or Postgres."""
        if self._down is None:
            return
        fault, victim = self._down
        self._down = None
        if fault == "node":
            self.nodes[victim].restart()
        elif fault == "postgres":
            self.pg.start()

    def shutdown(self) -> None:
        """Stop HAProxy, the nodes and Postgres; remove Postgres' folder."""
        if self.proxy is not None:
            self.proxy.stop()
        for i, node in enumerate(self.nodes):
            node.kill()
            if self.log_folder is not None:
                (self.log_folder / f"node{i + 1}.log").write_text("\n".join(node.output))
        self.pg.remove()
