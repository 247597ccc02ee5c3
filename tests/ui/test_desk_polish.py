"""Issue 15, part B: what a day of use tripped over in history, activity, outbox and
deleting, against the real server (two reps, each with their own core)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QMessageBox

from app.core import ClientCore
from sync.protocol import schema
from tests.integration.conftest import DEFAULT_PASSWORD, ServerHandle, scaled
from tests.integration.wire import eventually
from ui.bridge import CoreBridge
from ui.customer_view import CustomerView
from ui.deleted_customers import DeletedCustomersDialog
from ui.history_dialog import HistoryDialog
from ui.outbox_dialog import OutboxDialog
from ui.tray_notifier import TrayNotifier

from .conftest import UiLoop
from .helpers import FAST, activity_dock, shared_customer, signed_in

#: Closing a dialog must not quit the app (and stop the loop) mid-test.
pytestmark = pytest.mark.usefixtures("keep_running")


def test_history_says_what_notes_and_tasks_changed_and_previews_a_revert(
    ui_loop: UiLoop, server: ServerHandle, tmp_path: Path, qtbot: Any,
) -> None:
    """History rows give the notes and tasks diff; "Revert whole customer" first lists
    what it will change (fields, notes, tasks, comments) and changes nothing until OK."""

    async def body() -> None:
        async with signed_in(server, tmp_path, "alice") as alice:
            cid = await alice.create_customer({"name": "Ada Lovelace", "city": "Paris"})
            for edit in (lambda: alice.notes_append(cid, "Called about the invoice."),
                         lambda: alice.add_task(cid, "Send refund"),
                         lambda: alice.set_fields(cid, {"city": "Lyon"}),
                         lambda: alice.notes_append(cid, " Refund approved."),
                         lambda: alice.add_task(cid, "Call back Monday"),
                         lambda: alice.add_comment(cid, "All sorted")):
                await alice.sync(scaled(20))  # one version each
                await edit()
            await alice.sync(scaled(20))
            dialog = HistoryDialog(alice, cid)
            qtbot.addWidget(dialog)
            dialog.show()
            await eventually(lambda: dialog.versions.rowCount() == 7)
            labels = [dialog.compare.item(r, 0).text() for r in range(len(schema.fields()))]
            assert labels == [f.label for f in schema.fields()]
            await eventually(lambda: 'Notes: added “Refund approved.”' in dialog.change_texts())
            assert 'added task “Call back Monday”' in dialog.change_texts()

            dialog.select_version(4)  # right after "Send refund" was added
            await eventually(lambda: dialog.loaded_version() is not None)
            assert 'added task “Send refund”' in dialog.details.text()
            dialog.revert_all.click()
            await eventually(lambda: dialog.preview is not None and dialog.preview.isVisible())
            assert dialog.preview is not None
            text = dialog.preview.text()
            assert "City: “Lyon” → “Paris”" in text
            assert 'removed “Refund approved.”' in text
            assert 'removed task “Call back Monday”' in text
            assert "Comments stay as they are (1 added since" in text
            assert alice.customer(cid).fields["city"] == "Lyon"  # nothing yet
            dialog.preview.revert_button.click()
            await eventually(lambda: alice.customer(cid).fields["city"] == "Paris")
            now = alice.customer(cid)
            assert now.notes == "Called about the invoice."
            assert [t.title for t in now.tasks] == ["Send refund"]
            assert len(now.comments) == 1
            dialog.close()

    ui_loop.run(body())


def test_revert_preview_cancel_changes_nothing(
    ui_loop: UiLoop, server: ServerHandle, tmp_path: Path, qtbot: Any,
) -> None:
    """Cancelling the revert preview leaves the customer as it is."""

    async def body() -> None:
        async with signed_in(server, tmp_path, "alice") as alice:
            cid = await alice.create_customer({"name": "Ada Lovelace", "city": "Paris"})
            await alice.sync(scaled(20))
            await alice.set_fields(cid, {"city": "Lyon"})
            await alice.sync(scaled(20))
            dialog = HistoryDialog(alice, cid)
            qtbot.addWidget(dialog)
            dialog.show()
            await eventually(lambda: dialog.versions.rowCount() == 2)
            dialog.select_version(1)
            await eventually(lambda: dialog.loaded_version() is not None)
            dialog.revert_all.click()
            await eventually(lambda: dialog.preview is not None and dialog.preview.isVisible())
            assert dialog.preview is not None
            dialog.preview.reject()
            await alice.sync(scaled(20))
            assert alice.customer(cid).fields["city"] == "Lyon"
            assert dialog.versions.rowCount() == 2
            dialog.close()

    ui_loop.run(body())


def _no_noise(texts: list[str], me: str) -> bool:
    """No opened/closed rows and none of the rep's own actions."""
    return not [t for t in texts if " opened " in t or " closed " in t or t.startswith(me)]


