"""Module-scoped real servers for the fuzz tests (started once per module, killed after).

``LIVEEDIT_FUZZ_SCALE`` (a number, default 1) multiplies the number of examples, e.g.
``LIVEEDIT_FUZZ_SCALE=20`` for a long session. Every module checks at the end that the
server printed no traceback.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.integration.conftest import ServerHandle

FUZZ_SCALE = float(os.environ.get("LIVEEDIT_FUZZ_SCALE", "1"))


def examples(count: int) -> int:
    """``count`` examples, scaled by LIVEEDIT_FUZZ_SCALE."""
    return max(1, int(count * FUZZ_SCALE))


def tracebacks(server: ServerHandle) -> list[str]:
    """Lines of the server's output that start or name a Python traceback."""
    return [line for line in server.output if "Traceback" in line or "Exception in" in line]


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    """One server for the whole module, with a 64 KiB frame limit (cheap oversize tests)."""
    handle = ServerHandle(tmp_path_factory.mktemp("fuzz") / "server.db",
                          ["--max-message-size", "65536"])
    handle.start()
    yield handle
    handle.kill()
    assert tracebacks(handle) == [], "\n".join(handle.output[-60:])
