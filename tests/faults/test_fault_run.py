"""The short randomized fault run (about a minute): five real client processes edit shared
customers through a faulty network while clients and the server are SIGKILLed; after
healing everything converges with nothing lost or duplicated.

Seed: ``LIVEEDIT_FAULT_SEED`` (default 1); editing time: ``LIVEEDIT_FAULT_SECONDS``
(default 35). Longer runs: ``bench/soak.py --minutes N --seed S``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.faults.harness import RunConfig, RunReport, run, seed_from_env

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> RunReport:
    """One fault run, shared by the assertions below."""
    folder: Path = tmp_path_factory.mktemp("fault-run")
    result = run(RunConfig(seed=seed_from_env(1), folder=folder,
                           edit_seconds=float(os.environ.get("LIVEEDIT_FAULT_SECONDS", "35"))))
    print(result.summary())
    return result


def test_faults_were_really_injected(report: RunReport) -> None:
    """The run did what it says: edits, proxy faults, and client and server kills."""
    assert report.edits_done > 100
    assert sum(report.faults.values()) >= 3
    assert report.worker_kills >= 1
    assert report.server_kills >= 1


def test_everything_converges_with_nothing_lost(report: RunReport) -> None:
    """Replicas and server are identical, every edit is present once, outboxes are empty."""
    assert report.problems == [], report.summary()


def test_every_conflict_is_a_real_concurrent_write(report: RunReport) -> None:
    """No conflict is recorded where the winning writer had seen the losing value."""
    assert report.conflicts > 0
    assert report.false_conflicts == [], report.summary()
