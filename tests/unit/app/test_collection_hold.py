"""The app's collector waits while a worker builds something large (app.collection_hold):
a first directory sync's move holds it, and holds nest across threads."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from app.collection_hold import collection_held, hold_collection
from app.directory_writer import DirectoryWriter
from app.replica import Replica

from .test_directory_load import entries, store


def test_holds_nest_and_count_across_threads() -> None:
    """Held while any hold is open, whichever thread opened it."""
    assert not collection_held()
    entered, leave = threading.Event(), threading.Event()

    def worker() -> None:
        with hold_collection():
            entered.set()
            leave.wait(10)

    thread = threading.Thread(target=worker)
    thread.start()
    assert entered.wait(10)
    with hold_collection():
        assert collection_held()
    assert collection_held()  # the worker's hold is still open
    leave.set()
    thread.join(10)
    assert not collection_held()


def test_the_first_sync_move_holds_collection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The move of a first sync's staged pages runs under a hold; staging does not."""
    held: list[tuple[str, bool]] = []
    stage, finish = Replica.stage_directory, Replica.finish_directory_load

    def staging(replica: Replica, *args: object) -> None:
        held.append(("stage", collection_held()))
        stage(replica, *args)  # type: ignore[arg-type]

    def finishing(replica: Replica) -> int:
        held.append(("finish", collection_held()))
        return finish(replica)

    monkeypatch.setattr(Replica, "stage_directory", staging)
    monkeypatch.setattr(Replica, "finish_directory_load", finishing)
    rows = entries()
    writer = DirectoryWriter(tmp_path / "r.db")
    store(writer, rows[:5], 5, more=True)
    assert store(writer, rows[5:], 10, more=False) == 10
    writer.close()
    assert held == [("stage", False), ("stage", False), ("finish", True)]
    assert not collection_held()
