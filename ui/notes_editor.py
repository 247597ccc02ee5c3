"""Collaborative case notes: a plain-text editor bound to the customer's shared notes.

Each local change (``QTextDocument.contentsChange``) becomes ``notes_delete`` +
``notes_insert`` on the core, queued and sent strictly in order by one worker, so fast
typing never interleaves two edits. A remote change is applied as the smallest range edit
(common prefix/suffix), not by replacing the whole text, and this rep's cursor and
selection are shifted by it, so they stay on the same words. Other reps' cursors (their
presence state ``{"field": "notes", "cursor": n}``) are drawn as thin coloured carets with
a small flag; their name shows beside the flag for :data:`TAG_MS` after the caret moved
(then only the caret stays, so the name never sits on the text being read), and the caret
goes as soon as they leave the notes or the customer. This rep's own cursor goes out the
same way, throttled.

Positions on the core are Python string indices (code points); Qt counts UTF-16 units.
:func:`to_qt` and :func:`from_qt` convert, so emoji and other astral characters are safe.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QRect, Qt, QTimer
from PySide6.QtGui import QColor, QFocusEvent, QFontMetrics, QPainter, QPaintEvent, QTextCursor
from PySide6.QtWidgets import QPlainTextEdit, QWidget

from app.core import ClientCore
from app.events import DocumentChanged
from ui.bridge import CoreBridge
from ui.colors import presence_color
from ui.tasks import spawn

__all__ = ["NotesEditor", "common_affixes", "from_qt", "to_qt"]

log = logging.getLogger(__name__)

PRESENCE_THROTTLE_MS = 250
#: How long another rep's name shows beside their caret after it moved.
TAG_MS = 2500
FIELD = "notes"


def to_qt(text: str, index: int) -> int:
    """The Qt (UTF-16) position of Python index ``index`` in ``text``."""
    head = text[:index]
    if head.isascii():
        return len(head)
    return len(head.encode("utf-16-le")) // 2


def from_qt(text: str, position: int) -> int:
    """The Python index of Qt (UTF-16) position ``position`` in ``text``."""
    if text.isascii():
        return min(position, len(text))
    units = text.encode("utf-16-le")[: position * 2]
    return len(units.decode("utf-16-le", errors="ignore"))


def common_affixes(old: str, new: str) -> tuple[int, int]:
    """Lengths of the common prefix and (non-overlapping) common suffix of two texts.

    Binary search over slice comparisons: C-speed even for 200,000 characters.
    """
    limit = min(len(old), len(new))
    lo, hi = 0, limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if old[:mid] == new[:mid]:
            lo = mid
        else:
            hi = mid - 1
    prefix = lo
    lo, hi = 0, limit - prefix
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if old[len(old) - mid:] == new[len(new) - mid:]:
            lo = mid
        else:
            hi = mid - 1
    return prefix, lo


@dataclass(frozen=True, slots=True)
class _Op:
    """One queued local edit: delete ``length`` at ``index``, then insert ``text``."""

    index: int
    length: int
    text: str


@dataclass(frozen=True, slots=True)
class _Caret:
    """Another rep's cursor in the notes."""

    name: str
    index: int
    #: When the caret last moved (monotonic seconds): the name tag shows for TAG_MS.
    moved: float = 0.0


