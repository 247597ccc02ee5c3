"""The customer view, directory and history dialog against a real server, two reps live.

Each test signs in real ``ClientCore``s (one profile folder each) to the real reference
server, builds the widgets with a ``CoreBridge`` each, drives them like a rep would
(typing, Enter, buttons) and waits for the other side with ``eventually``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLineEdit
from pytestqt.qtbot import QtBot

from app.core import ClientCore
from tests.integration.conftest import DEFAULT_PASSWORD, ServerHandle
from tests.integration.wire import eventually
from ui.bridge import CoreBridge
from ui.customer_view import CustomerView
from ui.directory import DirectoryPanel
from ui.history_dialog import HistoryDialog

from .conftest import UiLoop


@dataclass
class Rep:
    """One signed-in rep with their own core, bridge and customer view."""

    name: str
    core: ClientCore
    bridge: CoreBridge
    view: CustomerView

    def line(self, field: str) -> QLineEdit:
        """The line edit of a form field."""
        editor = self.view.fields[field].editor
        assert isinstance(editor, QLineEdit)
        return editor


async def _sign_in(server: ServerHandle, folder: Path, name: str, qtbot: QtBot) -> Rep:
    server.add_user(name)
    core = ClientCore.open(folder / name)
    await core.login(server.http_url, name, DEFAULT_PASSWORD)
    await core.sync(10)
    bridge = CoreBridge(core)
    view = CustomerView(core, bridge)
    qtbot.addWidget(view)
    view.resize(900, 700)
    view.show()
    return Rep(name, core, bridge, view)


@asynccontextmanager
async def _two_reps(server: ServerHandle, tmp_path: Path, qtbot: QtBot,
                    values: dict[str, str] | None = None) -> AsyncIterator[tuple[Rep, Rep, str]]:
    """alice and bob, both showing a customer alice created."""
    alice = await _sign_in(server, tmp_path, "alice", qtbot)
    bob = await _sign_in(server, tmp_path, "bob", qtbot)
    try:
        cid = await alice.core.create_customer(
            values or {"name": "Ada Lovelace", "city": "Paris", "zip": "75001"})
        await alice.core.sync(10)
        await eventually(lambda: bob.core.search("Lovelace"))
        alice.view.show_customer(cid)
        bob.view.show_customer(cid)
        await eventually(lambda: bob.line("name").text() == "Ada Lovelace")
        yield alice, bob, cid
    finally:
        for rep in (alice, bob):
            rep.view.leave()
            rep.bridge.close()
            await rep.core.close()


def _type(qtbot: QtBot, editor: QLineEdit, text: str) -> None:
    """Replace an editor's text by typing, then press Enter (commits the field)."""
    editor.selectAll()
    qtbot.keyClicks(editor, text)
    qtbot.keyClick(editor, Qt.Key.Key_Return)


def _focus(rep: Rep, widget: QLineEdit | object) -> None:
    rep.view.show()
    rep.view.activateWindow()
    widget.setFocus()  # type: ignore[attr-defined]


def test_remote_edit_updates_highlights_and_names_the_author(
        ui_loop: UiLoop, server: ServerHandle, tmp_path: Path, qtbot: QtBot) -> None:
    """A field committed in one view appears in the other, highlighted, tooltip naming who."""
    async def body() -> None:
        async with _two_reps(server, tmp_path, qtbot) as (alice, bob, _cid):
            _type(qtbot, alice.line("city"), "Lyon")
            await eventually(lambda: bob.line("city").text() == "Lyon")
            assert bob.view.fields["city"].highlighted()
            assert bob.line("city").toolTip().startswith("Changed by alice at ")
            assert not bob.view.fields["zip"].highlighted()

    ui_loop.run(body())


