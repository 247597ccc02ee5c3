"""The main window: the customer directory beside the open customer, with the activity
feed and the open conflicts in docks, and the connection status always in sight.

Menus: File (New customer, Sync now, Quit), Edit (Undo/Redo of this rep's own edits on
the open customer, Find customer), View (Activity, Conflicts, Outbox, Next pane), Help
(About). Geometry, splitter and dock layout persist in :class:`QSettings` (pass
``settings`` to keep them elsewhere, as tests and the demo do). Network work runs through
:func:`ui.tasks.spawn`; its errors, and the core's, land in the status bar's error area.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from PySide6.QtCore import QByteArray, QSettings, Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QMainWindow,
    QMessageBox,
    QSplitter,
    QWidget,
)

from app.core import ClientCore

from .activity import ActivityDock
from .bridge import CoreBridge
from .conflicts_panel import ConflictsDock
from .customer_view import CustomerView
from .directory import DirectoryPanel
from .outbox_dialog import OutboxDialog
from .status import ConnectionIndicator, ErrorArea, SyncProgress
from .tasks import error_sink, set_error_sink, spawn

__all__ = ["MainWindow", "app_version"]

log = logging.getLogger(__name__)

ORGANISATION = "LiveEdit"
APPLICATION = "Live Edit"
_GEOMETRY, _STATE, _SPLITTER = "mainWindow/geometry", "mainWindow/state", "mainWindow/splitter"
_NOTICE_MS = 20_000


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
        self._outbox: OutboxDialog | None = None
        self._build_central()
        self._build_docks()
        self._build_status_bar()
        self._build_menus()
        self._connect_signals()
        self._restore_layout()
        self._update_edit_actions()

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
        self.setCentralWidget(self.splitter)

    def _build_docks(self) -> None:
        self.activity = ActivityDock(self.core, self.bridge, self)
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

    def _action(self, text: str, slot: Any, shortcut: Any = None,
                tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            shortcuts = shortcut if isinstance(shortcut, list) else [shortcut]
            action.setShortcuts([QKeySequence(s) for s in shortcuts])
        action.setStatusTip(tip)
        action.setToolTip(tip or text.replace("&", ""))
        action.triggered.connect(slot)
        self.addAction(action)  # shortcuts work even with the menu bar hidden
        return action

    def _build_menus(self) -> None:
        menu = self.menuBar()
        menu.setAccessibleName("Menu bar")
        file_menu = menu.addMenu("&File")
        self.new_action = self._action("&New customer", self._new_customer, "Ctrl+N",
                                       "Create a customer (works offline)")
        self.sync_action = self._action("&Sync now", self.sync_now, "F5",
                                        "Send waiting changes and fetch the latest")
        self.offline_action = self._action(
            "Work &offline", self.set_offline, "Ctrl+Shift+O",
            "Disconnect on purpose; edits queue up and sync when you go back online",
        )
        self.offline_action.setCheckable(True)
        self.quit_action = self._action("&Quit", self.close, "Ctrl+Q")
        self.quit_action.setMenuRole(QAction.MenuRole.QuitRole)
        file_menu.addActions([self.new_action, self.sync_action, self.offline_action])
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)

        edit_menu = menu.addMenu("&Edit")
        self.undo_action = self._action("&Undo my last change", self.undo, "Ctrl+Z",
                                        "Undo your own last change to this customer")
        self.redo_action = self._action("&Redo", self.redo,
                                        ["Ctrl+Shift+Z", QKeySequence.StandardKey.Redo])
        self.find_action = self._action("&Find customer…", self.directory.focus_search,
                                        "Ctrl+F", "Search the customer directory")
        edit_menu.addActions([self.undo_action, self.redo_action])
        edit_menu.addSeparator()
        edit_menu.addAction(self.find_action)
        edit_menu.aboutToShow.connect(self._update_edit_actions)

        view_menu = menu.addMenu("&View")
        activity = self.activity.toggleViewAction()
        activity.setText("&Activity")
        activity.setShortcut(QKeySequence("Ctrl+1"))
        conflicts = self.conflicts.toggleViewAction()
        conflicts.setText("&Conflicts")
        conflicts.setShortcut(QKeySequence("Ctrl+2"))
        self.outbox_action = self._action("&Outbox…", self.show_outbox, "Ctrl+3",
                                          "Changes waiting to sync")
        self.next_pane_action = self._action("&Next pane", self.focus_next_pane, "F6")
        view_menu.addActions([activity, conflicts, self.outbox_action])
        view_menu.addSeparator()
        view_menu.addAction(self.next_pane_action)

        help_menu = menu.addMenu("&Help")
        self.about_action = self._action("&About Live Edit", self.show_about)
        self.about_action.setMenuRole(QAction.MenuRole.AboutRole)
        help_menu.addAction(self.about_action)

    def _connect_signals(self) -> None:
        self.bridge.statusChanged.connect(self._on_status)
        self.bridge.outboxChanged.connect(self._on_outbox)
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

    def closeEvent(self, event: QCloseEvent) -> None:
        """Save the layout, stop routing errors here, and say so."""
        self.save_layout()
        if error_sink() == self.error_area.report:
            set_error_sink(None)
        if self._outbox is not None:
            self._outbox.close()
        super().closeEvent(event)
        self.closed.emit()

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
        self.resize(1280, 800)
        self.splitter.setSizes([240, 900])

    # --- slots -----------------------------------------------------------------------

    def _on_status(self, status: Any) -> None:
        self.indicator.set_status(status)
        self.progress.set_status(status)

    def _on_outbox(self, pending: int) -> None:
        self.indicator.set_pending(pending)
        self.progress.set_pending(pending)

    def _on_document(self, event: Any) -> None:
        if event.customer_id == self.customer_view.current_customer():
            self._update_edit_actions()

    def show_customer(self, customer_id: str) -> None:
        """Open a customer in the customer view (and select it in the directory)."""
        self.customer_view.show_customer(customer_id)
        self.directory.select_customer(customer_id)
        self._update_edit_actions()

    def _new_customer(self) -> None:
        self.customer_view.new_customer()

    def set_offline(self, offline: bool) -> None:
        """File > Work offline: disconnect (edits stay queued) or connect again."""
        self.offline_action.setChecked(offline)
        if offline:
            spawn(self.core.disconnect(), what="go offline")
            self.show_notice("Working offline: your changes wait in the outbox.")
        else:
            spawn(self.start(), what="go online")

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

    def _update_edit_actions(self) -> None:
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
        self._update_edit_actions()

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
        """F6: move the keyboard focus to the next pane (directory, customer, docks)."""
        panes = [w for w in (self.directory, self.customer_view, self.activity.tree,
                             self.conflicts.tree) if w.isVisible()]
        if not panes:
            return
        focus = self.focusWidget()
        current = next((i for i, p in enumerate(panes)
                        if focus is not None and (focus is p or p.isAncestorOf(focus))), -1)
        panes[(current + 1) % len(panes)].setFocus(Qt.FocusReason.TabFocusReason)