class NotesEditor(QPlainTextEdit):
    """The notes of one customer, edited by several reps at once."""

    def __init__(self, core: ClientCore, bridge: CoreBridge,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._core = core
        self._customer: str | None = None
        self._text = ""  # what the editor shows, as a Python string
        self._applying = False
        self._queue: list[_Op] = []
        self._worker: asyncio.Task[None] | None = None
        self._remote_waiting = False
        self._carets: dict[str, _Caret] = {}
        self._presence_timer = QTimer(self, singleShot=True, interval=PRESENCE_THROTTLE_MS)
        self._presence_timer.timeout.connect(self._send_presence)
        self._tag_timer = QTimer(self, singleShot=True)
        self._tag_timer.timeout.connect(self.viewport().update)
        self.setPlaceholderText("Case notes — everyone on this customer sees them as you type.")
        self.setTabChangesFocus(True)
        self.document().contentsChange.connect(self._on_contents_change)
        self.cursorPositionChanged.connect(self._cursor_moved)
        bridge.documentChanged.connect(self._on_document_changed)
        bridge.presenceUpdated.connect(self._on_presence)
        self.setEnabled(False)

    # --- public API --------------------------------------------------------------------

    def set_customer(self, customer_id: str | None, notes: str = "") -> None:
        """Show ``customer_id``'s notes (None: nothing, disabled)."""
        self._customer = customer_id
        self._queue.clear()
        self._carets.clear()
        self._remote_waiting = False
        self._replace_all(notes)
        self.setEnabled(customer_id is not None)
        if customer_id is not None:
            self._on_presence(customer_id, self._core.presence(customer_id))

    def text(self) -> str:
        """The notes as shown (including edits still on their way to the core)."""
        return self._text

    def busy(self) -> bool:
        """True while local edits are still being written to the core."""
        return bool(self._queue) or (self._worker is not None and not self._worker.done())

    def remote_carets(self) -> dict[str, tuple[str, int]]:
        """Other reps' cursors: session id → (name, index)."""
        return {sid: (c.name, c.index) for sid, c in self._carets.items()}

    def caret_tags(self) -> list[str]:
        """The names shown beside carets now (each for TAG_MS after its caret moved)."""
        now = time.monotonic()
        return [c.name for c in self._carets.values() if now - c.moved < TAG_MS / 1000]

    # --- local edits -------------------------------------------------------------------

    def _on_contents_change(self, position: int, removed: int, added: int) -> None:
        if self._applying or self._customer is None:
            return
        old, new = self._text, self.toPlainText()
        if old == new:
            return
        op = self._op_from_hint(old, new, position, removed, added)
        self._text = new
        self._queue.append(op)
        if self._worker is None or self._worker.done():
            self._worker = spawn(self._drain(self._customer), what="save notes")

    @staticmethod
    def _op_from_hint(old: str, new: str, position: int, removed: int, added: int) -> _Op:
        """The edit Qt reported, checked against the texts (Qt's counts can be off by the
        final paragraph separator); a prefix/suffix diff when they do not agree."""
        start = from_qt(old, position)
        end = from_qt(old, position + removed)
        inserted = new[start:from_qt(new, position + added)]
        if old[:start] + inserted + old[end:] == new:
            return _Op(start, end - start, inserted)
        prefix, suffix = common_affixes(old, new)
        return _Op(prefix, len(old) - prefix - suffix, new[prefix:len(new) - suffix])

    async def _drain(self, customer_id: str) -> None:
        """Send queued edits one at a time, in order; then apply a remote change that
        arrived meanwhile."""
        while self._queue and self._customer == customer_id:
            op = self._queue.pop(0)
            if op.length:
                await self._core.notes_delete(customer_id, op.index, op.length)
            if op.text:
                await self._core.notes_insert(customer_id, op.index, op.text)
        if self._remote_waiting and self._customer == customer_id:
            self._remote_waiting = False
            self._apply_remote()

    # --- remote edits ------------------------------------------------------------------

    def _on_document_changed(self, event: DocumentChanged) -> None:
        if event.customer_id != self._customer or "notes" not in event.roots:
            return
        if self.busy():
            self._remote_waiting = True  # applied once our own edits are in
            return
        self._apply_remote()

    def _apply_remote(self) -> None:
        if self._customer is None:
            return
        new = self._core.customer(self._customer).notes
        old = self._text
        if new == old:
            return
        prefix, suffix = common_affixes(old, new)
        start, end, inserted = prefix, len(old) - suffix, new[prefix:len(new) - suffix]
        cursor = self.textCursor()
        anchor = from_qt(old, cursor.anchor())
        position = from_qt(old, cursor.position())

        def shift(index: int) -> int:
            if index <= start:
                return index
            if index >= end:
                return index + len(inserted) - (end - start)
            return start + len(inserted)

        self._edit_range(old, start, end, inserted)
        self._text = new
        cursor = self.textCursor()
        cursor.setPosition(to_qt(new, shift(anchor)))
        cursor.setPosition(to_qt(new, shift(position)), QTextCursor.MoveMode.KeepAnchor)
        self._applying = True
        try:
            self.setTextCursor(cursor)
        finally:
            self._applying = False
        self._carets = {sid: _Caret(c.name, shift(c.index), c.moved)
                        for sid, c in self._carets.items()}
        self.viewport().update()

    def _edit_range(self, old: str, start: int, end: int, inserted: str) -> None:
        """Replace old[start:end] with ``inserted`` without touching the rest (or the
        undo stack: undo belongs to this rep's own edits)."""
        document = self.document()
        self._applying = True
        try:
            document.setUndoRedoEnabled(False)
            edit = QTextCursor(document)
            edit.setPosition(to_qt(old, start))
            edit.setPosition(to_qt(old, end), QTextCursor.MoveMode.KeepAnchor)
            edit.insertText(inserted)
        finally:
            document.setUndoRedoEnabled(True)
            self._applying = False

    def _replace_all(self, text: str) -> None:
        self._applying = True
        try:
            self.setPlainText(text)
            self._text = text
        finally:
            self._applying = False

    # --- presence ------------------------------------------------------------------------

    def _cursor_moved(self) -> None:
        if not self._applying and self.hasFocus() and not self._presence_timer.isActive():
            self._presence_timer.start()

    def focusInEvent(self, event: QFocusEvent) -> None:
        """Tell the others this rep is in the notes."""
        super().focusInEvent(event)
        self._presence_timer.start()

    def _send_presence(self) -> None:
        if self._customer is None:
            return
        index = from_qt(self._text, self.textCursor().position())
        state = {"field": FIELD, "cursor": index, "name": self._core.username or ""}
        spawn(self._core.set_presence(self._customer, state), what="send presence")

    def _on_presence(self, customer_id: str, peers: dict[str, tuple[str, Any]]) -> None:
        if customer_id != self._customer:
            return
        carets: dict[str, _Caret] = {}
        now = time.monotonic()
        for session_id, (user, state) in peers.items():
            if not isinstance(state, dict) or state.get("field") != FIELD:
                continue  # left the notes (or the customer): the caret goes
            cursor = state.get("cursor")
            if isinstance(cursor, int):
                name = str(state.get("name") or user)
                index = max(0, min(cursor, len(self._text)))
                old = self._carets.get(session_id)
                moved = old.moved if old is not None and old.index == index else now
                carets[session_id] = _Caret(name, index, moved)
        self._carets = carets
        if carets:
            self._tag_timer.start(TAG_MS + 50)
        self.viewport().update()

    def paintEvent(self, event: QPaintEvent) -> None:
        """The text, then the other reps' carets with a small name tag."""
        super().paintEvent(event)
        if not self._carets:
            return
        painter = QPainter(self.viewport())
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        font = self.font()
        font.setPointSizeF(max(7.0, font.pointSizeF() * 0.8))
        painter.setFont(font)
        metrics = QFontMetrics(font)
        tagged = set(self.caret_tags())
        for caret in self._carets.values():
            self._paint_caret(painter, metrics, caret, caret.name in tagged)
        painter.end()

    def _paint_caret(self, painter: QPainter, metrics: QFontMetrics, caret: _Caret,
                     tag_shown: bool) -> None:
        cursor = QTextCursor(self.document())
        last = self.document().characterCount() - 1
        cursor.setPosition(min(to_qt(self._text, caret.index), last))
        rect = self.cursorRect(cursor)
        color = presence_color(caret.name, self.palette())
        painter.fillRect(QRect(rect.left(), rect.top(), 2, rect.height()), color)
        painter.fillRect(QRect(rect.left() - 2, rect.top() - 2, 6, 4), color)  # the flag
        if not tag_shown:
            return
        label = metrics.elidedText(caret.name, Qt.TextElideMode.ElideRight, 120)
        tag = QRect(rect.left(), rect.top() - metrics.height() - 1,
                    metrics.horizontalAdvance(label) + 8, metrics.height())
        if tag.top() < 0:
            tag.moveTop(rect.bottom() + 1)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(color)
        painter.drawRoundedRect(tag, 3, 3)
        painter.setPen(QColor("white"))
        painter.drawText(tag, Qt.AlignmentFlag.AlignCenter, label)
