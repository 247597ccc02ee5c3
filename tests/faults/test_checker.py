"""The fault run's checker notices a lost edit, a duplicate, a divergence, a stuck outbox
and a conflict that was not concurrent (fed hand-made logs and dumps)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.faults.harness import RunReport, check

CID = "c1"


def _view(notes: str = "", comments: tuple[str, ...] = (), city: str = "start") -> dict[str, Any]:
    return {
        "id": CID, "name": "Shared", "address": {"city": city}, "deleted": False,
        "notes": notes, "tasks": [],
        "comments": [{"id": t, "author": "w0", "time": 0.0, "text": t} for t in comments],
    }


def _server(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    current = {k: v for k, v in view.items() if k not in ("notes", "tasks", "comments")}
    version = {"notes": view["notes"], "tasks": [], "comments": view["comments"]}
    return {CID: {"current": current, "version": version}}


def _write(folder: Path, name: str, entries: list[dict[str, Any]], view: dict[str, Any],
           outbox: int = 0) -> None:
    (folder / name).mkdir()
    lines = "".join(json.dumps(e) + "\n" for e in entries)
    (folder / name / "edits.jsonl").write_text(lines + '{"torn')
    (folder / name / "dump.json").write_text(json.dumps(
        {"customers": {CID: view}, "outbox": outbox, "pending_acks": 0}))


def _edit(n: int, kind: str, **extra: Any) -> list[dict[str, Any]]:
    return [{"op": "try", "n": n, "kind": kind, "cid": CID, **extra},
            {"op": "done", "n": n, "ref": n + 1}, {"op": "ack", "n": n, "ref": n + 1}]


def _run(tmp_path: Path, logs: dict[str, list[dict[str, Any]]],
         views: dict[str, dict[str, Any]], outbox: int = 0) -> RunReport:
    for name, entries in logs.items():
        _write(tmp_path, name, entries, views[name], outbox)
    report = RunReport(seed=0)
    check(report, tmp_path, list(logs), [CID], _server(views["w0"]))
    return report


def test_a_clean_run_passes(tmp_path: Path) -> None:
    """Every edit present once, replicas equal: no problem."""
    view = _view("<w0.0>", ("c-w1.0",))
    logs = {"w0": _edit(0, "note", token="<w0.0>"), "w1": _edit(0, "comment", text="c-w1.0")}
    report = _run(tmp_path, logs, {"w0": view, "w1": view})
    assert report.problems == []
    assert (report.edits_done, report.acked_at_end) == (2, 2)


def test_a_lost_edit_is_found(tmp_path: Path) -> None:
    """An acked note token missing from the converged notes is reported."""
    view = _view("")
    report = _run(tmp_path, {"w0": _edit(0, "note", token="<w0.0>")}, {"w0": view})
    assert any("appears 0 times" in p for p in report.problems)


def test_a_duplicate_is_found(tmp_path: Path) -> None:
    """A comment that appears twice is reported."""
    view = _view("", ("c-w0.0", "c-w0.0"))
    report = _run(tmp_path, {"w0": _edit(0, "comment", text="c-w0.0")}, {"w0": view})
    assert any("appears 2 times" in p for p in report.problems)


def test_divergence_and_a_stuck_outbox_are_found(tmp_path: Path) -> None:
    """Replicas that differ, and an outbox that is not empty, are reported."""
    logs = {"w0": _edit(0, "note", token="<w0.0>"), "w1": []}
    report = _run(tmp_path, logs, {"w0": _view("<w0.0>"), "w1": _view("")}, outbox=1)
    assert any("differ" in p for p in report.problems)
    assert any("still in the outbox" in p for p in report.problems)


def test_a_conflict_with_a_later_overwrite_is_not_concurrent(tmp_path: Path) -> None:
    """w0's value overwritten by w1 on top of it is flagged when w0 records a conflict."""
    w0 = _edit(0, "field", field="city", value="v-w0.0")
    w0[1].update(version="a", base=None)
    w0.append({"op": "conflict", "n": -1, "cid": CID, "field": "city", "mine": "v-w0.0",
               "theirs": "v-w1.1", "author": "w1"})
    w1 = _edit(0, "field", field="city", value="v-w1.0") + _edit(
        1, "field", field="city", value="v-w1.1")
    w1[1].update(version="b", base="a")
    w1[4].update(version="c", base="b")
    view = _view(city="v-w1.1")
    report = _run(tmp_path, {"w0": w0, "w1": w1}, {"w0": view, "w1": view})
    assert report.problems == []
    assert len(report.false_conflicts) == 1
