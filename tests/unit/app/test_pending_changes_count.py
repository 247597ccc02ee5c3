"""The outbox's change count kept between reads (no rescan per edit) always equals a
count from scratch: after appends, removals, appends again, and a rolled-back insert."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.outbox import count_changes
from app.replica import Replica, ReplicaError


def _from_scratch(replica: Replica) -> tuple[int, int, int]:
    rows = [(e.doc_id, e.summary, e.created_at) for e in replica.outbox()]
    counted = count_changes(rows)
    return counted.changes, counted.customers, counted.updates


def _kept(replica: Replica) -> tuple[int, int, int]:
    counted = replica.pending_changes()
    return counted.changes, counted.customers, counted.updates


def test_kept_count_matches_a_count_from_scratch(tmp_path: Path) -> None:
    """Appends, removals (oldest and newest) and a rolled-back insert never skew it."""
    replica = Replica.open(tmp_path / "replica.db")
    try:
        refs = [replica.add_outbox("customer:a", b"\x00\x00", "notes", ["notes"])]
        assert _kept(replica) == _from_scratch(replica) == (1, 1, 1)
        refs += [replica.add_outbox("customer:a", b"\x00\x00", "City", ["city"]),
                 replica.add_outbox("customer:b", b"\x00\x00", "notes", ["notes"])]
        assert _kept(replica) == _from_scratch(replica) == (3, 2, 3)
        replica.remove_outbox(refs[1])  # the only "City": one change fewer
        assert _kept(replica) == _from_scratch(replica) == (2, 2, 2)
        replica.remove_outbox(refs[2])
        refs.append(replica.add_outbox("customer:c", b"\x00\x00", "Zip", ["zip"]))
        assert _kept(replica) == _from_scratch(replica) == (2, 2, 2)
        with pytest.raises(ReplicaError), replica.transaction():
            replica.add_outbox("customer:d", b"\x00\x00", "Zip", ["zip"])
            assert _kept(replica) == (3, 3, 3)  # seen inside, not kept past the rollback
            raise ReplicaError("roll back")
        # The rolled-back ref is given again: the kept count must not mistake the rows.
        replica.add_outbox("customer:a", b"\x00\x00", "notes", ["notes"])
        assert _kept(replica) == _from_scratch(replica) == (2, 2, 3)
    finally:
        replica.close()
