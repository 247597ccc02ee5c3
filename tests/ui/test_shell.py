"""The app shell against the real server: status indicator, outbox count, activity feed,
conflicts dock, About, and the saved window layout."""

from __future__ import annotations

import asyncio
from importlib.metadata import version
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings

from tests.integration.conftest import DEFAULT_PASSWORD, ServerHandle, scaled
from tests.integration.wire import eventually
from ui.activity import OFFLINE_GROUP
from ui.bridge import CoreBridge
from ui.conflicts_panel import ConflictsDock
from ui.main_window import MainWindow
from ui.signin import OFFLINE_NOTICE, Outcome, SignInDialog

from .conftest import UiLoop
from .helpers import FAST, activity_dock, main_window, shared_customer, signed_in


def test_status_goes_offline_and_back_online_with_the_outbox(
    ui_loop: UiLoop, server: ServerHandle, tmp_path: Path, settings: QSettings, qtbot: Any,
) -> None:
    """The indicator leaves "Online" when the server stops, counts the edit made meanwhile,
    and returns to "Online" with nothing waiting once the server is back."""

    async def body() -> None:
        async with signed_in(server, tmp_path, "alex") as core:
            window, bridge = main_window(core, settings, qtbot, show=False)
            await window.start()
            indicator = window.indicator
            cid = await core.create_customer({"name": "Ada Lovelace"})
            await core.sync(scaled(20))
            await eventually(lambda: indicator.text() == "Online")
            assert indicator.pending_text() == ""

            await asyncio.to_thread(server.stop)
            await eventually(lambda: indicator.text().startswith(("Offline", "Connecting")))
            await core.set_fields(cid, {"city": "London"})
            await eventually(lambda: indicator.pending_text() == "1 change waiting to sync")
            assert window.indicator.changes_button.isVisibleTo(window)

            await asyncio.to_thread(server.restart)
            await eventually(lambda: indicator.text() == "Online", timeout=20)
            await eventually(lambda: indicator.pending_text() == "", timeout=20)
            assert not window.indicator.changes_button.isVisibleTo(window)
            window.close()
            bridge.close()

    ui_loop.run(body())


def test_activity_shows_another_rep_live_and_offline_group_after_reconnect(
    ui_loop: UiLoop, server: ServerHandle, tmp_path: Path, qtbot: Any,
) -> None:
    """Another rep's change appears in the feed as a sentence; changes made while this rep
    was disconnected appear under "While you were offline" after the reconnect."""

    async def body() -> None:
        async with signed_in(server, tmp_path, "alex") as alex, \
                signed_in(server, tmp_path, "sam") as sam:
            dock, bridge = activity_dock(alex, qtbot)
            requested: list[str] = []
            dock.customerRequested.connect(requested.append)
            cid = await shared_customer(sam, alex)

            await sam.set_fields(cid, {"city": "Seattle"})
            await eventually(lambda: "sam changed City on John Smith" in dock.texts())
            assert dock.offline_texts() == []

            await alex.disconnect()
            await sam.set_fields(cid, {"zip": "98101"})
            await sam.sync(scaled(20))
            await alex.connect(**FAST)
            await eventually(lambda: "sam changed Zip on John Smith" in dock.offline_texts())
            assert dock.texts()[0].startswith(OFFLINE_GROUP)

            group = dock.tree.topLevelItem(0)
            assert group is not None
            dock.tree.itemClicked.emit(group.child(0), 0)
            assert requested == [cid]
            bridge.close()

    ui_loop.run(body())


def test_conflicts_dock_lists_a_conflict_as_it_is_recorded(
    ui_loop: UiLoop, server: ServerHandle, tmp_path: Path, qtbot: Any,
) -> None:
    """After both reps change City offline, the losing side's dock lists the customer,
    field, both values and the winner's name, without being refreshed by hand."""

    async def body() -> None:
        async with signed_in(server, tmp_path, "alex") as alex, \
                signed_in(server, tmp_path, "sam") as sam:
            cid = await shared_customer(alex, sam)
            bridges = {"alex": CoreBridge(alex), "sam": CoreBridge(sam)}
            docks = {"alex": ConflictsDock(alex, bridges["alex"]),
                     "sam": ConflictsDock(sam, bridges["sam"])}
            for dock in docks.values():
                qtbot.addWidget(dock)
                assert dock.rows() == []
            await alex.disconnect()
            await sam.disconnect()
            await alex.set_fields(cid, {"city": "Paris"})
            await sam.set_fields(cid, {"city": "Lyon"})
            for _ in range(2):
                await asyncio.gather(alex.sync(scaled(20)), sam.sync(scaled(20)))
            winner = alex.customer(cid).fields["city"]
            loser, mine, by = ("sam", "Lyon", "alex") if winner == "Paris" else (
                "alex", "Paris", "sam")
            other = "alex" if loser == "sam" else "sam"
            await eventually(lambda: docks[loser].rows() == [
                ("John Smith", "City", mine, winner, by)])
            assert docks[other].rows() == []
            assert docks[loser].windowTitle() == "Conflicts (1)"
            for bridge in bridges.values():
                bridge.close()

    ui_loop.run(body())


