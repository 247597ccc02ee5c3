"""Issue 15 follow-ups a rep would still trip over: the "not yet synced" mark after a
reopen, digits of a phone highlighted whatever its punctuation, the directory asking the
core (not the replica) for its count, and quitting with queued changes never hanging an
unattended run."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QSettings

from tests.integration.conftest import ServerHandle, scaled
from tests.integration.wire import eventually
from ui.bridge import CoreBridge
from ui.customer_view import CustomerView
from ui.directory import match_spans
from ui.field_editor import SyncMark

from .conftest import UiLoop
from .helpers import FAST, main_window, signed_in

UI = Path(__file__).resolve().parents[2] / "ui"


def test_reopened_customer_marks_queued_fields_then_saved(
    ui_loop: UiLoop, server: ServerHandle, tmp_path: Path, qtbot: Any,
) -> None:
    """Fields edited offline before the form opened are marked "not yet synced" (others
    are not), and say "saved" once the server acknowledged them."""

    async def body() -> None:
        async with signed_in(server, tmp_path, "alex") as alex:
            cid = await alex.create_customer({"name": "Ada Lovelace"})
            await alex.sync(scaled(20))
            await alex.disconnect()
            await alex.set_fields(cid, {"city": "London", "zip": "N1"})
            bridge = CoreBridge(alex)
            view = CustomerView(alex, bridge)
            qtbot.addWidget(view)
            view.show_customer(cid)
            marks = {name: view.fields[name].sync_mark() for name in ("name", "city", "zip")}
            assert marks == {"name": SyncMark.NONE, "city": SyncMark.PENDING,
                             "zip": SyncMark.PENDING}
            await alex.connect(**FAST)
            await eventually(lambda: view.fields["city"].sync_mark() is SyncMark.SAVED,
                             timeout=scaled(20))
            assert view.fields["zip"].sync_mark() is SyncMark.SAVED
            assert view.fields["name"].sync_mark() is SyncMark.NONE
            bridge.close()

    ui_loop.run(body())


@pytest.mark.parametrize(("stored", "typed", "marked"), [
    ("(823) 497-3210", "4973210", ["497-3210"]),
    ("(823) 497-3210", "8234973210", ["823) 497-3210"]),
    ("8234973210", "(823) 497-3210", ["8234973210"]),
    ("+1 823.497.3210", "497 3210", ["497", "3210"]),
    ("Zip 02134", "497", []),
])
def test_phone_digits_are_highlighted_whatever_the_punctuation(
    stored: str, typed: str, marked: list[str],
) -> None:
    """The digits the search matched are highlighted in the shown phone."""
    spans = match_spans(stored, typed)
    assert [stored[a:b] for a, b in spans] == marked


def test_ui_reads_the_directory_through_the_core_only() -> None:
    """No ui module reaches into the core's replica (ui/ talks to ClientCore's API)."""
    offenders = [p.name for p in UI.glob("*.py")
                 if re.search(r"core\.replica\b", p.read_text(encoding="utf-8"))]
    assert offenders == []


def test_unattended_close_with_queued_changes_ends_and_says_they_sync_later(
    ui_loop: UiLoop, server: ServerHandle, tmp_path: Path, settings: QSettings, qtbot: Any,
    keep_running: None, caplog: pytest.LogCaptureFixture,
) -> None:
    """Offline with a queued change, the rep's quit question says it will sync next time;
    a timed or scripted close (demo --exit-after, self-test) closes without asking."""

    async def body() -> None:
        async with signed_in(server, tmp_path, "alex") as alex:
            window, bridge = main_window(alex, settings, qtbot)
            await window.start()
            window.offline_action.trigger()
            await eventually(lambda: window.indicator.text().startswith("Offline"))
            await alex.create_customer({"name": "Ada Lovelace"})
            window.close()
            assert window.isVisible() and window.quit_box is not None
            assert "1 change on 1 customer will sync next time" in window.quit_box.text()
            window.quit_box.reject()
            closed: list[bool] = []
            window.closed.connect(lambda: closed.append(True))
            with caplog.at_level(logging.INFO, logger="ui.main_window"):
                window.close_unattended()
            assert closed == [True] and not window.isVisible()
            assert "1 change on 1 customer will sync next time" in caplog.text
            bridge.close()

    ui_loop.run(body())