def test_remote_edit_keeps_what_the_rep_is_typing(
        ui_loop: UiLoop, server: ServerHandle, tmp_path: Path, qtbot: QtBot) -> None:
    """A remote change to the field the rep is typing in keeps their text and says so."""
    async def body() -> None:
        async with _two_reps(server, tmp_path, qtbot) as (alice, bob, cid):
            _focus(bob, bob.line("city"))
            await eventually(bob.line("city").hasFocus)
            bob.line("city").selectAll()
            qtbot.keyClicks(bob.line("city"), "Marse")
            _type(qtbot, alice.line("city"), "Lyon")
            await eventually(lambda: bob.core.customer(cid).fields["city"] == "Lyon")
            await eventually(bob.view.fields["city"].changed_underneath)
            assert bob.line("city").text() == "Marse"
            assert "alice changed this to “Lyon”" in bob.view.fields["city"].note.text()

    ui_loop.run(body())


def test_invalid_value_is_explained_inline_and_changes_nothing(
        ui_loop: UiLoop, server: ServerHandle, tmp_path: Path, qtbot: QtBot) -> None:
    """An invalid e-mail shows a plain-words error next to the field; the value stays."""
    async def body() -> None:
        async with _two_reps(server, tmp_path, qtbot) as (alice, _bob, cid):
            _type(qtbot, alice.line("email"), "not an address")
            await eventually(alice.view.fields["email"].error_text)
            assert alice.view.fields["email"].error_text().startswith(
                "Must be an e-mail address")
            assert alice.core.customer(cid).fields["email"] is None

    ui_loop.run(body())


def test_typing_in_both_notes_merges(
        ui_loop: UiLoop, server: ServerHandle, tmp_path: Path, qtbot: QtBot) -> None:
    """Two reps typing in the notes at once end with the same text holding both."""
    async def body() -> None:
        async with _two_reps(server, tmp_path, qtbot) as (alice, bob, cid):
            qtbot.keyClicks(alice.view.notes, "Called about invoice. ")
            qtbot.keyClicks(bob.view.notes, "VIP! ")
            await eventually(lambda: alice.view.notes.text() == bob.view.notes.text()
                             and len(alice.view.notes.text()) == 27, timeout=15)
            merged = alice.view.notes.text()
            assert "Called about invoice. " in merged
            assert "VIP! " in merged
            assert alice.core.customer(cid).notes == merged

    ui_loop.run(body())


def test_remote_notes_change_keeps_the_cursor_on_the_same_words(
        ui_loop: UiLoop, server: ServerHandle, tmp_path: Path, qtbot: QtBot) -> None:
    """An insertion before this rep's cursor shifts the cursor by its length."""
    async def body() -> None:
        async with _two_reps(server, tmp_path, qtbot) as (alice, bob, cid):
            await alice.core.notes_insert(cid, 0, "hello world")
            await eventually(lambda: bob.view.notes.text() == "hello world")
            cursor = bob.view.notes.textCursor()
            cursor.setPosition(6)  # before "world"
            bob.view.notes.setTextCursor(cursor)
            await alice.core.notes_insert(cid, 0, ">> ")
            await eventually(lambda: bob.view.notes.text() == ">> hello world")
            assert bob.view.notes.textCursor().position() == 9

    ui_loop.run(body())


def test_presence_badge_appears_and_disappears(
        ui_loop: UiLoop, server: ServerHandle, tmp_path: Path, qtbot: QtBot) -> None:
    """bob's avatar shows on alice's view while bob is on the customer, with his field."""
    async def body() -> None:
        async with _two_reps(server, tmp_path, qtbot) as (alice, bob, cid):
            await eventually(lambda: alice.view.avatar_names() == ["bob"])
            _focus(bob, bob.line("city"))
            await eventually(lambda: alice.view.editing_note("city") == "bob is editing")
            bob.view.leave()
            await eventually(lambda: alice.view.avatar_names() == [])
            assert alice.view.editing_note("city") == ""
            bob.view.show_customer(cid)
            await eventually(lambda: alice.view.avatar_names() == ["bob"])

    ui_loop.run(body())