def test_activity_lists_others_changes_to_followed_customers_only(
    ui_loop: UiLoop, server: ServerHandle, tmp_path: Path, qtbot: Any,
) -> None:
    """The feed shows other reps' field and task changes to customers this rep follows,
    and customers they create or delete; never opened/closed, nor this rep's own edits."""

    async def body() -> None:
        async with signed_in(server, tmp_path, "alex") as alex, \
                signed_in(server, tmp_path, "sam") as sam:
            dock, bridge = activity_dock(alex, qtbot)
            cid = await shared_customer(sam, alex)
            await sam.set_presence(cid, {"field": "city"})  # "sam opened John Smith"
            await sam.set_fields(cid, {"city": "Seattle"})
            await eventually(lambda: "sam changed City on John Smith" in dock.texts())
            await sam.add_task(cid, "Call back Monday")
            await eventually(lambda: "sam changed the tasks on John Smith" in dock.texts())
            await alex.set_fields(cid, {"zip": "98101"})
            other = await sam.create_customer({"name": "Zed Other"})
            await eventually(lambda: "sam created Zed Other" in dock.texts())
            await sam.delete_customer(other)
            await eventually(lambda: "sam deleted Zed Other" in dock.texts())
            await sam.set_presence(cid, None)  # "sam closed John Smith"
            await sam.set_fields(cid, {"state": "WA"})
            await eventually(lambda: "sam changed State on John Smith" in dock.texts())
            assert _no_noise(dock.texts(), "alex"), dock.texts()
            bridge.close()

    ui_loop.run(body())


def test_activity_unread_counts_newest_first_and_a_tray_notice(
    ui_loop: UiLoop, server: ServerHandle, tmp_path: Path, qtbot: Any,
) -> None:
    """Rows replayed after a reconnect do not stay above newer ones; the dock counts
    unread rows; a change to a followed customer raises an OS notice while the window is
    not active."""

    async def body() -> None:
        async with signed_in(server, tmp_path, "alex") as alex, \
                signed_in(server, tmp_path, "sam") as sam:
            dock, bridge = activity_dock(alex, qtbot)
            notifier = TrayNotifier(dock.feed, bridge, dock)
            cid = await shared_customer(sam, alex)
            await eventually(lambda: "sam created John Smith" in dock.texts())
            await alex.disconnect()
            await sam.set_fields(cid, {"zip": "98101"})
            await sam.sync(scaled(20))
            await alex.connect(**FAST)
            await eventually(lambda: "sam changed Zip on John Smith" in dock.offline_texts())
            await sam.set_fields(cid, {"city": "Seattle"})
            await eventually(lambda: "sam changed City on John Smith" in dock.texts())
            assert dock.texts()[0] == "sam changed City on John Smith"
            assert dock.unread() == 3
            assert dock.windowTitle() == "Activity (3)"
            await eventually(lambda: any("sam changed City" in m for _t, m in notifier.shown))
            dock.tree.itemClicked.emit(dock.tree.topLevelItem(0), 0)
            assert dock.unread() == 2
            assert dock.windowTitle() == "Activity (2)"
            notifier.close()
            bridge.close()

    ui_loop.run(body())


def test_activity_after_a_restart_does_not_report_my_own_edit(
    ui_loop: UiLoop, server: ServerHandle, tmp_path: Path, qtbot: Any,
) -> None:
    """A rep's own edit, replayed by the server after a restart, is not in the feed."""

    async def body() -> None:
        async with signed_in(server, tmp_path, "sam") as sam:
            async with signed_in(server, tmp_path, "alex") as alex:
                cid = await shared_customer(sam, alex)
                await alex.set_fields(cid, {"city": "Denver"})
                await alex.sync(scaled(20))
            alex = ClientCore.open(tmp_path / "alex")
            try:
                await alex.login(server.http_url, "alex", DEFAULT_PASSWORD, remember=False)
                await alex.connect(**FAST)
                await alex.sync(scaled(20))
                dock, bridge = activity_dock(alex, qtbot)
                await sam.set_fields(cid, {"zip": "80202"})  # something to wait for
                await eventually(lambda: "sam changed Zip on John Smith" in dock.texts())
                assert _no_noise(dock.texts() + dock.offline_texts(), "alex")
                bridge.close()
            finally:
                await alex.close()

    ui_loop.run(body())


