"""HAProxy in front of server nodes, started from the sample config in docs/deploy/.

:class:`HAProxy` keeps ``docs/deploy/haproxy.cfg`` as it is and replaces only its
``server node…`` lines with the nodes a test runs. The listening socket is bound by the
test on 127.0.0.1 port 0 and handed to HAProxy as an inherited file descriptor
(``bind fd@N``), so its port is known without guessing a free one. The admin socket
(``show servers state``, ``disable server``) lets a test wait until HAProxy sees the nodes
healthy, or drain one.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from tests.integration.conftest import LocalEndpoint

__all__ = ["SAMPLE_CONFIG", "HAProxy", "HAProxyUnavailable", "find_haproxy"]

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_CONFIG = ROOT / "docs" / "deploy" / "haproxy.cfg"
_SERVER_LINE = re.compile(r"^(\s*)server node\d+ .*$", re.MULTILINE)


class HAProxyUnavailable(RuntimeError):
    """HAProxy is not installed on this machine."""


def find_haproxy() -> str:
    """Path of the haproxy binary (``LIVEEDIT_HAPROXY`` wins)."""
    path = os.environ.get("LIVEEDIT_HAPROXY") or shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").is_file() else None
    )
    if path is None:
        raise HAProxyUnavailable("haproxy not found (install the OS package 'haproxy')")
    return path


def render_config(nodes: Sequence[tuple[str, int]], sample: Path = SAMPLE_CONFIG) -> str:
    """The sample config with its ``server`` lines replaced by ``nodes`` (host, port)."""
    text = sample.read_text()
    found = list(_SERVER_LINE.finditer(text))
    if not found:
        raise ValueError(f"{sample} has no 'server nodeN' lines to replace")
    indent, words = found[0].group(1), found[0].group(0).split()
    options = " ".join(words[3:])  # what follows "server nodeN ADDRESS", e.g. "check"
    lines = "\n".join(
        f"{indent}server node{i} {host}:{port} {options}"
        for i, (host, port) in enumerate(nodes, start=1)
    )
    return text[:found[0].start()] + lines + text[found[-1].end():]


class HAProxy(LocalEndpoint):
    """One HAProxy process balancing over ``nodes`` (:attr:`http_url` and :attr:`ws_url`
    reach them through it); :meth:`stop` ends it."""

    def __init__(self, nodes: Sequence[tuple[str, int]]) -> None:
        self.binary = find_haproxy()
        self.nodes = list(nodes)
        self.dir = Path(tempfile.mkdtemp(prefix="liveedit-haproxy-"))
        self.config_path = self.dir / "haproxy.cfg"
        self.admin_socket = self.dir / "admin.sock"
        self.log_path = self.dir / "haproxy.log"
        self.config_path.write_text(render_config(self.nodes))
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(4096)
        self.port = int(self._listener.getsockname()[1])
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Run HAProxy in the foreground (a child of this process)."""
        fd = self._listener.fileno()
        env = {
            **os.environ,
            "LIVEEDIT_BIND": f"fd@{fd}",
            "LIVEEDIT_BIND_OPTIONS": "",
            "LIVEEDIT_HAPROXY_SOCKET": str(self.admin_socket),
        }
        check = subprocess.run(
            [self.binary, "-c", "-q", "-f", str(self.config_path)], env=env,
            capture_output=True, text=True, check=False, pass_fds=(fd,),
        )
        if check.returncode != 0:
            raise RuntimeError(f"haproxy rejects the config: {check.stdout}{check.stderr}")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "-db", "-f", str(self.config_path)], env=env, pass_fds=(fd,),
                stdout=log, stderr=subprocess.STDOUT,
            )

    def admin(self, command: str, timeout: float = 10.0) -> str:
        """One command on the admin socket; its answer."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.socket(socket.AF_UNIX) as sock:
                    sock.settimeout(timeout)
                    sock.connect(str(self.admin_socket))
                    sock.sendall(command.encode() + b"\n")
                    chunks = []
                    while chunk := sock.recv(65536):
                        chunks.append(chunk)
                return b"".join(chunks).decode()
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)  # the socket appears once HAProxy has started

    def server_states(self) -> dict[str, str]:
        """``node1`` → ``UP`` / ``DOWN`` / ``MAINT`` …, as HAProxy's health checks see it."""
        states: dict[str, str] = {}
        for line in self.admin("show stat").splitlines():
            parts = line.split(",")
            if len(parts) > 17 and parts[0] == "nodes" and parts[1].startswith("node"):
                states[parts[1]] = parts[17]
        return states

    def wait_for(self, wanted: dict[str, str], timeout: float = 20.0) -> None:
        """Wait until every named node has the wanted state (e.g. ``{"node1": "UP"}``)."""
        deadline = time.monotonic() + timeout
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            states = self.server_states()
            if all(states.get(k, "").startswith(v) for k, v in wanted.items()):
                return
            time.sleep(0.1)  # polling HAProxy's own view, under a deadline
        raise TimeoutError(f"HAProxy never saw {wanted}; it sees {states}\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        """The end of HAProxy's log (for failure messages)."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Stop HAProxy and remove its folder."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._listener.close()
        shutil.rmtree(self.dir, ignore_errors=True)