async def _make_conflict(alice: Rep, bob: Rep, cid: str) -> tuple[Rep, Rep]:
    """bob edits City offline while alice edits it online; returns (loser, winner)."""
    await bob.core.disconnect()
    bob.view.fields["city"].editor.setFocus()
    await bob.core.set_fields(cid, {"city": "Marseille"})
    await alice.core.set_fields(cid, {"city": "Lyon"})
    await alice.core.sync(10)
    await bob.core.sync(10)
    await alice.core.sync(10)
    reps = (alice, bob)
    await eventually(lambda: any(r.view.conflict_banners for r in reps))
    loser = next(r for r in reps if r.view.conflict_banners)
    winner = bob if loser is alice else alice
    return loser, winner


def test_conflict_banner_keep_theirs(
        ui_loop: UiLoop, server: ServerHandle, tmp_path: Path, qtbot: QtBot) -> None:
    """The losing side sees the conflict in words; "Keep theirs" keeps the winner's value."""
    async def body() -> None:
        async with _two_reps(server, tmp_path, qtbot) as (alice, bob, cid):
            loser, winner = await _make_conflict(alice, bob, cid)
            theirs = winner.core.customer(cid).fields["city"]
            mine = "Lyon" if theirs == "Marseille" else "Marseille"
            banner = loser.view.conflict_banners[0]
            assert banner.text.text() == (
                f"{winner.name} changed City to “{theirs}” while you had “{mine}”.")
            assert not winner.view.conflict_banners
            qtbot.mouseClick(banner.keep_theirs, Qt.MouseButton.LeftButton)
            await eventually(lambda: not loser.view.conflict_banners)
            assert loser.line("city").text() == theirs
            await winner.core.sync(10)
            assert winner.core.customer(cid).fields["city"] == theirs

    ui_loop.run(body())


def test_conflict_banner_use_mine(
        ui_loop: UiLoop, server: ServerHandle, tmp_path: Path, qtbot: QtBot) -> None:
    """"Use mine" writes the loser's value again; both sides end with it."""
    async def body() -> None:
        async with _two_reps(server, tmp_path, qtbot) as (alice, bob, cid):
            loser, winner = await _make_conflict(alice, bob, cid)
            mine = loser.view.conflict_banners[0].conflict.mine
            qtbot.mouseClick(loser.view.conflict_banners[0].use_mine, Qt.MouseButton.LeftButton)
            await eventually(lambda: not loser.view.conflict_banners)
            await eventually(lambda: winner.line("city").text() == mine)
            assert loser.line("city").text() == mine
            assert winner.view.fields["city"].highlighted()

    ui_loop.run(body())


def test_history_dialog_reverts_a_field_and_the_whole_customer(
        ui_loop: UiLoop, server: ServerHandle, tmp_path: Path, qtbot: QtBot) -> None:
    """Reverting a field or the whole customer from the dialog reaches both reps."""
    async def body() -> None:
        async with _two_reps(server, tmp_path, qtbot) as (alice, bob, cid):
            await alice.core.set_fields(cid, {"city": "Lyon", "zip": "69001"})
            await alice.core.sync(10)
            dialog = HistoryDialog(alice.core, cid)
            qtbot.addWidget(dialog)
            dialog.show()
            await eventually(lambda: dialog.versions.rowCount() == 2)
            assert dialog.versions.item(0, 2).text() == "City, Zip"
            dialog.select_version(1)  # as created: Paris, 75001
            await eventually(lambda: (dialog.loaded_version() or {}).get("city") == "Paris")
            assert dialog.compare.item(5, 0).text() == "● City"
            dialog.select_field("city")
            qtbot.mouseClick(dialog.revert_field, Qt.MouseButton.LeftButton)
            await eventually(lambda: bob.line("city").text() == "Paris")
            assert bob.line("zip").text() == "69001"
            await eventually(lambda: dialog.versions.rowCount() == 3)
            dialog.select_version(2)
            await eventually(lambda: (dialog.loaded_version() or {}).get("zip") == "75001")
            qtbot.mouseClick(dialog.revert_all, Qt.MouseButton.LeftButton)
            preview = await eventually(lambda: dialog.preview)  # what the revert changes
            qtbot.mouseClick(preview.revert_button, Qt.MouseButton.LeftButton)
            await eventually(lambda: bob.line("zip").text() == "75001")
            dialog.close()

    ui_loop.run(body())


