"""One field of the customer form: its editor, an inline error, and who else is on it.

A :class:`FieldEditor` knows the value the core last gave it (``base``) and whether the rep
has typed something else since (``dirty``). It commits on ``editingFinished`` (or when a
tier is picked) by emitting ``commitRequested``. A value from somebody else replaces the
text unless the rep is typing in this very field; then the rep's text stays, and a note
under the field says what changed underneath (Esc takes their value). A remote change
is highlighted for ~1.5 s with a palette-derived colour that fades out; its tooltip says who
changed it, when, and what it was before.

"Sam is editing" is a small chip inside the right end of the editor (it never pushes the
form down), greyed out while offline (presence may not be current). A mark beside the
editor says "not yet synced" while the rep's edit waits in the outbox and "saved" once the
server acknowledged it.
"""

from __future__ import annotations

import time
from enum import StrEnum

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QKeyEvent, QPalette
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QLineEdit, QVBoxLayout, QWidget

from ui.colors import blend, changed_color, presence_color

__all__ = ["HIGHLIGHT_MS", "FieldEditor", "SyncMark"]

HIGHLIGHT_MS = 1500
#: How long "saved" stays beside a field after the server acknowledged it.
SAVED_MS = 2500
_FADE_STEPS = 30
_WARNING = QColor(200, 60, 40)
_WARNING_DARK = QColor(255, 140, 120)


def _quote(value: str | None) -> str:
    return f"“{value}”" if value else "empty"


class SyncMark(StrEnum):
    """What the mark beside a field says about the rep's own last edit of it."""

    NONE = ""
    PENDING = "Not yet synced: this change waits in the outbox"
    SAVED = "Saved on the server"


def names_phrase(names: list[str]) -> str:
    """ "Sam", "Sam and Alex", "Sam, Alex and Kim"."""
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} and {names[-1]}"


