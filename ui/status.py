"""The status bar: connection state, changes waiting to sync, sync progress, errors.

- :class:`ConnectionIndicator` (always visible, right): "Online", "Connecting (retry in
  N s)" counting down each second, or "Offline", with a shape that differs by state (not
  colour alone); next to it "N changes waiting to sync", hidden at 0. Clicking either asks
  for the outbox (:attr:`ConnectionIndicator.outboxRequested`).
- :class:`SyncProgress`: a progress bar that appears only for long syncs (the first
  directory pass, a backlog after a day offline) and hides once in sync.
- :class:`ErrorArea` (left): the one place errors are shown; a click shows the details.

Colours come from the palette (light or dark, as the system says), never hard-coded.
"""

from __future__ import annotations

import math
import time
from typing import Any

from PySide6.QtCore import QEvent, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QIcon, QPainter, QPalette, QPixmap
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QProgressBar,
    QStyle,
    QToolButton,
    QWidget,
)

__all__ = ["ConnectionIndicator", "ErrorArea", "SyncProgress", "changes_text", "status_text"]

ONLINE, CONNECTING, OFFLINE = "online", "connecting", "offline"
#: A sync shorter than this never shows the progress bar (no flashing).
PROGRESS_DELAY_MS = 700
#: Outbox backlog from which sending it counts as a long sync.
BACKLOG = 20


def _state(status: Any) -> str:
    """The connection state's value ("online", "connecting", "offline")."""
    return str(getattr(status.state, "value", status.state))


def status_text(status: Any, retry_deadline: float | None, now: float) -> str:
    """What the indicator says for ``status`` at time ``now`` (monotonic seconds)."""
    state = _state(status)
    if state == ONLINE:
        return "Online"
    if state == CONNECTING:
        if retry_deadline is not None and retry_deadline > now:
            return f"Connecting (retry in {math.ceil(retry_deadline - now)} s)"
        return "Connecting…"
    return "Offline"


def changes_text(pending: int) -> str:
    """ "1 change waiting to sync" / "N changes waiting to sync"."""
    return f"{pending:,} change{'s' if pending != 1 else ''} waiting to sync"


def _dot(widget: QWidget, state: str) -> QIcon:
    """A small state mark from the palette: filled (online), half (connecting), ring
    (offline)."""
    size = 12
    ratio = widget.devicePixelRatioF()
    pixmap = QPixmap(QSize(size, size) * ratio)
    pixmap.setDevicePixelRatio(ratio)
    pixmap.fill(Qt.GlobalColor.transparent)
    palette = widget.palette()
    accent = palette.color(QPalette.ColorRole.Highlight)
    ink = palette.color(QPalette.ColorRole.WindowText)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    rect = pixmap.rect().adjusted(2, 2, -2, -2)
    rect.setSize(QSize(size - 4, size - 4))
    if state == ONLINE:
        painter.setPen(accent)
        painter.setBrush(accent)
        painter.drawEllipse(rect)
    elif state == CONNECTING:
        painter.setPen(ink)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawEllipse(rect)
        painter.setBrush(ink)
        painter.drawPie(rect, 90 * 16, 180 * 16)
    else:
        painter.setPen(ink)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawEllipse(rect)
    painter.end()
    return QIcon(pixmap)


def _flat_button(name: str) -> QToolButton:
    button = QToolButton()
    button.setAutoRaise(True)
    button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    button.setFocusPolicy(Qt.FocusPolicy.TabFocus)
    button.setAccessibleName(name)
    return button


class ConnectionIndicator(QWidget):
    """Connection state plus the number of changes waiting to sync."""

    #: The rep clicked the indicator: show the outbox.
    outboxRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Connection status")
        self._status: Any = None
        self._state = OFFLINE
        self._deadline: float | None = None
        self._pending = 0
        self.state_button = _flat_button("Connection")
        self.changes_button = _flat_button("Changes waiting to sync")
        self.changes_button.hide()
        for button in (self.state_button, self.changes_button):
            button.clicked.connect(self.outboxRequested)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.changes_button)
        layout.addWidget(self.state_button)
        self._tick = QTimer(self)
        self._tick.setInterval(250)  # the seconds flip on time
        self._tick.timeout.connect(self._render)
        self._render()

    # --- inputs ------------------------------------------------------------------------

    def set_status(self, status: Any) -> None:
        """Show a connection Status (from the bridge's statusChanged)."""
        self._status = status
        self._state = _state(status)
        retry = getattr(status, "retry_in", None)
        self._deadline = time.monotonic() + retry if retry else None
        if self._deadline is not None:
            self._tick.start()
        else:
            self._tick.stop()
        self._render()

    def set_pending(self, pending: int) -> None:
        """Show how many changes wait for the server (hidden at 0)."""
        self._pending = pending
        self.changes_button.setVisible(pending > 0)
        self.changes_button.setText(changes_text(pending))
        self.changes_button.setAccessibleDescription(changes_text(pending))

    # --- reading (also for tests) ------------------------------------------------------

    def text(self) -> str:
        """The connection text shown now."""
        return self.state_button.text()

    def pending_text(self) -> str:
        """The outbox text, or "" when hidden."""
        return self.changes_button.text() if self._pending else ""

    # --- drawing -----------------------------------------------------------------------

    def _render(self) -> None:
        now = time.monotonic()
        text = status_text(self._status, self._deadline, now) if self._status else "Offline"
        if self._deadline is not None and self._deadline <= now:
            self._tick.stop()
        self.state_button.setText(text)
        self.state_button.setIcon(_dot(self, self._state))
        self.state_button.setAccessibleDescription(text)
        error = getattr(self._status, "error", None)
        tip = text if not error else f"{text}: {error}"
        self.state_button.setToolTip(f"{tip}\nClick to see the changes waiting to sync.")

    def changeEvent(self, event: QEvent) -> None:
        """Redraw the state mark when the palette changes (light/dark switch)."""
        if event.type() == QEvent.Type.PaletteChange:
            self._render()
        super().changeEvent(event)


