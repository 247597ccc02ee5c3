"""The rep's desk (issue 15 part A): sign-in by Enter, keyboard panes, the directory at the
default size, remembered sign-in, one instance per profile and the offline bar, each
against the real server."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QWidget

from app.core import ClientCore
from app.credentials import CredentialStore
from app.events import ErrorReported, OutboxChanged
from tests.integration.conftest import DEFAULT_PASSWORD, ServerHandle, scaled
from tests.integration.wire import eventually
from ui.bridge import CoreBridge
from ui.field_editor import SyncMark
from ui.main_window import MainWindow
from ui.signin import Outcome, SignInDialog, has_saved_sign_in
from ui.tasks import pending

from .conftest import UiLoop
from .helpers import main_window, registered_core, signed_in


def _inside(widget: QWidget | None, pane: QWidget) -> bool:
    return widget is not None and (widget is pane or pane.isAncestorOf(widget))


def test_sign_in_with_enter_uses_no_deleted_dialog(
    ui_loop: UiLoop, server: ServerHandle, tmp_path: Path, qtbot: Any, errors: list[str],
    keep_running: None,
) -> None:
    """Enter in the password field signs in once; deleting the dialog afterwards (as the
    app does) reports no error."""

    async def body() -> None:
        async with registered_core(server, tmp_path, "alex") as core:
            dialog = SignInDialog(core, server_url=server.http_url, user="alex")
            dialog.show()
            outcome = dialog.result_ready()
            dialog.password.setText(DEFAULT_PASSWORD)
            QTest.keyClick(dialog.password, Qt.Key.Key_Return)
            assert await outcome is Outcome.SIGNED_IN
            dialog.deleteLater()
            await eventually(lambda: pending() == 0)
            await asyncio.sleep(0)  # let the deferred delete run (not synchronisation)
            assert errors == []

    ui_loop.run(body())


def test_tab_leaves_the_directory_and_f6_lands_on_a_focusable_widget(
    ui_loop: UiLoop, server: ServerHandle, tmp_path: Path, settings: QSettings, qtbot: Any,
    keep_running: None,
) -> None:
    """Tab goes search → table → out of the directory (arrows move in the table); F6 puts
    the focus on a widget that shows it, in the next pane."""

    async def body() -> None:
        async with signed_in(server, tmp_path, "alex") as core:
            cids = [await core.create_customer({"name": name, "city": "Boston"})
                    for name in ("Ada Lovelace", "Grace Hopper")]
            window, bridge = main_window(core, settings, qtbot)
            window.activateWindow()
            await eventually(lambda: window.directory.model.rowCount() == 2)
            window.directory.focus_search()
            await eventually(window.directory.search.hasFocus)
            QTest.keyClick(window.directory.search, Qt.Key.Key_Tab)
            await eventually(window.directory.table.hasFocus)
            QTest.keyClick(window.directory.table, Qt.Key.Key_Tab)
            await eventually(lambda: not _inside(QApplication.focusWidget(), window.directory))

            window.show_customer(cids[0])
            window.directory.table.setFocus()
            await eventually(window.directory.table.hasFocus)
            window.next_pane_action.trigger()
            focus = QApplication.focusWidget()
            assert _inside(focus, window.customer_view)
            assert focus is not None and focus.focusPolicy() != Qt.FocusPolicy.NoFocus
            assert focus is not window.customer_view
            window.close()
            bridge.close()

    ui_loop.run(body())


def test_directory_is_readable_in_a_960_px_window(
    ui_loop: UiLoop, server: ServerHandle, tmp_path: Path, settings: QSettings, qtbot: Any,
    keep_running: None,
) -> None:
    """At 960 px the directory gets a fair share, each row shows name, city and phone and
    who is on the customer, and a count says how many match."""

    async def body() -> None:
        async with signed_in(server, tmp_path, "alex") as alex, \
                signed_in(server, tmp_path, "sam") as sam:
            cid = await sam.create_customer({"name": "Ada Lovelace", "city": "Boston",
                                             "phone": "(823) 497-3210"})
            await sam.create_customer({"name": "Grace Hopper", "city": "Arlington"})
            await sam.sync(scaled(20))
            await eventually(lambda: len(alex.search("")) == 2)
            window, bridge = main_window(alex, settings, qtbot, show=False)
            window.resize(960, 700)
            window.show()
            await eventually(lambda: window.directory.model.rowCount() == 2)
            window.show_customer(cid)  # presence comes with the customer's subscription
            await sam.open_customer(cid)
            await sam.set_presence(cid, {"name": "sam"})
            panel = window.directory
            assert panel.width() >= 320, panel.width()
            row = panel.model.row_of(cid)
            await eventually(lambda: "sam" in panel.row_text(row))
            shown = panel.row_text(row)
            for part in ("Ada Lovelace", "Boston", "(823) 497-3210"):
                assert part in shown, shown
            assert panel.count_label.text() == "2 customers"
            panel.search.setText("Boston")
            await eventually(lambda: panel.count_label.text() == "1 match")
            window.close()
            bridge.close()

    ui_loop.run(body())


def test_remembered_sign_in_opens_straight_into_the_main_window(
    ui_loop: UiLoop, server: ServerHandle, tmp_path: Path, qtbot: Any, qapp: QApplication,
    keep_running: None,
) -> None:
    """With a refresh token in the keyring, the app opens the main window, no dialog."""
    from ui import main as app_main

    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path))
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)

    async def body() -> None:
        server.add_user("alex")
        core = ClientCore.open(tmp_path / "alex")
        await core.login(server.http_url, "alex", DEFAULT_PASSWORD, remember=True)
        await core.close()
        core = ClientCore.open(tmp_path / "alex")
        session = asyncio.ensure_future(app_main._session(qapp, core, None, None))
        try:
            window = await eventually(lambda: next(
                (w for w in qapp.topLevelWidgets()
                 if isinstance(w, MainWindow) and w.isVisible()), None))
            assert not any(isinstance(w, SignInDialog) and w.isVisible()
                           for w in qapp.topLevelWidgets())
            await eventually(lambda: window.indicator.text() == "Online", timeout=20)
            window.sign_out_action.trigger()
            dialog = await eventually(lambda: next(
                (w for w in qapp.topLevelWidgets()
                 if isinstance(w, SignInDialog) and w.isVisible()), None))
            assert not has_saved_sign_in(core)
            assert dialog.user.text() == "alex"
            dialog.reject()
            assert await session == 0
        finally:
            session.cancel()
            await core.close()

    try:
        ui_loop.run(body())
    finally:
        QSettings.setDefaultFormat(QSettings.Format.NativeFormat)


def test_remember_me_without_a_keyring_says_why_in_plain_text(
    ui_loop: UiLoop, tmp_path: Path, qtbot: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without a keyring the box is greyed out and a visible label beside it says why."""
    import keyring
    from keyring.backends import fail

    monkeypatch.setattr(keyring, "get_keyring", fail.Keyring)
    core = ClientCore.open(tmp_path / "alex", credentials=CredentialStore())
    try:
        assert not core.credentials.available()
        dialog = SignInDialog(core, server_url="127.0.0.1:1")
        qtbot.addWidget(dialog)
        dialog.show()
        assert not dialog.remember.isEnabled()
        assert dialog.remember_reason.isVisible()
        assert "keyring" in dialog.remember_reason.text()
    finally:
        ui_loop.run(core.close())