def test_history_dialog_says_plainly_when_offline(
        ui_loop: UiLoop, server: ServerHandle, tmp_path: Path, qtbot: QtBot) -> None:
    """Without the server, the dialog explains that history needs a connection."""
    async def body() -> None:
        rep = await _sign_in(server, tmp_path, "carol", qtbot)
        cid = await rep.core.create_customer({"name": "Grace Hopper"})
        await rep.core.disconnect()
        server.stop()
        dialog = HistoryDialog(rep.core, cid)
        qtbot.addWidget(dialog)
        await eventually(dialog.is_offline)
        assert "cannot reach it right now" in dialog.message.text()
        assert dialog.retry.isVisibleTo(dialog)
        assert not dialog.revert_all.isEnabled()
        dialog.close()
        rep.bridge.close()
        await rep.core.close()

    ui_loop.run(body())


def test_tasks_comments_and_delete_reach_the_other_rep(
        ui_loop: UiLoop, server: ServerHandle, tmp_path: Path, qtbot: QtBot) -> None:
    """Tasks, comments and a delete/restore made in one view show in the other."""
    async def body() -> None:
        async with _two_reps(server, tmp_path, qtbot) as (alice, bob, _cid):
            qtbot.keyClicks(alice.view.tasks.new_title, "Call back Monday")
            qtbot.keyClick(alice.view.tasks.new_title, Qt.Key.Key_Return)
            await eventually(lambda: bob.view.tasks.list.count() == 1)
            item = bob.view.tasks.list.item(0)
            assert item.text() == "Call back Monday"
            item.setCheckState(Qt.CheckState.Checked)
            await eventually(lambda: alice.view.tasks.tasks()[0].done)
            qtbot.keyClicks(bob.view.comments.input, "Spoke to her, all good")
            qtbot.keyClick(bob.view.comments.input, Qt.Key.Key_Return)
            await eventually(lambda: alice.view.comments.count() == 1)
            assert "Spoke to her, all good" in alice.view.comments.view.toPlainText()
            question = alice.view.delete_customer()  # asks first
            assert question is not None
            question.delete_button.click()
            await eventually(lambda: bob.view.deleted_banner.isVisibleTo(bob.view))
            assert bob.line("city").isReadOnly()
            qtbot.mouseClick(bob.view.restore_button, Qt.MouseButton.LeftButton)
            await eventually(lambda: not alice.view.deleted_banner.isVisibleTo(alice.view))

    ui_loop.run(body())


def test_directory_search_filters_and_sorts_the_table(
        ui_loop: UiLoop, server: ServerHandle, tmp_path: Path, qtbot: QtBot) -> None:
    """Typing in the search box narrows the table; a City header click sorts by city."""
    async def body() -> None:
        rep = await _sign_in(server, tmp_path, "dana", qtbot)
        for name, city in (("Ada Lovelace", "Paris"), ("Alan Turing", "Wilmslow"),
                           ("Grace Hopper", "Arlington"), ("Adele Goldberg", "Cleveland")):
            await rep.core.create_customer({"name": name, "city": city})
        panel = DirectoryPanel(rep.core, rep.bridge)
        qtbot.addWidget(panel)
        await eventually(lambda: panel.model.rowCount() == 4)
        activated: list[str] = []
        panel.customerActivated.connect(activated.append)
        qtbot.keyClicks(panel.search, "ad")
        await eventually(lambda: panel.model.rowCount() == 2)
        names = [panel.model.index(r, 0).data() for r in range(2)]
        assert names == ["Ada Lovelace", "Adele Goldberg"]
        panel.search.clear()
        await eventually(lambda: panel.model.rowCount() == 4)
        city = [f.name for f in panel.model.columns].index("city")
        panel.table.horizontalHeader().setSortIndicator(city, Qt.SortOrder.AscendingOrder)
        cities = [panel.model.index(r, city).data() for r in range(4)]
        assert cities == ["Arlington", "Cleveland", "Paris", "Wilmslow"]
        panel.table.selectRow(2)
        qtbot.keyClick(panel.table, Qt.Key.Key_Return)
        assert activated == [panel.model.customer_id(2)]
        rep.bridge.close()
        await rep.core.close()

    ui_loop.run(body())


