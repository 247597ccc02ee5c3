"""The app's look: Fusion on a system, light or dark palette, plus a little spacing.

:func:`apply_theme` sets the style, the palette and a small style sheet on the
application. ``system`` follows the platform's colour scheme (Qt's ``styleHints``), so a
desktop switching to dark takes the app along; ``light`` and ``dark`` force one. The
choice is kept in ``QSettings`` under :data:`THEME_KEY` (View > Theme). The style sheet
only adds air and emphasis (padding, rounded inputs, the offline bar, section headings);
every colour in it is a palette role, so it reads well on any palette.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

__all__ = ["STYLE_SHEET", "THEMES", "THEME_KEY", "apply_theme", "saved_theme"]

log = logging.getLogger(__name__)

THEMES = ("system", "light", "dark")
THEME_KEY = "appearance/theme"

STYLE_SHEET = """
QLineEdit, QComboBox, QPlainTextEdit, QTextEdit {
    padding: 3px 6px;
    border: 1px solid palette(mid);
    border-radius: 5px;
    selection-background-color: palette(highlight);
}
QLineEdit:focus, QComboBox:focus, QPlainTextEdit:focus, QTextEdit:focus {
    border: 1px solid palette(highlight);
}
QLineEdit:read-only { background: palette(window); }
QComboBox::drop-down { border: none; width: 18px; }
QPushButton { padding: 4px 12px; border-radius: 5px; }
QTableView, QTreeWidget, QTreeView, QListView {
    border: 1px solid palette(midlight);
    border-radius: 6px;
    selection-background-color: palette(highlight);
}
QTableView:focus, QTreeWidget:focus, QTreeView:focus, QListView:focus {
    border: 1px solid palette(highlight);
}
QHeaderView::section {
    padding: 4px 6px;
    border: none;
    border-bottom: 1px solid palette(midlight);
    background: palette(window);
}
QTabBar::tab { padding: 5px 14px; }
QStatusBar { border-top: 1px solid palette(midlight); }
QStatusBar::item { border: none; }
QLabel#formSection { padding-top: 6px; letter-spacing: 1px; }
QLabel#resultCount { padding: 0 2px; }
QFrame#offlineBar { border-bottom: 1px solid palette(mid); }
QSplitter::handle { background: transparent; }
QDockWidget::title { padding: 5px 8px; }
"""


def saved_theme(settings: QSettings) -> str:
    """The theme the rep chose ("system" unless they picked another)."""
    value = settings.value(THEME_KEY, "system")
    return value if value in THEMES else "system"


def _palette(dark: bool) -> QPalette:
    """A calm light or dark palette for Fusion."""
    if dark:
        window, base, text = QColor(37, 39, 43), QColor(28, 30, 33), QColor(228, 230, 235)
        button, mid, alt = QColor(48, 51, 56), QColor(70, 74, 80), QColor(33, 35, 39)
        highlight, link = QColor(70, 130, 230), QColor(120, 170, 255)
    else:
        window, base, text = QColor(244, 245, 247), QColor(255, 255, 255), QColor(29, 31, 35)
        button, mid, alt = QColor(250, 250, 251), QColor(196, 199, 204), QColor(247, 248, 250)
        highlight, link = QColor(38, 110, 220), QColor(30, 95, 200)
    palette = QPalette()
    roles = QPalette.ColorRole
    for role, color in (
        (roles.Window, window), (roles.WindowText, text), (roles.Base, base),
        (roles.AlternateBase, alt), (roles.Text, text), (roles.Button, button),
        (roles.ButtonText, text), (roles.Highlight, highlight),
        (roles.HighlightedText, QColor("white")), (roles.Link, link),
        (roles.ToolTipBase, base), (roles.ToolTipText, text), (roles.Mid, mid),
        (roles.Midlight, mid.lighter(115) if not dark else mid.darker(115)),
        (roles.PlaceholderText, QColor(text.red(), text.green(), text.blue(), 130)),
    ):
        palette.setColor(role, color)
    disabled = QColor(text.red(), text.green(), text.blue(), 120)
    for role in (roles.WindowText, roles.Text, roles.ButtonText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, disabled)
    return palette


def apply_theme(app: QApplication, theme: str) -> None:
    """Use ``theme`` ("system", "light" or "dark") for the whole application."""
    if theme not in THEMES:
        raise ValueError(f"unknown theme {theme!r}; use one of {', '.join(THEMES)}")
    app.setStyle("Fusion")
    hints = app.styleHints()
    scheme = {"light": Qt.ColorScheme.Light, "dark": Qt.ColorScheme.Dark}.get(
        theme, Qt.ColorScheme.Unknown)
    hints.setColorScheme(scheme)
    dark = hints.colorScheme() == Qt.ColorScheme.Dark if theme == "system" else theme == "dark"
    app.setPalette(_palette(dark))
    app.setStyleSheet(STYLE_SHEET)
    app.setProperty("liveeditTheme", theme)
    if not app.property("liveeditFollowsScheme"):
        app.setProperty("liveeditFollowsScheme", True)
        hints.colorSchemeChanged.connect(lambda _scheme: _follow(app))
    log.debug("theme %s (dark: %s)", theme, dark)


def _follow(app: QApplication) -> None:
    """The desktop switched light/dark: follow it when the rep chose "system"."""
    if app.property("liveeditTheme") == "system":
        dark = app.styleHints().colorScheme() == Qt.ColorScheme.Dark
        app.setPalette(_palette(dark))