class FieldEditor(QWidget):
    """Editor + hint lines for one customer field."""

    commitRequested = Signal(str, object)
    focused = Signal(str, int)

    def __init__(self, name: str, label: str, choices: tuple[str, ...] | None = None,
                 parent: QWidget | None = None, *, max_length: int | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self.label = label
        self.base: str | None = None
        self._underneath: str | None = None
        self.editor: QLineEdit | QComboBox
        if choices is None:
            line = QLineEdit(self)
            line.editingFinished.connect(self._finish)
            line.setClearButtonEnabled(False)
            if max_length:
                line.setMaxLength(max_length)
            self.editor = line
        else:
            combo = QComboBox(self)
            combo.addItem("—", None)
            for choice in choices:
                combo.addItem(choice.capitalize(), choice)
            combo.activated.connect(self._picked)
            self.editor = combo
        self.editor.setAccessibleName(label)
        self.editor.installEventFilter(self)
        self.error = QLabel(self)
        self.note = QLabel(self)
        #: "Sam is editing", drawn inside the editor's right end (not in the layout).
        self.chip = QLabel(self.editor)
        self.chip.setObjectName("editingChip")
        self.chip.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.chip.hide()
        self._chip_color = QColor()
        self._stale = False
        self.mark = QLabel(self)
        self.mark.setObjectName("syncMark")
        self.mark.setFixedWidth(14)
        self.mark.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._sync = SyncMark.NONE
        self._saved = QTimer(self, singleShot=True, interval=SAVED_MS)
        self._saved.timeout.connect(lambda: self.set_sync_mark(SyncMark.NONE))
        self._fade_step = 0
        self._fade = QTimer(self, interval=HIGHLIGHT_MS // _FADE_STEPS)
        self._fade.timeout.connect(self._fade_out)
        self._build()

    def _build(self) -> None:
        for hint in (self.error, self.note):
            hint.setWordWrap(True)
            hint.hide()
            font = hint.font()
            font.setPointSizeF(font.pointSizeF() * 0.9)
            hint.setFont(font)
        dark = self.palette().color(QPalette.ColorRole.Window).lightness() < 128
        self.error.setStyleSheet(f"color: {(_WARNING_DARK if dark else _WARNING).name()}")
        font = self.chip.font()
        font.setPointSizeF(font.pointSizeF() * 0.85)
        self.chip.setFont(font)
        self.mark.setFont(font)
        hints = QHBoxLayout()
        hints.setContentsMargins(2, 0, 0, 0)
        hints.addWidget(self.error, 1)
        line = QHBoxLayout()
        line.setContentsMargins(0, 0, 0, 0)
        line.setSpacing(2)
        line.addWidget(self.editor, 1)
        line.addWidget(self.mark)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(line)
        layout.addLayout(hints)
        layout.addWidget(self.note)

    # --- values --------------------------------------------------------------------------

    def text(self) -> str:
        """What the editor shows now."""
        if isinstance(self.editor, QComboBox):
            return str(self.editor.currentData() or "")
        return self.editor.text()

    def value(self) -> str | None:
        """The editor's value as the core would store it (empty → None)."""
        return self.text().strip() or None

    def dirty(self) -> bool:
        """True when the rep typed something that is not committed yet."""
        return isinstance(self.editor, QLineEdit) and self.value() != self.base

    def typing(self) -> bool:
        """True when the rep is in this field with uncommitted text."""
        return self.editor.hasFocus() and self.dirty()

    def set_value(self, value: str | None) -> None:
        """Show a value from the core (keeps the cursor if the rep is in the field)."""
        self.base = value
        self._underneath = None
        self.note.hide()
        if isinstance(self.editor, QComboBox):
            index = self.editor.findData(value)
            self.editor.setCurrentIndex(max(index, 0))
            return
        if self.editor.text() != (value or ""):
            position = self.editor.cursorPosition()
            self.editor.setText(value or "")
            self.editor.setCursorPosition(min(position, len(value or "")))

    def changed_remotely(self, value: str | None, author: str, when: float) -> None:
        """Somebody else set this field: show it (or keep the rep's typing), highlight it,
        and say who did it, and what it was, in the tooltip."""
        before = self.base
        if self.typing():
            self.base = value
            self._underneath = value
            self.note.setText(f"{author or 'Someone'} changed this to {_quote(value)} while "
                              "you were typing. Enter keeps yours, Esc takes theirs.")
            self.note.setStyleSheet("")
            self.note.show()
        else:
            self.set_value(value)
        self.editor.setToolTip(f"Changed by {author or 'someone'} at "
                               f"{time.strftime('%H:%M', time.localtime(when))}"
                               f" (was {_quote(before)})")
        self.highlight()

    def changed_underneath(self) -> bool:
        """True while the rep's text is kept over a value somebody else set."""
        return self._underneath is not None

    # --- feedback ------------------------------------------------------------------------

    def highlight(self) -> None:
        """Show a soft background that holds, then fades out, over ~1.5 s."""
        self._fade_step = 0
        self._paint_background(changed_color(self.palette()))
        self._fade.start()

    def stop_highlight(self) -> None:
        """Drop the highlight at once (the form is about to show something else)."""
        if self._fade.isActive():
            self._fade.stop()
            self.editor.setStyleSheet("")

    def highlighted(self) -> bool:
        """True while the change highlight is showing."""
        return self._fade.isActive()

    def _fade_out(self) -> None:
        """One step of the fade: full colour for the first ~45 %, then towards Base."""
        self._fade_step += 1
        progress = (self._fade_step / _FADE_STEPS - 0.45) / 0.55
        if self._fade_step >= _FADE_STEPS:
            self._fade.stop()
            self.editor.setStyleSheet("")  # back to the app's look
            return
        if progress > 0:
            base = self.palette().color(QPalette.ColorRole.Base)
            self._paint_background(blend(changed_color(self.palette()), base, progress))

    def _paint_background(self, color: QColor) -> None:
        # A style sheet, not the palette: under the app's style sheet (ui.theme) a
        # widget's palette no longer paints its background.
        self.editor.setStyleSheet(f"background-color: {color.name()};")

    def show_error(self, message: str | None) -> None:
        """A plain-words problem with the value, under the field (None: clear it)."""
        self.error.setText(message or "")
        self.error.setVisible(bool(message))

    def error_text(self) -> str:
        """The inline error shown now ("" if none)."""
        return "" if self.error.isHidden() else self.error.text()

    def set_editing_names(self, names: list[str]) -> None:
        """Other reps whose presence says they are in this field (a chip inside the
        editor's right end: the form never moves)."""
        if not names:
            self.chip.hide()
            self._reserve(0)
            return
        verb = "is" if len(names) == 1 else "are"
        self.chip.setText(f"{names_phrase(names)} {verb} editing")
        self._chip_color = presence_color(names[0], self.palette())
        self._paint_chip()
        self.chip.adjustSize()
        self.chip.show()
        self._place_chip()

    def editing_text(self) -> str:
        """The "Sam is editing" chip's text ("" when hidden)."""
        return self.chip.text() if not self.chip.isHidden() else ""

    def set_presence_stale(self, stale: bool) -> None:
        """Offline: the chip may not be current, so it is greyed out."""
        self._stale = stale
        self._paint_chip()

    def _paint_chip(self) -> None:
        color = self.palette().color(QPalette.ColorRole.PlaceholderText) if self._stale \
            else self._chip_color
        base = self.palette().color(QPalette.ColorRole.Base)
        self.chip.setStyleSheet(
            f"color: {color.name()}; background: {base.name()}; padding: 0 4px;"
            f" border-left: 2px solid {color.name()};")
        self.chip.setToolTip("Maybe not current: you are offline" if self._stale else "")

    def _place_chip(self) -> None:
        if self.chip.isHidden():
            return
        self.chip.adjustSize()
        editor = self.editor.rect()
        right = 22 if isinstance(self.editor, QComboBox) else 3
        width = min(self.chip.width(), max(0, editor.width() // 2))
        self.chip.setGeometry(editor.width() - width - right,
                              (editor.height() - self.chip.height()) // 2,
                              width, self.chip.height())
        self._reserve(width + right)

    def _reserve(self, width: int) -> None:
        """Keep the rep's text clear of the chip."""
        if isinstance(self.editor, QLineEdit):
            self.editor.setTextMargins(0, 0, width, 0)

    def set_sync_mark(self, mark: SyncMark) -> None:
        """Show whether the rep's last edit of this field is still waiting or saved."""
        self._sync = mark
        self._saved.stop()
        quiet = self.palette().color(QPalette.ColorRole.PlaceholderText)
        accent = self.palette().color(QPalette.ColorRole.Highlight)
        if mark is SyncMark.PENDING:
            self.mark.setText("●")
            self.mark.setStyleSheet(f"color: {quiet.name()}")
        elif mark is SyncMark.SAVED:
            self.mark.setText("✓")
            self.mark.setStyleSheet(f"color: {accent.name()}")
            self._saved.start()
        else:
            self.mark.setText("")
        self.mark.setToolTip(mark.value)
        self.mark.setAccessibleDescription(mark.value)

    def sync_mark(self) -> SyncMark:
        """The mark shown now."""
        return self._sync

    def set_read_only(self, read_only: bool) -> None:
        """Deleted customers are shown, not edited."""
        if isinstance(self.editor, QLineEdit):
            self.editor.setReadOnly(read_only)
        else:
            self.editor.setEnabled(not read_only)

    # --- events --------------------------------------------------------------------------

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Focus-in reports presence; Esc throws away uncommitted typing."""
        if watched is self.editor:
            if event.type() == QEvent.Type.Resize:
                self._place_chip()
            if event.type() == QEvent.Type.FocusIn:
                position = self.editor.cursorPosition() if isinstance(
                    self.editor, QLineEdit) else 0
                self.focused.emit(self.name, position)
            elif (isinstance(event, QKeyEvent) and event.type() == QEvent.Type.KeyPress
                  and event.key() == Qt.Key.Key_Escape and self.dirty()):
                self.set_value(self.base)
                self.show_error(None)
                return True
        return super().eventFilter(watched, event)

    def _finish(self) -> None:
        if self.dirty():
            self._underneath = None
            self.commitRequested.emit(self.name, self.value())

    def _picked(self, _index: int) -> None:
        value = self.value()
        if value != self.base:
            self.commitRequested.emit(self.name, value)