def test_second_launch_on_a_profile_brings_the_first_window_forward(
    ui_loop: UiLoop, server: ServerHandle, tmp_path: Path, settings: QSettings, qtbot: Any,
    keep_running: None,
) -> None:
    """A second guard on the same profile is refused and wakes the first, which raises its
    window; another profile is not affected."""
    from ui.single_instance import SingleInstance

    async def body() -> None:
        async with signed_in(server, tmp_path, "alex") as core:
            window, bridge = main_window(core, settings, qtbot)
            first = SingleInstance(tmp_path / "alex")
            assert first.acquire()
            first.activated.connect(window.bring_forward)
            forward: list[bool] = []
            first.activated.connect(lambda: forward.append(True))
            window.showMinimized()
            second = SingleInstance(tmp_path / "alex")
            assert not second.acquire()
            await eventually(lambda: forward == [True])
            assert not window.isMinimized()
            other = SingleInstance(tmp_path / "someone-else")
            assert other.acquire()
            other.release()
            first.release()
            window.close()
            bridge.close()

    ui_loop.run(body())


def test_offline_bar_counts_changes_and_customers_and_clears_on_reconnect(
    ui_loop: UiLoop, server: ServerHandle, tmp_path: Path, settings: QSettings, qtbot: Any,
    keep_running: None,
) -> None:
    """Offline, a persistent bar says "Offline · 3 changes on 2 customers", presence is
    greyed out, a field edited meanwhile is marked not synced and quitting asks first; back
    online the bar goes, the field says saved, and no "Working offline" message lingers."""

    async def body() -> None:
        async with signed_in(server, tmp_path, "alex") as alex, \
                signed_in(server, tmp_path, "sam") as sam:
            first = await alex.create_customer({"name": "Ada Lovelace"})
            second = await alex.create_customer({"name": "Grace Hopper"})
            await alex.sync(scaled(20))
            await eventually(lambda: len(sam.search("")) == 2)
            window, bridge = main_window(alex, settings, qtbot)
            await window.start()
            window.show_customer(first)
            await sam.open_customer(first)
            await sam.set_presence(first, {"name": "sam"})
            await eventually(lambda: window.customer_view.avatar_names() == ["sam"])
            assert window.offline_bar.isHidden()

            window.offline_action.trigger()
            await eventually(lambda: window.indicator.text().startswith("Offline"))
            await alex.set_fields(first, {"city": "London"})
            await alex.set_fields(first, {"zip": "N1"})
            await alex.set_fields(second, {"city": "Arlington"})
            await eventually(lambda: window.offline_bar.text()
                             == "Offline · 3 changes on 2 customers")
            assert window.offline_bar.isVisible()
            assert window.customer_view.presence_stale()
            assert "offline" not in window.statusBar().currentMessage().lower()
            window.close()
            assert window.isVisible() and window.quit_box is not None
            assert window.quit_box.text().startswith("3 changes on 2 customers")
            window.quit_box.reject()

            phone = window.customer_view.fields["phone"]
            phone.editor.setFocus()
            qtbot.keyClicks(phone.editor, "555-0100")
            qtbot.keyClick(phone.editor, Qt.Key.Key_Return)
            await eventually(lambda: phone.sync_mark() is SyncMark.PENDING)

            window.offline_action.trigger()
            await eventually(lambda: window.indicator.text() == "Online", timeout=20)
            await eventually(window.offline_bar.isHidden, timeout=20)
            await eventually(lambda: phone.sync_mark() is SyncMark.SAVED, timeout=20)
            assert not window.customer_view.presence_stale()
            assert "offline" not in window.statusBar().currentMessage().lower()
            window.close()
            bridge.close()

    ui_loop.run(body())


