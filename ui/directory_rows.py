"""How a directory row looks: two lines drawn by a delegate, the search matches highlighted.

:class:`RowDelegate` paints the first column of the directory table: the name (bold), the
detail line under it (quiet), the query's matches on a soft highlight, and the other reps
on the customer as small avatars at the right (greyed out while offline). Where a match
starts is :func:`match_spans`: word prefixes, as the full-text index matches them, and the
digits a phone search matched whatever the punctuation on either side (as the digits index
does: ``app.replica.digit_terms``). :func:`detail_fields` picks the second line's fields;
the model fills the two roles the delegate reads, :data:`DETAIL_ROLE` and
:data:`VIEWERS_ROLE`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QSize, Qt
from PySide6.QtGui import QFont, QFontMetrics, QPainter, QPalette
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem

from app.replica import digit_terms
from sync.protocol import schema
from ui.colors import avatar_pixmap, blend

if TYPE_CHECKING:
    from ui.directory import DirectoryPanel

__all__ = ["DETAIL_ROLE", "NAME_MIN_WIDTH", "VIEWERS_ROLE", "RowDelegate", "detail_fields",
           "match_spans"]

#: The second line of a row: the directory fields that have no column of their own.
DETAIL_ROLE = Qt.ItemDataRole.UserRole + 1
#: Who else is on the customer now (list of names).
VIEWERS_ROLE = Qt.ItemDataRole.UserRole + 2
#: The first column never gets narrower than this (name, detail line and avatars).
NAME_MIN_WIDTH = 240
_AVATAR = 18
_Index = QModelIndex | QPersistentModelIndex


def match_spans(text: str, query: str) -> list[tuple[int, int]]:
    """(start, end) of every place a word of ``query`` starts a word of ``text`` (as the
    index matches prefixes), and of the digits a number in ``query`` matched whatever the
    punctuation on either side (as the digits index does), case-insensitive, merged and
    in order."""
    terms = [t for t in re.split(r"\W+", query.casefold()) if t]
    if not terms or not text:
        return []
    folded = text.casefold()
    spans: list[tuple[int, int]] = []
    for term in terms:
        for found in re.finditer(rf"(?<!\w){re.escape(term)}", folded):
            spans.append((found.start(), found.end()))
    spans += _digit_spans(text, digit_terms(query))
    spans.sort()
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _digit_spans(text: str, terms: list[str]) -> list[tuple[int, int]]:
    """Where each run of ``terms`` digits occurs among the digits of ``text``, as spans of
    ``text`` (from the first matched digit to the last, punctuation between included)."""
    where = [i for i, c in enumerate(text) if c.isdigit()]
    digits = "".join(text[i] for i in where)
    spans: list[tuple[int, int]] = []
    for term in terms:
        start = digits.find(term)
        while start >= 0:
            spans.append((where[start], where[start + len(term) - 1] + 1))
            start = digits.find(term, start + 1)
    return spans



def detail_fields(columns: tuple[schema.Field, ...], shown: set[str]) -> list[schema.Field]:
    """The second line's fields: the place (address fields) first, then the rest,
    shortest first (a phone number fits where an e-mail address would be cut off)."""
    rest = [f for f in columns[1:] if f.name not in shown]
    others = sorted((f for f in rest if not f.address), key=lambda f: f.max_length)
    return [f for f in rest if f.address] + others


class RowDelegate(QStyledItemDelegate):
    """Paints the first column: the name (bold), the detail line (quiet), matches
    highlighted, and the other reps' avatars at the right (greyed out while offline)."""

    def __init__(self, panel: DirectoryPanel) -> None:
        super().__init__(panel)
        self._panel = panel

    def sizeHint(self, option: QStyleOptionViewItem, index: _Index) -> QSize:
        """Two lines of text with some air."""
        metrics = QFontMetrics(option.font)
        return QSize(NAME_MIN_WIDTH, metrics.height() * 2 + 14)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: _Index) -> None:
        """Background from the style, then the two lines and the avatars."""
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        opt.text = ""
        widget = opt.widget
        style = widget.style() if widget is not None else None
        if style is not None:
            style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, widget)
        rect: QRect = opt.rect.adjusted(8, 5, -6, -5)
        palette: QPalette = opt.palette
        selected = bool(opt.state & QStyle.StateFlag.State_Selected)
        ink = palette.color(QPalette.ColorRole.HighlightedText if selected
                            else QPalette.ColorRole.Text)
        quiet = ink if selected else palette.color(QPalette.ColorRole.PlaceholderText)
        viewers: list[str] = index.data(VIEWERS_ROLE) or []
        room = rect.width() - (len(viewers[:3]) * (_AVATAR - 4) + 8 if viewers else 0)
        painter.save()
        font = QFont(opt.font)
        line = QFontMetrics(font).height()
        bold = QFont(font)
        bold.setBold(True)
        query = self._panel.model.query
        self._text(painter, QRect(rect.left(), rect.top(), room, line), str(index.data()),
                   bold, ink, query, palette, selected)
        self._text(painter, QRect(rect.left(), rect.top() + line + 2, rect.width(), line),
                   str(index.data(DETAIL_ROLE) or ""), font, quiet, query, palette, selected)
        stale = self._panel.presence_stale()
        x = rect.right() - _AVATAR
        for name in reversed(viewers[:3]):
            pixmap = avatar_pixmap(name, _AVATAR, palette, painter.device().devicePixelRatioF())
            if stale:
                painter.setOpacity(0.35)
            painter.drawPixmap(x, rect.top(), pixmap)
            painter.setOpacity(1.0)
            x -= _AVATAR - 4
        painter.restore()

    @staticmethod
    def _text(painter: QPainter, rect: QRect, text: str, font: QFont,  # noqa: PLR0917
              color: Any, query: str, palette: QPalette, selected: bool) -> None:
        """One line, elided, with the query's matches on a soft highlight."""
        metrics = QFontMetrics(font)
        shown = metrics.elidedText(text, Qt.TextElideMode.ElideRight, rect.width())
        painter.setFont(font)
        if not selected:
            mark = blend(palette.color(QPalette.ColorRole.Base),
                         palette.color(QPalette.ColorRole.Highlight), 0.3)
            for start, end in match_spans(shown, query):
                left = metrics.horizontalAdvance(shown[:start])
                width = metrics.horizontalAdvance(shown[start:end])
                painter.fillRect(QRect(rect.left() + left, rect.top(), width, rect.height()),
                                 mark)
        painter.setPen(color)
        painter.drawText(rect, int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter),
                         shown)
