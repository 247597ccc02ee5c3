"""The banners above a customer's form: an open conflict, and "this customer was deleted".

A :class:`ConflictBanner` says in plain words who overwrote this rep's concurrent value
(:func:`conflict_sentence`) and offers "Keep theirs" / "Use mine"; a :class:`DeletedBanner`
says the details are read-only and offers Restore. The customer view connects the buttons.
"""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

from app.replica import Conflict
from sync.protocol import schema
from ui.colors import blend

__all__ = ["ConflictBanner", "DeletedBanner", "conflict_sentence"]

_AMBER = QColor(240, 170, 30)
_RED = QColor(220, 70, 60)


def conflict_sentence(conflict: Conflict) -> str:
    """ "Sam changed City to “Lyon” while you had “Paris”." """
    field = schema.label(conflict.field)
    who = conflict.author or "Someone"
    theirs = f"changed {field} to “{conflict.theirs}”" if conflict.theirs else f"cleared {field}"
    mine = f"“{conflict.mine}”" if conflict.mine else "it empty"
    return f"{who} {theirs} while you had {mine}."


def _tint(frame: QFrame, tint: QColor) -> None:
    """A framed panel on the window colour blended with ``tint``."""
    frame.setFrameShape(QFrame.Shape.StyledPanel)
    frame.setAutoFillBackground(True)
    palette = frame.palette()
    window = palette.color(QPalette.ColorRole.Window)
    palette.setColor(QPalette.ColorRole.Window, blend(window, tint, 0.22))
    frame.setPalette(palette)


class ConflictBanner(QFrame):
    """One open conflict with its two choices."""

    def __init__(self, conflict: Conflict, parent: QWidget) -> None:
        super().__init__(parent)
        self.conflict = conflict
        _tint(self, _AMBER)
        self.text = QLabel(conflict_sentence(conflict), self)
        self.text.setWordWrap(True)
        self.keep_theirs = QPushButton("Keep theirs", self)
        self.use_mine = QPushButton("Use mine", self)
        self.keep_theirs.setToolTip(f"Keep “{conflict.theirs or ''}” and dismiss this")
        self.use_mine.setToolTip(f"Put back “{conflict.mine or ''}” as a new change")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.keep_theirs)
        layout.addWidget(self.use_mine)


class DeletedBanner(QFrame):
    """The customer was deleted: its details are read-only until Restore (hidden at first)."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        _tint(self, _RED)
        self.text = QLabel("This customer was deleted. Its details are read-only "
                           "until you restore it.", self)
        self.text.setWordWrap(True)
        self.restore_button = QPushButton("Restore", self)
        row = QHBoxLayout(self)
        row.setContentsMargins(10, 6, 6, 6)
        row.addWidget(self.text, 1)
        row.addWidget(self.restore_button)
        self.hide()
