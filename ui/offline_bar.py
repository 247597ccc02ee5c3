"""The offline bar: a persistent strip above the panes while the app is not connected.

It says what a rep needs to know in one line — "Offline · 3 changes on 2 customers", counted
as a rep counts changes (``core.pending_changes()``: per field, per notes editing session,
per customer) — and
stays until the connection is back (it is not a status message that fades). A short
"connecting" after a drop or at start-up does not flash it: it appears when the state is
offline, or has been "connecting" for :data:`SHOW_AFTER_MS`. Its buttons open the outbox
and try to connect now.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

from ui.colors import blend

__all__ = ["SHOW_AFTER_MS", "OfflineBar", "offline_text"]

#: A "connecting" shorter than this never shows the bar (start-up, a quick reconnect).
SHOW_AFTER_MS = 1500


def offline_text(changes: int, customers: int) -> str:
    """ "Offline · 3 changes on 2 customers" / "Offline · nothing waiting to sync"."""
    if not changes:
        return "Offline · nothing waiting to sync"
    what = f"{changes:,} change{'s' if changes != 1 else ''}"
    on = f"{customers:,} customer{'s' if customers != 1 else ''}"
    return f"Offline · {what} on {on}"


class OfflineBar(QFrame):
    """The strip itself; the main window feeds it the connection state and the outbox."""

    #: The rep asked to see the outbox.
    outboxRequested = Signal()
    #: The rep asked to connect now.
    reconnectRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("offlineBar")
        self.setAccessibleName("Offline")
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setAutoFillBackground(True)
        self.label = QLabel(self)
        self.label.setObjectName("offlineText")
        font = self.label.font()
        font.setBold(True)
        self.label.setFont(font)
        self.detail = QLabel("Your changes are kept on this computer and sent when the "
                             "connection returns.", self)
        self.detail.setObjectName("offlineDetail")
        self.detail.setWordWrap(True)  # never widens the window
        self.detail.setMinimumWidth(40)
        self.outbox_button = QPushButton("Show changes", self)
        self.reconnect_button = QPushButton("Connect now", self)
        for button in (self.outbox_button, self.reconnect_button):
            button.setFlat(True)
            button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.outbox_button.clicked.connect(self.outboxRequested)
        self.reconnect_button.clicked.connect(self.reconnectRequested)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 5, 8, 5)
        layout.setSpacing(10)
        layout.addWidget(self.label)
        layout.addWidget(self.detail, 1)
        layout.addWidget(self.outbox_button)
        layout.addWidget(self.reconnect_button)
        self._changes = 0
        self._customers = 0
        self._online = True
        self._reveal = QTimer(self, singleShot=True, interval=SHOW_AFTER_MS)
        self._reveal.timeout.connect(self._show)
        self._tint()
        self._render()
        self.hide()

    def _tint(self) -> None:
        palette = self.palette()
        window = palette.color(QPalette.ColorRole.Window)
        text = palette.color(QPalette.ColorRole.WindowText)
        palette.setColor(QPalette.ColorRole.Window, blend(window, text, 0.12))
        self.setPalette(palette)

    # --- inputs ------------------------------------------------------------------------

    def set_state(self, state: str) -> None:
        """The connection state's value: "online", "connecting" or "offline"."""
        self._online = state == "online"
        if self._online:
            self._reveal.stop()
            self.hide()
        elif state == "offline":
            self._reveal.stop()
            self._show()
        elif self.isHidden() and not self._reveal.isActive():
            self._reveal.start()

    def set_counts(self, changes: int, customers: int) -> None:
        """What waits in the outbox."""
        self._changes, self._customers = changes, customers
        self._render()

    # --- reading (also for tests) ------------------------------------------------------

    def text(self) -> str:
        """The bar's main line."""
        return self.label.text()

    def _show(self) -> None:
        if not self._online:
            self._render()
            self.show()

    def _render(self) -> None:
        text = offline_text(self._changes, self._customers)
        self.label.setText(text)
        self.setAccessibleDescription(text)
        self.outbox_button.setVisible(self._changes > 0)
