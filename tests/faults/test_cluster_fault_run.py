"""The fault run on a cluster (about a minute): five real client processes edit shared
customers through a faulty network in front of HAProxy and three nodes on one Postgres,
while clients and nodes are SIGKILLed, Postgres crashes and the nodes' database connections
are cut; after healing everything converges with nothing lost or duplicated (issue 12 §4).

Seed: ``LIVEEDIT_FAULT_SEED`` (default 1); editing time: ``LIVEEDIT_FAULT_SECONDS``
(default 30).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.cluster.conftest import missing
from tests.cluster.haproxy import HAProxyUnavailable, find_haproxy
from tests.cluster.pg import PostgresUnavailable, find_bin_dir
from tests.faults.harness import RunConfig, RunReport, run, seed_from_env

pytestmark = [pytest.mark.slow, pytest.mark.timeout(360)]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> RunReport:
    """One fault run on three nodes, shared by the assertions below."""
    try:
        find_bin_dir()
        find_haproxy()
    except (PostgresUnavailable, HAProxyUnavailable) as exc:
        missing(str(exc))
    folder: Path = tmp_path_factory.mktemp("cluster-fault-run")
    result = run(RunConfig(seed=seed_from_env(1), folder=folder, nodes=3,
                           server_kill_share=0.4, first_server_kills=2,
                           edit_seconds=float(os.environ.get("LIVEEDIT_FAULT_SECONDS", "30"))))
    print(result.summary())
    return result


def test_nodes_and_postgres_were_really_faulted(report: RunReport) -> None:
    """The run did what it says: edits, proxy faults, client kills, node and database faults."""
    assert report.edits_done > 100
    assert sum(report.faults.values()) >= 3
    assert report.worker_kills >= 1
    assert report.server_kills >= 2  # a node and Postgres (tests/faults/cluster.py FAULTS)


def test_the_cluster_converges_with_nothing_lost(report: RunReport) -> None:
    """Replicas and the cluster agree, every acked edit is present once, outboxes empty,
    no false conflicts."""
    assert report.problems == [], report.summary()
    assert report.false_conflicts == [], report.summary()