def test_directory_keeps_the_selection_when_rows_change(
        ui_loop: UiLoop, server: ServerHandle, tmp_path: Path, qtbot: QtBot) -> None:
    """A new customer arriving from another rep keeps the selected row selected."""
    async def body() -> None:
        async with _two_reps(server, tmp_path, qtbot) as (alice, bob, cid):
            panel = DirectoryPanel(bob.core, bob.bridge)
            qtbot.addWidget(panel)
            assert panel.select_customer(cid)
            await alice.core.create_customer({"name": "Aaron First"})
            await eventually(lambda: panel.model.rowCount() == 2)
            assert panel.model.index(0, 0).data() == "Aaron First"
            assert panel.selected_customer() == cid

    ui_loop.run(body())


def test_undo_touches_only_this_reps_edits(
        ui_loop: UiLoop, server: ServerHandle, tmp_path: Path, qtbot: QtBot) -> None:
    """alice edits City, bob edits Zip, alice undoes: City is back, bob's Zip stays."""
    if not hasattr(ClientCore, "undo"):
        pytest.skip("ClientCore.undo is not there yet")

    async def body() -> None:
        async with _two_reps(server, tmp_path, qtbot) as (alice, bob, cid):
            _type(qtbot, alice.line("city"), "Lyon")
            await eventually(lambda: bob.line("city").text() == "Lyon")
            _type(qtbot, bob.line("zip"), "69001")
            await eventually(lambda: alice.line("zip").text() == "69001")
            await alice.core.undo(cid)  # type: ignore[attr-defined]
            await eventually(lambda: alice.line("city").text() == "Paris")
            await eventually(lambda: bob.line("city").text() == "Paris")
            assert alice.line("zip").text() == "69001"
            assert bob.core.customer(cid).fields["zip"] == "69001"

    ui_loop.run(body())


def test_editing_chip_keeps_the_form_still_and_notes_caret_goes_when_they_leave(
        ui_loop: UiLoop, server: ServerHandle, tmp_path: Path, qtbot: QtBot) -> None:
    """"bob is editing" moves no field of alice's form; bob's caret in the notes shows his
    name, then only the caret, and goes when he leaves the customer."""
    async def body() -> None:
        async with _two_reps(server, tmp_path, qtbot) as (alice, bob, _cid):
            before = {n: f.mapTo(alice.view, f.rect().topLeft()) for n, f in
                      alice.view.fields.items()}
            _focus(bob, bob.line("city"))
            await eventually(lambda: alice.view.editing_note("city") == "bob is editing")
            after = {n: f.mapTo(alice.view, f.rect().topLeft()) for n, f in
                     alice.view.fields.items()}
            assert after == before

            _focus(bob, bob.view.notes)
            await eventually(lambda: [n for n, _i in
                                      alice.view.notes.remote_carets().values()] == ["bob"])
            assert alice.view.notes.caret_tags() == ["bob"]
            await eventually(lambda: alice.view.notes.caret_tags() == [], timeout=6)
            assert alice.view.notes.remote_carets()
            bob.view.leave()
            await eventually(lambda: alice.view.notes.remote_carets() == {})

    ui_loop.run(body())
