"""The comment thread of one customer: who said what and when, newest at the bottom.

The thread is read from the core and re-read when the document's ``comments`` change;
it stays scrolled to the bottom if the rep was already there (reading older comments is
not interrupted). Enter sends the input as a new comment (``core.add_comment``).
"""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Sequence
from typing import Protocol

from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from app.core import ClientCore
from app.events import DocumentChanged
from ui.bridge import CoreBridge
from ui.colors import presence_color
from ui.tasks import spawn

__all__ = ["CommentsWidget", "format_time"]

log = logging.getLogger(__name__)


class Comment(Protocol):
    """What the thread needs of a comment (the core's comments have this shape)."""

    @property
    def author(self) -> str: ...
    @property
    def time(self) -> float: ...
    @property
    def text(self) -> str: ...


def format_time(when: float, now: float | None = None) -> str:
    """"10:42" today, "Mar 3, 10:42" this year, else "Mar 3 2023, 10:42"."""
    now = time.time() if now is None else now
    local, today = time.localtime(when), time.localtime(now)
    clock = time.strftime("%H:%M", local)
    if local[:3] == today[:3]:
        return clock
    day = f"{time.strftime('%b', local)} {local.tm_mday}"
    if local.tm_year == today.tm_year:
        return f"{day}, {clock}"
    return f"{day} {local.tm_year}, {clock}"


class CommentsWidget(QWidget):
    """The thread plus an input line."""

    def __init__(self, core: ClientCore, bridge: CoreBridge,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._core = core
        self._customer: str | None = None
        self._count = 0
        self.view = QTextBrowser(self)
        self.input = QLineEdit(self)
        self.send_button = QPushButton("Send", self)
        self._build()
        self.input.returnPressed.connect(self.send)
        self.input.textChanged.connect(
            lambda text: self.send_button.setEnabled(bool(text.strip())))
        self.send_button.clicked.connect(self.send)
        bridge.documentChanged.connect(self._on_document_changed)

    def _build(self) -> None:
        self.view.setOpenLinks(False)
        self.view.setAccessibleName("Comments")
        self.input.setPlaceholderText("Write a comment for the other reps…")
        self.send_button.setEnabled(False)
        row = QHBoxLayout()
        row.addWidget(self.input, 1)
        row.addWidget(self.send_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 6, 0, 0)
        layout.addWidget(self.view, 1)
        layout.addLayout(row)

    # --- public API --------------------------------------------------------------------

    def set_customer(self, customer_id: str | None, comments: Sequence[Comment] = ()) -> None:
        """Show a customer's thread (None: nothing)."""
        self._customer = customer_id
        self._show(comments, stick_to_bottom=True)
        self.setEnabled(customer_id is not None)

    def count(self) -> int:
        """How many comments are shown."""
        return self._count

    def send(self) -> None:
        """Post the input as a comment by this rep."""
        text = self.input.text().strip()
        if not text or self._customer is None:
            return
        self.input.clear()
        spawn(self._core.add_comment(self._customer, text), what="add comment")

    # --- slots -------------------------------------------------------------------------

    def _on_document_changed(self, event: DocumentChanged) -> None:
        if event.customer_id == self._customer and "comments" in event.roots:
            bar = self.view.verticalScrollBar()
            at_bottom = bar.value() >= bar.maximum() - 4
            self._show(self._core.customer(event.customer_id).comments,
                       stick_to_bottom=at_bottom)

    def _show(self, comments: Sequence[Comment], *, stick_to_bottom: bool) -> None:
        self._count = len(comments)
        bar = self.view.verticalScrollBar()
        keep = bar.value()
        if not comments:
            quiet = self.palette().color(QPalette.ColorRole.PlaceholderText).name()
            self.view.setHtml(f"<p style='color:{quiet}'>No comments yet. Notes for the "
                                "whole team go here.</p>")
            return
        self.view.setHtml("".join(self._entry(c) for c in comments))
        bar.setValue(bar.maximum() if stick_to_bottom else keep)

    def _entry(self, comment: Comment) -> str:
        quiet = self.palette().color(QPalette.ColorRole.PlaceholderText).name()
        color = presence_color(comment.author, self.palette()).name()
        text = html.escape(comment.text).replace("\n", "<br>")
        return (
            "<p style='margin-top:4px; margin-bottom:8px'>"
            f"<b style='color:{color}'>{html.escape(comment.author or 'someone')}</b>"
            f" <span style='color:{quiet}'>{format_time(comment.time)}</span><br>"
            f"{text}</p>"
        )