class SyncProgress(QWidget):
    """Appears for long syncs only; hides when in sync.

    Busy (no total known) while the directory's first pass streams in, counting the
    customers received; counts down the outbox when a backlog of at least :data:`BACKLOG`
    changes is being sent.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Sync progress")
        self.label = QLabel()
        self.bar = QProgressBar()
        self.bar.setAccessibleName("Sync progress bar")
        self.bar.setTextVisible(False)
        self.bar.setFixedWidth(120)
        self.bar.setMaximumHeight(self.fontMetrics().height())
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 6, 0)
        layout.addWidget(self.label)
        layout.addWidget(self.bar)
        self.hide()
        self._online = False
        self._directory_rows = 0
        self._directory_busy = False
        self._pending = 0
        self._peak = 0
        self._reveal = QTimer(self)
        self._reveal.setSingleShot(True)
        self._reveal.setInterval(PROGRESS_DELAY_MS)
        self._reveal.timeout.connect(self._update)

    def busy(self) -> bool:
        """True while a long sync is under way."""
        backlog = self._online and self._peak >= BACKLOG and self._pending > 0
        return self._directory_busy or backlog

    def text(self) -> str:
        """What the progress says ("" when hidden)."""
        return self.label.text() if self.isVisible() else ""

    def set_status(self, status: Any) -> None:
        """Follow the connection: a pass restarts on every reconnect."""
        self._online = _state(status) == ONLINE
        if not self._online:
            self._directory_busy = False
            self._directory_rows = 0
        self._schedule()

    def on_directory(self, count: int, synced: bool) -> None:
        """Directory rows arrived (``synced`` once the pass completed)."""
        self._directory_busy = not synced
        self._directory_rows = 0 if synced else self._directory_rows + count
        self._schedule()

    def set_pending(self, pending: int) -> None:
        """The outbox size changed."""
        self._peak = max(self._peak, pending) if pending else 0
        self._pending = pending
        self._schedule()

    def _schedule(self) -> None:
        if not self.busy():
            self._reveal.stop()
            self.hide()
        elif self.isVisible():
            self._update()
        elif not self._reveal.isActive():
            self._reveal.start()

    def _update(self) -> None:
        if not self.busy():
            self.hide()
            return
        if self._directory_busy:
            self.bar.setRange(0, 0)
            text = f"Syncing customers… {self._directory_rows:,} received"
        else:
            self.bar.setRange(0, self._peak)
            self.bar.setValue(self._peak - self._pending)
            text = f"Sending changes… {self._peak - self._pending:,} of {self._peak:,}"
        self.label.setText(text)
        self.setAccessibleDescription(text)
        self.show()


class ErrorArea(QToolButton):
    """The one place errors are shown: the latest message; a click shows the details."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAutoRaise(True)
        self.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning))
        self.setAccessibleName("Last error")
        self.setFocusPolicy(Qt.FocusPolicy.TabFocus)
        self.hide()
        self._message = ""
        self._details = ""
        self._count = 0
        self.box: QMessageBox | None = None
        self.clicked.connect(self.show_details)

    def report(self, message: str, details: str = "") -> None:
        """Show an error (replaces the previous one; all are kept in the details)."""
        self._count += 1
        self._message = message
        stamp = time.strftime("%H:%M:%S")
        entry = f"[{stamp}] {message}" + (f"\n{details}" if details else "")
        self._details = f"{entry}\n\n{self._details}".strip()
        first_line = message.splitlines()[0] if message else "Error"
        self.setText(_elide(first_line, 90))
        self.setToolTip(f"{message}\nClick for details.")
        self.setAccessibleDescription(message)
        self.show()

    def message(self) -> str:
        """The latest error message ("" when none)."""
        return self._message

    def clear(self) -> None:
        """Hide the area (the rep has read it)."""
        self._message = ""
        self.hide()

    def show_details(self) -> None:
        """A non-modal box with the latest error and the earlier ones."""
        box = QMessageBox(QMessageBox.Icon.Warning, "Live Edit — errors", self._message,
                          QMessageBox.StandardButton.Close, self.window())
        box.setDetailedText(self._details)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.finished.connect(self.clear)
        self.box = box
        box.open()


def _elide(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