def test_about_shows_the_installed_version(
    ui_loop: UiLoop, server: ServerHandle, tmp_path: Path, settings: QSettings, qtbot: Any,
) -> None:
    """Help > About shows the version of the installed liveedit distribution."""

    async def body() -> None:
        async with signed_in(server, tmp_path, "alex") as core:
            window, bridge = main_window(core, settings, qtbot, show=False)
            window.about_action.trigger()
            await eventually(lambda: window.about_box is not None
                             and window.about_box.isVisible())
            assert window.about_box is not None
            assert f"Live Edit {version('liveedit')}" in window.about_box.text()
            window.about_box.close()
            bridge.close()

    ui_loop.run(body())


def test_window_layout_round_trips_through_qsettings(
    ui_loop: UiLoop, server: ServerHandle, tmp_path: Path, settings: QSettings, qtbot: Any,
    keep_running: None,
) -> None:
    """Size, splitter sizes and a hidden dock are saved on close and restored by the next
    window built with the same settings."""

    async def body() -> None:
        async with signed_in(server, tmp_path, "alex") as core:
            bridge = CoreBridge(core)
            first = MainWindow(core, bridge, settings=settings)
            qtbot.addWidget(first)
            first.show()
            first.resize(760, 560)
            first.splitter.setSizes([250, 300])
            first.conflicts.hide()
            await eventually(lambda: (first.width(), first.height()) == (760, 560))
            sizes = first.splitter.sizes()
            first.close()

            second = MainWindow(core, bridge, settings=settings)
            qtbot.addWidget(second)
            second.show()
            await eventually(second.isVisible)
            assert (second.width(), second.height()) == (760, 560)
            assert second.splitter.sizes() == sizes
            assert not second.conflicts.isVisible()
            assert second.activity.isVisible()
            second.close()
            bridge.close()

    ui_loop.run(body())


def test_sign_in_dialog_says_what_went_wrong_and_offers_open_offline(
    ui_loop: UiLoop, server: ServerHandle, tmp_path: Path, qtbot: Any,
) -> None:
    """A wrong password is explained inline; with the server down, a profile that already
    has a user is offered "Open offline", which closes the dialog with the offline notice."""

    async def body() -> None:
        async with signed_in(server, tmp_path, "alex") as core:
            await core.disconnect()
            dialog = SignInDialog(core)
            qtbot.addWidget(dialog)
            dialog.show()
            assert dialog.user.text() == "alex" and dialog.server.text() == server.http_url
            dialog.password.setText("wrong password")
            assert not await dialog.attempt()
            assert dialog.message.text().startswith("Sign-in failed")
            assert dialog.offline_button.isHidden()

            await asyncio.to_thread(server.stop)
            dialog.password.setText(DEFAULT_PASSWORD)
            assert not await dialog.attempt()
            assert "cannot be reached" in dialog.message.text()
            assert not dialog.offline_button.isHidden()
            outcome = dialog.result_ready()
            dialog.offline_button.click()
            assert await outcome is Outcome.OFFLINE
            assert dialog.notice == OFFLINE_NOTICE

    ui_loop.run(body())


def test_edit_undo_takes_back_only_my_last_change_on_the_open_customer(
    ui_loop: UiLoop, server: ServerHandle, tmp_path: Path, settings: QSettings, qtbot: Any,
) -> None:
    """Edit > Undo is enabled after the rep's own edit of the open customer, restores the
    previous value, and Redo brings the edit back."""

    async def body() -> None:
        async with signed_in(server, tmp_path, "alex") as core:
            window, bridge = main_window(core, settings, qtbot, show=False)
            cid = await core.create_customer({"name": "Ada Lovelace", "city": "Boston"})
            window.show_customer(cid)
            await eventually(lambda: window.customer_view.current_customer() == cid)
            await core.set_fields(cid, {"city": "London"})
            await eventually(window.undo_action.isEnabled)
            window.undo_action.trigger()
            await eventually(lambda: core.customer(cid).fields["city"] == "Boston")
            await eventually(window.redo_action.isEnabled)
            window.redo_action.trigger()
            await eventually(lambda: core.customer(cid).fields["city"] == "London")
            bridge.close()

    ui_loop.run(body())


def test_work_offline_queues_edits_and_going_online_sends_them(
    ui_loop: UiLoop, server: ServerHandle, tmp_path: Path, settings: QSettings, qtbot: Any,
) -> None:
    """File > Work offline disconnects on purpose: the indicator says Offline, edits wait
    in the outbox; unticking it reconnects and they go out."""

    async def body() -> None:
        async with signed_in(server, tmp_path, "alex") as core:
            window, _bridge = main_window(core, settings, qtbot, show=False)
            await window.start()
            cid = await core.create_customer({"name": "Grace Hopper"})
            await core.sync(scaled(20))
            window.offline_action.trigger()
            assert window.offline_action.isChecked()
            await eventually(lambda: window.indicator.text().startswith("Offline"))
            await core.set_fields(cid, {"city": "Arlington"})
            await eventually(
                lambda: window.indicator.pending_text() == "1 change waiting to sync")
            window.offline_action.trigger()
            await eventually(lambda: window.indicator.text() == "Online", timeout=20)
            await eventually(lambda: window.indicator.pending_text() == "", timeout=20)
            assert core.outbox() == []
            window.close()

    ui_loop.run(body())