def test_sign_in_takes_host_port_names_a_wrong_server_and_remembers_the_last(
    ui_loop: UiLoop, server: ServerHandle, tmp_path: Path, qtbot: Any, settings: QSettings,
    keep_running: None,
) -> None:
    """A wrong path is called "not a Live Edit server" (not a password problem); host:port
    without http:// signs in; the next dialog offers that server."""

    async def body() -> None:
        async with registered_core(server, tmp_path, "alex") as core:
            dialog = SignInDialog(core, user="alex", settings=settings)
            qtbot.addWidget(dialog)
            assert dialog.server.text() == ""
            dialog.server.setText(server.http_url + "/not-here")
            dialog.password.setText(DEFAULT_PASSWORD)
            assert not await dialog.attempt()
            assert "not a Live Edit server" in dialog.message.text()
            assert dialog.offline_button.isHidden()
            dialog.server.setText(server.http_url.removeprefix("http://"))
            assert await dialog.attempt()
            assert core.server_url == server.http_url
        other = ClientCore.open(tmp_path / "sam")
        try:
            again = SignInDialog(other, settings=settings)
            qtbot.addWidget(again)
            assert again.server.text() == server.http_url
        finally:
            await other.close()

    ui_loop.run(body())


def test_shortcut_sheet_theme_error_area_and_remote_change_tooltip(
    ui_loop: UiLoop, tmp_path: Path, qtbot: Any, settings: QSettings, qapp: QApplication,
) -> None:
    """Help lists the menu shortcuts; View > Theme > Dark darkens the app and is remembered;
    a core error (a failing subscriber) shows in the window's error area; a remote change's
    tooltip says what the field held before."""
    from ui.colors import is_dark
    from ui.field_editor import FieldEditor
    from ui.theme import THEME_KEY

    style_sheet, palette, style_name = qapp.styleSheet(), qapp.palette(), qapp.style().name()
    core = ClientCore.open(tmp_path / "alex")
    bridge = CoreBridge(core)
    try:
        window = MainWindow(core, bridge, settings=settings)
        qtbot.addWidget(window)
        sheet = window.show_shortcuts()
        assert any(line.startswith("Ctrl+F — Find customer") for line in sheet.texts())
        sheet.close()
        window.theme_actions["dark"].trigger()
        assert is_dark(qapp.palette())
        assert settings.value(THEME_KEY) == "dark"
        window.theme_actions["light"].trigger()
        assert not is_dark(qapp.palette())

        def broken(event: object) -> None:
            if isinstance(event, OutboxChanged):
                raise RuntimeError("disk full")

        core.bus.subscribe(broken)
        core.bus.emit(OutboxChanged(0))
        assert "disk full" in window.error_area.message()
        core.bus.emit(ErrorReported("cannot store an update", retrying=True))
        assert window.error_area.message().startswith("cannot store an update")
        assert "retrying" in window.error_area.message()

        editor = FieldEditor("city", "City")
        qtbot.addWidget(editor)
        editor.set_value("Paris")
        editor.changed_remotely("Lyon", "sam", 0.0)
        assert editor.editor.toolTip().endswith("(was “Paris”)")
    finally:
        qapp.setStyleSheet(style_sheet)
        qapp.setStyle(style_name)  # a fresh style: no style-sheet proxy left behind
        qapp.setPalette(palette)
        qapp.styleHints().setColorScheme(Qt.ColorScheme.Unknown)
        bridge.close()
        ui_loop.run(core.close())


