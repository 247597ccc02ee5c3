"""The application icon, from the one source image ``resources/liveedit.svg``.

A frozen build carries the PNG rendered from it at build time (``liveedit/icons``; the SVG
image plugin is not bundled); a source checkout loads the SVG itself.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtGui import QIcon

__all__ = ["app_icon"]


def _candidates() -> list[Path]:
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen is not None:
        return [Path(frozen) / "liveedit" / "icons" / "liveedit.png"]
    return [Path(__file__).resolve().parent.parent / "resources" / "liveedit.svg"]


def app_icon() -> QIcon:
    """The window icon (an empty icon if the file is missing: Qt then shows its default)."""
    for path in _candidates():
        if path.is_file():
            return QIcon(str(path))
    return QIcon()
