"""Help > Keyboard shortcuts: every shortcut of the main window, read from its menus.

The sheet is built from the menu bar's actions at the time it opens (so a new action
with a shortcut shows up by itself), plus the keys that belong to widgets rather than
menus (Tab, F6, arrows, Enter, Esc). Non-modal.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QMainWindow,
    QMenu,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
)

__all__ = ["WIDGET_KEYS", "ShortcutSheet", "shortcut_rows"]

#: Keys handled by widgets, not menu actions: (where, key, what it does).
WIDGET_KEYS: tuple[tuple[str, str, str], ...] = (
    ("Anywhere", "Tab / Shift+Tab", "Next / previous control"),
    ("Directory", "↑ ↓", "Move through the customers"),
    ("Directory", "Enter", "Open the selected customer"),
    ("Search box", "↓", "Into the list"),
    ("Search box", "Enter", "Open the first match"),
    ("A field", "Enter", "Save the field"),
    ("A field", "Esc", "Throw away what you typed"),
)


def shortcut_rows(window: QMainWindow) -> list[tuple[str, str, str]]:
    """(menu, shortcut, action) for every menu action that has a shortcut."""
    rows: list[tuple[str, str, str]] = []

    def walk(menu: QMenu, title: str) -> None:
        for action in menu.actions():
            sub = action.menu()
            if isinstance(sub, QMenu):
                walk(sub, f"{title} > {action.text().replace('&', '')}")
                continue
            keys = [s.toString(QKeySequence.SequenceFormat.NativeText)
                    for s in action.shortcuts() if not s.isEmpty()]
            if keys and not action.isSeparator():
                rows.append((title, " or ".join(keys),
                             action.text().replace("&", "").rstrip("…")))

    for top in window.menuBar().actions():
        menu = top.menu()
        if isinstance(menu, QMenu):
            walk(menu, top.text().replace("&", ""))
    return rows


class ShortcutSheet(QDialog):
    """The sheet: a two-level list (menu → shortcut, what it does)."""

    def __init__(self, window: QMainWindow) -> None:
        super().__init__(window)
        self.setWindowTitle("Keyboard shortcuts")
        self.setAccessibleName("Keyboard shortcuts")
        self.tree = QTreeWidget(self)
        self.tree.setColumnCount(2)
        self.tree.setHeaderLabels(["Keys", "Does"])
        self.tree.setRootIsDecorated(False)
        self.tree.setAlternatingRowColors(True)
        groups: dict[str, QTreeWidgetItem] = {}
        for where, keys, what in [*shortcut_rows(window), *WIDGET_KEYS]:
            group = groups.get(where)
            if group is None:
                group = QTreeWidgetItem(self.tree, [where])
                font = group.font(0)
                font.setBold(True)
                group.setFont(0, font)
                group.setFirstColumnSpanned(True)
                groups[where] = group
            QTreeWidgetItem(group, [keys, what])
        self.tree.expandAll()
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tree)
        layout.addWidget(buttons)
        self.resize(460, 520)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

    def texts(self) -> list[str]:
        """Every "keys — does" line (for tests)."""
        lines = []
        for i in range(self.tree.topLevelItemCount()):
            group = self.tree.topLevelItem(i)
            assert group is not None
            for j in range(group.childCount()):
                child = group.child(j)
                if child is not None:
                    lines.append(f"{child.text(0)} — {child.text(1)}")
        return lines
