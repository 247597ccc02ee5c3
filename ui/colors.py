"""Colours for people and for "this just changed", derived from names and the palette.

Every rep gets one stable colour (the same on every machine: it comes from a hash of the
name, not from ``hash()``, which changes per process), adjusted to read well on the
current palette: deeper on a light window, lighter on a dark one. Avatars are painted
circles with initials; the "changed" highlight is the palette's highlight colour, softened.
"""

from __future__ import annotations

import zlib

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPalette, QPixmap
from PySide6.QtWidgets import QApplication

__all__ = [
    "avatar_pixmap",
    "blend",
    "changed_color",
    "initials",
    "is_dark",
    "presence_color",
]

#: Hues spread around the wheel, skipping reds (they read as errors) and muddy yellows.
_HUES = (28, 200, 215, 262, 290, 320, 170, 140, 230, 185, 250, 300)


def _palette(palette: QPalette | None) -> QPalette:
    return palette if palette is not None else QApplication.palette()


def is_dark(palette: QPalette | None = None) -> bool:
    """True when the window background is dark (a dark theme)."""
    return _palette(palette).color(QPalette.ColorRole.Window).lightness() < 128


def presence_color(name: str, palette: QPalette | None = None) -> QColor:
    """The stable colour of a person named ``name``, readable on ``palette``."""
    digest = zlib.crc32(name.strip().casefold().encode("utf-8"))
    hue = _HUES[digest % len(_HUES)]
    if is_dark(palette):
        return QColor.fromHsl(hue, 170, 165)
    return QColor.fromHsl(hue, 150, 95)


def blend(a: QColor, b: QColor, amount: float) -> QColor:
    """``a`` moved ``amount`` (0..1) of the way towards ``b``."""
    amount = max(0.0, min(1.0, amount))
    return QColor(
        round(a.red() + (b.red() - a.red()) * amount),
        round(a.green() + (b.green() - a.green()) * amount),
        round(a.blue() + (b.blue() - a.blue()) * amount),
    )


def changed_color(palette: QPalette | None = None) -> QColor:
    """The soft background that marks a value somebody else just changed."""
    pal = _palette(palette)
    return blend(pal.color(QPalette.ColorRole.Base), pal.color(QPalette.ColorRole.Highlight),
                 0.28)


def initials(name: str) -> str:
    """One or two capital letters for an avatar: "Sam Lee" → "SL", "sam" → "S"."""
    words = [w for w in name.replace(".", " ").replace("_", " ").split() if w]
    if not words:
        return "?"
    if len(words) == 1:
        return words[0][0].upper()
    return (words[0][0] + words[-1][0]).upper()


def avatar_pixmap(name: str, size: int = 26, palette: QPalette | None = None,
                  device_ratio: float = 1.0) -> QPixmap:
    """A filled circle in the person's colour with their initials in white."""
    pixmap = QPixmap(round(size * device_ratio), round(size * device_ratio))
    pixmap.setDevicePixelRatio(device_ratio)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(presence_color(name, palette))
    painter.drawEllipse(QRectF(0.5, 0.5, size - 1, size - 1))
    font = QFont(QApplication.font())
    font.setBold(True)
    font.setPixelSize(max(8, round(size * 0.42)))
    painter.setFont(font)
    painter.setPen(QColor("white"))
    painter.drawText(QRectF(0, 0, size, size), Qt.AlignmentFlag.AlignCenter, initials(name))
    painter.end()
    return pixmap
