"""The main window's menu bar: File, Edit, View (with Theme) and Help, their actions,
shortcuts and icons.

:func:`build_menus` creates every action on the window it is given (``window.undo_action``,
``window.theme_actions`` …), so the window's slots, the shortcut sheet and tests reach them
there; each action is also added to the window itself, so its shortcut works with the menu
bar hidden. Icons come from the platform's icon theme, the style's own where it has none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtGui import QAction, QActionGroup, QIcon, QKeySequence
from PySide6.QtWidgets import QStyle

from .deleted_customers import show_deleted_customers
from .theme import THEMES, saved_theme

if TYPE_CHECKING:
    from .main_window import MainWindow

__all__ = ["build_menus"]


def build_menus(window: MainWindow) -> None:
    """Build the menu bar and its actions (stored on ``window``: ``undo_action`` …)."""
    menu = window.menuBar()
    menu.setAccessibleName("Menu bar")
    file_menu = menu.addMenu("&File")
    window.new_action = _action(window, "&New customer", window.new_customer, "Ctrl+N",
                                "Create a customer (works offline)")
    window.sync_action = _action(window, "&Sync now", window.sync_now, "F5",
                                 "Send waiting changes and fetch the latest")
    window.offline_action = _action(
        window, "Work &offline", window.set_offline, "Ctrl+Shift+O",
        "Disconnect on purpose; edits queue up and sync when you go back online",
    )
    window.offline_action.setCheckable(True)
    window.sign_out_action = _action(
        window, "Sign &out", lambda: window.sign_out(switch=False), None,
        "Sign out of this server; this computer forgets the saved sign-in")
    window.switch_action = _action(
        window, "S&witch server or account…", lambda: window.sign_out(switch=True), None,
        "Sign out and sign in to another server or as another user")
    window.quit_action = _action(window, "&Quit", window.close, "Ctrl+Q")
    window.quit_action.setMenuRole(QAction.MenuRole.QuitRole)
    file_menu.addActions([window.new_action, window.sync_action, window.offline_action])
    file_menu.addSeparator()
    file_menu.addActions([window.sign_out_action, window.switch_action])
    file_menu.addSeparator()
    file_menu.addAction(window.quit_action)

    edit_menu = menu.addMenu("&Edit")
    window.undo_action = _action(window, "&Undo my last change", window.undo, "Ctrl+Z",
                                 "Undo your own last change to this customer")
    window.redo_action = _action(window, "&Redo", window.redo,
                                 ["Ctrl+Shift+Z", QKeySequence.StandardKey.Redo])
    window.find_action = _action(window, "&Find customer…", window.directory.focus_search,
                                 "Ctrl+F", "Search the customer directory")
    edit_menu.addActions([window.undo_action, window.redo_action])
    edit_menu.addSeparator()
    edit_menu.addAction(window.find_action)
    edit_menu.addAction(_action(window, "&Deleted customers…", lambda: show_deleted_customers(
        window.core, window.bridge, window, window.show_customer)))
    edit_menu.aboutToShow.connect(window.update_edit_actions)

    view_menu = menu.addMenu("&View")
    activity = window.activity.toggleViewAction()
    activity.setText("&Activity")
    activity.setShortcut(QKeySequence("Ctrl+1"))
    conflicts = window.conflicts.toggleViewAction()
    conflicts.setText("&Conflicts")
    conflicts.setShortcut(QKeySequence("Ctrl+2"))
    window.outbox_action = _action(window, "&Outbox…", window.show_outbox, "Ctrl+3",
                                   "Changes waiting to sync")
    window.next_pane_action = _action(window, "&Next pane", window.focus_next_pane, "F6")
    view_menu.addActions([activity, conflicts, window.outbox_action])
    view_menu.addSeparator()
    _build_theme_menu(window, view_menu.addMenu("&Theme"))
    view_menu.addSeparator()
    view_menu.addAction(window.next_pane_action)

    help_menu = menu.addMenu("&Help")
    window.shortcuts_action = _action(window, "&Keyboard shortcuts", window.show_shortcuts,
                                      ["F1", "Ctrl+/"])
    window.about_action = _action(window, "&About Live Edit", window.show_about)
    window.about_action.setMenuRole(QAction.MenuRole.AboutRole)
    help_menu.addActions([window.shortcuts_action, window.about_action])
    _icons(window)


def _build_theme_menu(window: MainWindow, menu: Any) -> None:
    """View > Theme: System / Light / Dark, one ticked, remembered."""
    group = QActionGroup(window)
    group.setExclusive(True)
    current = saved_theme(window.settings)
    window.theme_actions = {}
    for theme in THEMES:
        action = QAction(theme.capitalize() if theme != "system" else "Same as system",
                         window, checkable=True)
        action.setChecked(theme == current)
        action.triggered.connect(lambda _c=False, t=theme: window.set_theme(t))
        group.addAction(action)
        menu.addAction(action)
        window.theme_actions[theme] = action


def _action(window: MainWindow, text: str, slot: Any, shortcut: Any = None,
            tip: str = "") -> QAction:
    """One menu action with its shortcuts, status tip and tooltip."""
    action = QAction(text, window)
    if shortcut is not None:
        shortcuts = shortcut if isinstance(shortcut, list) else [shortcut]
        action.setShortcuts([QKeySequence(s) for s in shortcuts])
    action.setStatusTip(tip)
    action.setToolTip(tip or text.replace("&", ""))
    action.triggered.connect(slot)
    window.addAction(action)  # shortcuts work even with the menu bar hidden
    return action


def _icons(window: MainWindow) -> None:
    """Menu icons from the platform's icon theme, the style's own where none."""
    pixmap = QStyle.StandardPixmap
    for action, theme, fallback in (
        (window.new_action, "document-new", pixmap.SP_FileIcon),
        (window.sync_action, "view-refresh", pixmap.SP_BrowserReload),
        (window.quit_action, "application-exit", pixmap.SP_DialogCloseButton),
        (window.undo_action, "edit-undo", pixmap.SP_ArrowBack),
        (window.redo_action, "edit-redo", pixmap.SP_ArrowForward),
        (window.find_action, "edit-find", pixmap.SP_FileDialogContentsView),
        (window.outbox_action, "mail-outbox", pixmap.SP_FileDialogListView),
        (window.shortcuts_action, "help-keyboard-shortcuts", pixmap.SP_DialogHelpButton),
        (window.about_action, "help-about", pixmap.SP_MessageBoxInformation),
    ):
        action.setIcon(QIcon.fromTheme(theme, window.style().standardIcon(fallback)))
