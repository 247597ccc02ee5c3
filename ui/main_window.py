"""The main window: the customer directory beside the open customer, with the activity
feed and the open conflicts in docks, and the connection status always in sight.

Menus (built by :mod:`ui.window_menus`): File (New customer, Sync now, Work offline, Sign
out, Switch server or account, Quit), Edit (Undo/Redo of this rep's own edits on the open
customer, Find customer, Deleted customers), View (Activity, Conflicts, Outbox, Theme, Next
pane), Help (Keyboard shortcuts, About).
Geometry, splitter, dock layout and the theme persist in :class:`QSettings` (pass
``settings`` to keep them elsewhere, as tests and the demo do). Network work runs through
:func:`ui.tasks.spawn`; its errors, and the core's, land in the status bar's error area.

While not connected, the offline bar above the panes says so and how much waits to sync
("Offline · 3 changes on 2 customers"); other reps' presence is greyed out, since it may
not be current. Quitting with changes still queued (and no connection to send them) says
how many will sync next time and asks first. F6 moves the keyboard focus from pane to
pane, landing on a control that shows it. ``bring_forward`` raises the window (a second
launch on the same profile calls it through :mod:`ui.single_instance`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QShowEvent
from PySide6.QtWidgets import (
    QApplication,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.core import ClientCore

from .activity import ActivityDock
from .bridge import CoreBridge
from .conflicts_panel import ConflictsDock
from .customer_view import CustomerView
from .directory import DirectoryPanel
from .offline_bar import OfflineBar
from .outbox_dialog import OutboxDialog
from .shortcut_sheet import ShortcutSheet
from .status import ConnectionIndicator, ErrorArea, SyncProgress
from .tasks import error_sink, set_error_sink, spawn
from .theme import THEME_KEY, apply_theme
from .tray_notifier import TrayNotifier
from .window_menus import build_menus

__all__ = ["MainWindow", "app_version"]

log = logging.getLogger(__name__)

ORGANISATION = "LiveEdit"
APPLICATION = "Live Edit"
_GEOMETRY, _STATE, _SPLITTER = "mainWindow/geometry", "mainWindow/state", "mainWindow/splitter"
_NOTICE_MS = 20_000
#: From this window width the docks sit beside the panes (else under them).
WIDE = 1400
_RECOUNT_MS = 250


def app_version() -> str:
    """The installed version of Live Edit."""
    try:
        return version("liveedit")
    except PackageNotFoundError:
        return "0+unknown"


class MainWindow(QMainWindow):
    """Directory | customer, docks for activity and conflicts, status bar."""

    #: The window closed (its layout is saved by then).
    closed = Signal()
    #: File > Sign out (False) or Switch server or account (True): the app signs out,
    #: closes this window and shows the sign-in dialog.
    signOutRequested = Signal(bool)

    # The menus' actions, made by :func:`ui.window_menus.build_menus`.
    new_action: QAction
    sync_action: QAction
    offline_action: QAction
    sign_out_action: QAction
    switch_action: QAction
    quit_action: QAction
    undo_action: QAction
    redo_action: QAction
    find_action: QAction
    outbox_action: QAction
    next_pane_action: QAction
    shortcuts_action: QAction
    about_action: QAction
    theme_actions: dict[str, QAction]

    def __init__(self, core: ClientCore, bridge: CoreBridge, parent: QWidget | None = None,
                 *, settings: QSettings | None = None) -> None:
        super().__init__(parent)
        self.core = core
        self.bridge = bridge
        self.settings = settings if settings is not None else QSettings(ORGANISATION,
                                                                        APPLICATION)
        self.setWindowTitle(f"Live Edit — {core.username or 'not signed in'}")
        self.setAccessibleName("Live Edit")
        self.about_box: QMessageBox | None = None
        self.quit_box: QMessageBox | None = None
        self.shortcut_sheet: ShortcutSheet | None = None
        self._outbox: OutboxDialog | None = None
        self._state = "offline"
        self._first_layout = False
        self._quit_confirmed = False
        self._recount = QTimer(self, singleShot=True, interval=_RECOUNT_MS)
        self._recount.timeout.connect(self._count_outbox)
        self._build_central()
        self._build_docks()
        self._build_status_bar()
        build_menus(self)
        self._connect_signals()
        self._restore_layout()
        self.update_edit_actions()

    # --- building --------------------------------------------------------------------

    def _build_central(self) -> None:
        self.directory = DirectoryPanel(self.core, self.bridge, self)
        if not self.directory.accessibleName():
            self.directory.setAccessibleName("Customer directory")
        self.customer_view = CustomerView(self.core, self.bridge, self)
        if not self.customer_view.accessibleName():
            self.customer_view.setAccessibleName("Customer")
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setObjectName("mainSplitter")
        self.splitter.setAccessibleName("Directory and customer")
        self.splitter.setChildrenCollapsible(False)
        self.splitter.addWidget(self.directory)
        self.splitter.addWidget(self.customer_view)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.offline_bar = OfflineBar(self)
        central = QWidget(self)
        column = QVBoxLayout(central)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addWidget(self.offline_bar)
        column.addWidget(self.splitter, 1)
        self.splitter.setContentsMargins(8, 8, 4, 4)
        self.setCentralWidget(central)

    def _build_docks(self) -> None:
        self.activity = ActivityDock(self.core, self.bridge, self)
        self.tray = TrayNotifier(self.activity.feed, self.bridge, self)  # OS notices
        self.tray.customerRequested.connect(self.show_customer)
        self.conflicts = ConflictsDock(self.core, self.bridge, self)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.activity)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.conflicts)
        # One narrow column of tabs: the customer being worked on gets the room.
        self.tabifyDockWidget(self.activity, self.conflicts)
        self.activity.raise_()
        self.bridge.conflictRecorded.connect(lambda _event: self.conflicts.raise_())
        self.resizeDocks([self.activity], [260], Qt.Orientation.Horizontal)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        bar.setAccessibleName("Status bar")
        self.error_area = ErrorArea(self)
        self.progress = SyncProgress(self)
        self.indicator = ConnectionIndicator(self)
        bar.addWidget(self.error_area, 1)
        bar.addPermanentWidget(self.progress)
        bar.addPermanentWidget(self.indicator)
        engine = self.core.engine
        if engine is not None:
            self._on_status(engine.status)
        self._on_outbox(len(self.core.outbox()))
        set_error_sink(self.error_area.report)

    def _connect_signals(self) -> None:
        self.bridge.statusChanged.connect(self._on_status)
        self.bridge.outboxChanged.connect(self._on_outbox)
        self.offline_bar.outboxRequested.connect(self.show_outbox)
        self.offline_bar.reconnectRequested.connect(lambda: self.set_offline(False))
        self.bridge.directoryChanged.connect(self.progress.on_directory)
        self.bridge.errorReported.connect(self.error_area.report)
        self.bridge.documentChanged.connect(self._on_document)
        self.indicator.outboxRequested.connect(self.show_outbox)
        self.directory.customerActivated.connect(self.show_customer)
        self.activity.customerRequested.connect(self.show_customer)
        self.conflicts.customerRequested.connect(self.show_customer)

    # --- starting and stopping -------------------------------------------------------

    async def start(self) -> None:
        """Start syncing (after sign-in); returns at once, connecting goes on behind."""
        engine = await self.core.connect()
        self._on_status(engine.status)

    def show_notice(self, text: str) -> None:
        """Tell the rep something calm (not an error) in the status bar."""
        self.statusBar().showMessage(text, _NOTICE_MS)

    def bring_forward(self) -> None:
        """Show the window on top (restored if minimised) and give it the focus."""
        if self.isMinimized():
            self.showNormal()
        self.show()
        self.raise_()
        self.activateWindow()

    def queued_on_quit(self) -> tuple[int, int]:
        """(changes, customers) that would wait for the next launch if the app quit now
        ((0, 0) when connected: they are on their way)."""
        if self._state == "online" or self.core.closed:
            return 0, 0
        pending = self.core.pending_changes()
        return pending.changes, pending.customers

    def closeEvent(self, event: QCloseEvent) -> None:
        """Ask first when changes would stay queued; then save the layout, stop routing
        errors here, and say so."""
        changes, customers = (0, 0) if self._quit_confirmed else self.queued_on_quit()
        if changes:
            event.ignore()
            self._confirm_quit(changes, customers)
            return
        self.save_layout()
        if error_sink() == self.error_area.report:
            set_error_sink(None)
        if self._outbox is not None:
            self._outbox.close()
        super().closeEvent(event)
        self.closed.emit()

    def _confirm_quit(self, changes: int, customers: int) -> None:
        """Non-modal: "3 changes on 2 customers will sync next time you open Live Edit"."""
        what = f"{changes:,} change{'s' if changes != 1 else ''}"
        on = f"{customers:,} customer{'s' if customers != 1 else ''}"
        box = QMessageBox(QMessageBox.Icon.Information, "Quit Live Edit",
                          f"{what} on {on} will sync next time you open Live Edit "
                          "while connected.",
                          QMessageBox.StandardButton.NoButton, self)
        box.setInformativeText("They have not reached the server yet; they are kept on "
                               "this computer.")
        quit_button = box.addButton("Quit", QMessageBox.ButtonRole.AcceptRole)
        box.addButton("Keep working", QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(quit_button)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.accepted.connect(self.quit_anyway)
        box.finished.connect(self._quit_box_closed)
        self.quit_box = box
        box.open()

    def quit_anyway(self) -> None:
        """Close even though changes are queued (they sync next time)."""
        self._quit_confirmed = True
        self.close()

    def close_unattended(self) -> None:
        """Close without asking, for a close no rep is there to answer (``liveedit demo
        --exit-after``, SIGTERM, the self-test): queued changes stay on this computer, and
        the log says how many will sync next time. Never leaves a question open."""
        changes, customers = self.queued_on_quit()
        if changes:
            log.info("%s change%s on %s customer%s will sync next time", f"{changes:,}",
                     "s" if changes != 1 else "", f"{customers:,}",
                     "s" if customers != 1 else "")
        if self.quit_box is not None:
            self.quit_box.reject()
        self.quit_anyway()

    def _quit_box_closed(self) -> None:
        """The quit question was answered (it deletes itself): forget it."""
        self.quit_box = None

    # --- layout persistence ----------------------------------------------------------

    def save_layout(self) -> None:
        """Store geometry, dock state and splitter sizes."""
        self.settings.setValue(_GEOMETRY, self.saveGeometry())
        self.settings.setValue(_STATE, self.saveState())
        self.settings.setValue(_SPLITTER, self.splitter.saveState())
        self.settings.sync()

    def _restore_layout(self) -> None:
        geometry = self.settings.value(_GEOMETRY)
        if isinstance(geometry, QByteArray) and self.restoreGeometry(geometry):
            state, splitter = self.settings.value(_STATE), self.settings.value(_SPLITTER)
            if isinstance(state, QByteArray):
                self.restoreState(state)
            if isinstance(splitter, QByteArray):
                self.splitter.restoreState(splitter)
            return
        self._first_layout = True
        self.resize(1280, 800)
        self.splitter.setSizes([400, 880])

    def showEvent(self, event: QShowEvent) -> None:
        """First launch (no saved layout): fit the docks to the window's width."""
        if self._first_layout:
            self._first_layout = False
            self._fit_docks(self.width())
        super().showEvent(event)

    def _fit_docks(self, width: int) -> None:
        """Below :data:`WIDE` px the docks go under the panes (the customer form needs the
        width); wider, they are a column on the right. The directory gets ~36 %."""
        area = (Qt.DockWidgetArea.RightDockWidgetArea if width >= WIDE
                else Qt.DockWidgetArea.BottomDockWidgetArea)
        for dock in (self.activity, self.conflicts):
            self.addDockWidget(area, dock)
        self.tabifyDockWidget(self.activity, self.conflicts)
        self.activity.raise_()
        if area == Qt.DockWidgetArea.RightDockWidgetArea:
            self.resizeDocks([self.activity], [280], Qt.Orientation.Horizontal)
            central = width - 280
        else:
            self.resizeDocks([self.activity], [190], Qt.Orientation.Vertical)
            central = width
        directory = max(300, int(central * 0.36))
        self.splitter.setSizes([directory, max(1, central - directory)])

    # --- slots -----------------------------------------------------------------------

    def _on_status(self, status: Any) -> None:
        self.indicator.set_status(status)
        self.progress.set_status(status)
        self._state = str(getattr(status.state, "value", status.state))
        online = self._state == "online"
        self.offline_bar.set_state(self._state)
        self.customer_view.set_online(online)
        self.directory.set_presence_stale(not online)
        if not online:
            self._count_outbox()

    def _on_outbox(self, pending: int) -> None:
        self.indicator.set_pending(pending)
        self.progress.set_pending(pending)
        if self._state != "online":
            self._recount.start()

    def _count_outbox(self) -> None:
        if not self.core.closed:
            pending = self.core.pending_changes()
            self.offline_bar.set_counts(pending.changes, pending.customers)

    def _on_document(self, event: Any) -> None:
        if event.customer_id == self.customer_view.current_customer():
            self.update_edit_actions()

    def show_customer(self, customer_id: str) -> None:
        """Open a customer in the customer view (and select it in the directory)."""
        self.customer_view.show_customer(customer_id)
        self.directory.select_customer(customer_id)
        self.update_edit_actions()

    def new_customer(self) -> None:
        """File > New customer: create one (works offline) and show it."""
        self.customer_view.new_customer()

    def set_offline(self, offline: bool) -> None:
        """File > Work offline: disconnect (edits stay queued) or connect again."""
        self.offline_action.setChecked(offline)
        if offline:
            spawn(self._go_offline(), what="go offline")
        else:
            spawn(self.start(), what="go online")

    async def _go_offline(self) -> None:
        await self.core.disconnect()
        if self.core.engine is None:  # no engine, no more StatusChanged: say it here
            self._on_status(_Offline())

    def sign_out(self, *, switch: bool) -> None:
        """File > Sign out / Switch server or account: the app takes it from here."""
        self._quit_confirmed = True  # queued changes stay in this profile's outbox
        self.signOutRequested.emit(switch)

    def set_theme(self, theme: str) -> None:
        """View > Theme: apply and remember."""
        app = QApplication.instance()
        if isinstance(app, QApplication):
            apply_theme(app, theme)
        self.settings.setValue(THEME_KEY, theme)
        self.theme_actions[theme].setChecked(True)

    def show_shortcuts(self) -> ShortcutSheet:
        """Help > Keyboard shortcuts (non-modal)."""
        if self.shortcut_sheet is None or not self.shortcut_sheet.isVisible():
            self.shortcut_sheet = ShortcutSheet(self)
        self.shortcut_sheet.show()
        self.shortcut_sheet.raise_()
        return self.shortcut_sheet

    def sync_now(self) -> None:
        """File > Sync now: connect and wait until in sync (errors go to the error area)."""
        self.offline_action.setChecked(False)
        self.sync_action.setEnabled(False)
        self.show_notice("Syncing…")
        task = spawn(self.core.sync(timeout=60), what="sync now")
        task.add_done_callback(self._synced)

    def _synced(self, task: Any) -> None:
        self.sync_action.setEnabled(True)
        if not task.cancelled() and task.exception() is None:
            self.show_notice("Everything is in sync.")
        else:
            self.statusBar().clearMessage()

    def update_edit_actions(self) -> None:
        """Undo/Redo enabled only when the open customer has something to undo/redo."""
        cid = self.customer_view.current_customer()
        self.undo_action.setEnabled(cid is not None and self.core.can_undo(cid))
        self.redo_action.setEnabled(cid is not None and self.core.can_redo(cid))

    def undo(self) -> None:
        """Undo this rep's own last change on the open customer (others' stay)."""
        cid = self.customer_view.current_customer()
        if cid is not None:
            spawn(self._step(self.core.undo, cid, "undo"), what="undo")

    def redo(self) -> None:
        """Redo what Undo took back."""
        cid = self.customer_view.current_customer()
        if cid is not None:
            spawn(self._step(self.core.redo, cid, "redo"), what="redo")

    async def _step(self, step: Callable[[str], Awaitable[bool]], cid: str, which: str) -> None:
        if not await step(cid):
            self.statusBar().showMessage(f"Nothing to {which} on this customer.", 4000)
        self.update_edit_actions()

    def show_outbox(self) -> None:
        """Open (or raise) the outbox dialog."""
        if self._outbox is None:
            self._outbox = OutboxDialog(self.core, self.bridge, self)
            self._outbox.customerRequested.connect(self.show_customer)
        self._outbox.show()
        self._outbox.raise_()
        self._outbox.activateWindow()

    def about_text(self) -> str:
        """What Help > About says."""
        return (f"<h3>Live Edit {app_version()}</h3>"
                "<p>Edit customer accounts together, live — and keep working offline.</p>"
                f"<p>Signed in as {self.core.username or '—'}"
                f" on {self.core.server_url or 'no server'}.</p>")

    def show_about(self) -> None:
        """Help > About (non-modal)."""
        box = QMessageBox(QMessageBox.Icon.Information, "About Live Edit", self.about_text(),
                          QMessageBox.StandardButton.Close, self)
        box.setAccessibleName("About Live Edit")
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.about_box = box
        box.open()

    def focus_next_pane(self) -> None:
        """F6: move the keyboard focus to the next pane (directory, customer, docks), onto
        a control of it that takes (and shows) the focus."""
        panes = [w for w in (self.directory, self.customer_view, self.activity,
                             self.conflicts) if w.isVisible() and _stop(w) is not None]
        if not panes:
            return
        focus = QApplication.focusWidget()
        current = next((i for i, p in enumerate(panes)
                        if focus is not None and (focus is p or p.isAncestorOf(focus))), -1)
        target = _stop(panes[(current + 1) % len(panes)])
        if target is not None:
            target.setFocus(Qt.FocusReason.TabFocusReason)


class _Offline:
    """A stand-in status after a deliberate disconnect (the engine is gone)."""

    state = "offline"
    retry_in = None
    error = None


def _stop(pane: QWidget) -> QWidget | None:
    """Where F6 lands in a pane: the pane itself if it takes focus, else its first visible,
    enabled child that takes Tab focus (the directory: its list when it has rows)."""
    if isinstance(pane, DirectoryPanel):
        return pane.table if pane.model.rowCount() else pane.search
    if isinstance(pane, CustomerView):
        return pane.focus_target()
    if pane.focusPolicy() & Qt.FocusPolicy.TabFocus:
        return pane
    for child in pane.findChildren(QWidget):
        if (child.focusPolicy() & Qt.FocusPolicy.TabFocus and child.isVisible()
                and child.isEnabled()):
            return child
    return None
