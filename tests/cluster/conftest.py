"""Fixtures for tests on real Postgres and HAProxy (issue 12).

One throwaway Postgres cluster per test session (``pg_cluster``, started on first use) and
a fresh database per test (``pg_dsn``). HAProxy in front of nodes from the sample config
in docs/deploy/ (``haproxy_factory``).

Where the binaries are missing, these tests are skipped with the reason, on a developer's
machine only: under CI (``CI`` set) a missing binary fails them, since ``.ci/run``
installs both.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence

import pytest

from sync.server.storage.postgres.schema import migrate_database

from .haproxy import HAProxy, HAProxyUnavailable, find_haproxy
from .pg import PostgresCluster, PostgresUnavailable, shared_cluster


def missing(reason: str) -> None:
    """Skip for a missing binary on a developer's machine; fail under CI."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; .ci/run should have installed it")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_cluster() -> PostgresCluster:
    """A Postgres server in a temporary folder, one per test process (shared with the
    integration tests that run on both engines); removed when the process exits."""
    try:
        return shared_cluster()
    except PostgresUnavailable as exc:
        missing(str(exc))
        raise


@pytest.fixture
def pg_dsn(pg_cluster: PostgresCluster) -> Iterator[str]:
    """The URL of a fresh, empty database on the session's cluster; dropped after."""
    if pg_cluster.process is None or pg_cluster.process.poll() is not None:
        pg_cluster.start()  # a test that crashed the server leaves it to the next one
    name = pg_cluster.create_database()
    yield pg_cluster.dsn(name)
    if pg_cluster.process is not None and pg_cluster.process.poll() is None:
        pg_cluster.drop_database(name)


@pytest.fixture
async def migrated_dsn(pg_dsn: str) -> str:
    """The URL of ``pg_dsn``'s fresh database, migrated to the current schema."""
    await migrate_database(pg_dsn)
    return pg_dsn


@pytest.fixture
def haproxy_factory() -> Iterator[Callable[[Sequence[tuple[str, int]]], HAProxy]]:
    """Start HAProxy (docs/deploy/haproxy.cfg) over ``[(host, port), …]``; stopped after."""
    try:
        find_haproxy()
    except HAProxyUnavailable as exc:
        missing(str(exc))
    started: list[HAProxy] = []

    def make(nodes: Sequence[tuple[str, int]]) -> HAProxy:
        proxy = HAProxy(nodes)
        started.append(proxy)
        proxy.start()
        return proxy

    yield make
    for proxy in started:
        proxy.stop()