def test_a_field_added_to_the_table_reaches_the_form_and_the_directory(
    ui_loop: UiLoop, tmp_path: Path, qtbot: Any,
) -> None:
    """A test-only field in the field table gets a labelled editor in its form section,
    a directory column with its label, and its value on the row's detail line."""
    from sync.protocol import schema
    from ui.customer_view import CustomerView
    from ui.directory import DirectoryPanel

    extra = schema.Field("phone2", "Second phone", schema.text_rule(40), "Contact",
                         directory=True, searchable=True, max_length=40)
    with schema.extended(extra):
        core = ClientCore.open(tmp_path / "alex")
        bridge = CoreBridge(core)
        try:
            view = CustomerView(core, bridge)
            qtbot.addWidget(view)
            assert view.fields["phone2"].label == "Second phone"
            cid = ui_loop.run(core.create_customer({"name": "Ada", "phone2": "555-0101"}))
            view.show_customer(cid)
            assert view.fields["phone2"].text() == "555-0101"
            panel = DirectoryPanel(core, bridge)
            qtbot.addWidget(panel)
            labels = [panel.model.headerData(c, Qt.Orientation.Horizontal)
                      for c in range(panel.model.columnCount())]
            assert "Second phone" in labels
            assert "555-0101" in panel.row_text(0)
        finally:
            bridge.close()
            ui_loop.run(core.close())