def test_outbox_shows_a_sentence_typed_offline_as_one_change(
    ui_loop: UiLoop, tmp_path: Path, qtbot: Any,
) -> None:
    """Offline, 25 keystrokes in the notes are one row and one change in the outbox."""

    async def body() -> None:
        core = ClientCore.open(tmp_path / "offline")
        try:
            bridge = CoreBridge(core)
            cid = await core.create_customer({"name": "Ada Lovelace"})
            dialog = OutboxDialog(core, bridge)
            qtbot.addWidget(dialog)
            for index, char in enumerate("Called about the invoice."):
                await core.notes_insert(cid, index, char)
            assert [r[:2] for r in dialog.rows()] == [
                ("Ada Lovelace", "new customer"), ("Ada Lovelace", "notes (25 edits)")]
            assert dialog.summary.text().startswith("2 changes on 1 customer wait")
            bridge.close()
        finally:
            await core.close()

    ui_loop.run(body())


def test_deleted_customers_can_be_found_and_restored_by_another_rep(
    ui_loop: UiLoop, server: ServerHandle, tmp_path: Path, qtbot: Any,
) -> None:
    """A customer deleted by one rep is listed (searchable) in the other rep's Deleted
    customers dialog, though that rep never opened it, and Restore brings it back."""

    async def body() -> None:
        async with signed_in(server, tmp_path, "alice") as alice, \
                signed_in(server, tmp_path, "bob") as bob:
            cid = await alice.create_customer({"name": "Ada Lovelace", "city": "Paris"})
            await alice.create_customer({"name": "Grace Hopper"})
            await alice.sync(scaled(20))
            await alice.delete_customer(cid)
            await alice.sync(scaled(20))
            bridge = CoreBridge(bob)
            dialog = DeletedCustomersDialog(bob, bridge)
            qtbot.addWidget(dialog)
            dialog.show()
            await eventually(lambda: dialog.names() == ["Ada Lovelace"])
            assert not bob.search("Lovelace")
            dialog.search.setText("grace")
            await eventually(lambda: dialog.names() == [])
            dialog.search.setText("lovel")
            await eventually(lambda: dialog.names() == ["Ada Lovelace"])
            opened: list[str] = []
            dialog.customerRequested.connect(opened.append)
            dialog.select(0)
            dialog.restore_button.click()
            await eventually(lambda: opened == [cid], timeout=20)
            await eventually(lambda: not alice.customer(cid).deleted)
            assert [r.name for r in bob.search("Lovelace")] == ["Ada Lovelace"]
            assert dialog.names() == []
            dialog.close()
            bridge.close()

    ui_loop.run(body())


def test_deleting_asks_first_and_a_deleted_task_says_ctrl_z(
    ui_loop: UiLoop, tmp_path: Path, qtbot: Any,
) -> None:
    """Delete asks before deleting (Cancel keeps the customer); deleting a task says
    that Ctrl+Z brings it back."""

    async def body() -> None:
        core = ClientCore.open(tmp_path / "offline")
        bridge = CoreBridge(core)
        try:
            cid = await core.create_customer({"name": "Ada Lovelace"})
            await core.add_task(cid, "Send refund")
            view = CustomerView(core, bridge)
            qtbot.addWidget(view)
            view.show_customer(cid)
            await eventually(lambda: view.tasks.list.count() == 1)
            question = view.delete_customer()
            assert question is not None and "Delete Ada Lovelace?" in question.text()
            question.button(QMessageBox.StandardButton.Cancel).click()
            assert not core.customer(cid).deleted
            view.tasks.list.setCurrentRow(0)
            view.tasks.delete_selected()
            await eventually(lambda: core.customer(cid).tasks == [])
            assert view.tasks.notice.isVisibleTo(view.tasks)
            assert view.tasks.notice.text() == ("Deleted “Send refund”. Press Ctrl+Z to "
                                                "bring it back.")
            question = view.delete_customer()
            assert question is not None
            question.delete_button.click()
            await eventually(lambda: core.customer(cid).deleted)
            view.leave()
        finally:
            bridge.close()
            await core.close()

    ui_loop.run(body())
