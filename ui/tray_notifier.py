"""OS notifications for changes to followed customers while the window is not active.

When notifications arrive and the main window is not the active window, the ones the
activity feed shows (:meth:`app.activity.ActivityFeed.relevant`) raise one notice through
the system tray (``QSystemTrayIcon.showMessage``): the sentence for one change, or "N
changes to customers you follow" for several. Clicking the notice brings the window forward
and asks to open that customer (:attr:`TrayNotifier.customerRequested`). Where the desktop
has no tray, the window's taskbar entry is flagged instead (``QApplication.alert``).
Replays after a reconnect are summed up in one notice too. ``shown`` keeps what was shown
(title, text), newest last, for tests and the curious.
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QApplication, QSystemTrayIcon, QWidget

from app.activity import ActivityFeed
from app.notifications import describe

from .app_icon import app_icon
from .bridge import CoreBridge
from .names import customer_id_of

__all__ = ["TrayNotifier"]

log = logging.getLogger(__name__)

#: How long a notice stays up (ms; the desktop may decide otherwise).
_NOTICE_MS = 8000
#: How many notices ``shown`` keeps.
_KEEP = 50


class TrayNotifier(QObject):
    """Raises OS notices for ``feed``-relevant notifications while ``window`` is inactive."""

    #: The rep clicked a notice about one customer (customer id).
    customerRequested = Signal(str)

    def __init__(self, feed: ActivityFeed, bridge: CoreBridge, window: QWidget,
                 parent: QObject | None = None) -> None:
        super().__init__(parent or window)
        self.feed = feed
        self.window = window
        self.shown: list[tuple[str, str]] = []
        self._last_customer: str | None = None
        self.tray: QSystemTrayIcon | None = None
        if QSystemTrayIcon.isSystemTrayAvailable():
            self.tray = QSystemTrayIcon(app_icon(), self)
            self.tray.setToolTip("Live Edit")
            self.tray.messageClicked.connect(self._clicked)
            self.tray.activated.connect(lambda *_: self._raise_window())
            self.tray.show()
        bridge.notificationsArrived.connect(self._arrived)

    def close(self) -> None:
        """Remove the tray icon."""
        if self.tray is not None:
            self.tray.hide()

    def _arrived(self, items: Any, offline: bool) -> None:
        if self.window.isActiveWindow():
            return  # the rep is looking: the activity dock is enough
        relevant = self.feed.about_followed(items)
        if not relevant:
            return
        if len(relevant) == 1:
            n = relevant[0]
            title = n.title or "A customer you follow"
            text = describe(n)
            self._last_customer = customer_id_of(str(getattr(n, "doc", "")))
        else:
            customers = {str(getattr(n, "doc", "")) for n in relevant}
            title = "While you were offline" if offline else "Live Edit"
            text = (f"{len(relevant)} changes to {len(customers)} customer"
                    f"{'s' if len(customers) != 1 else ''} you follow")
            self._last_customer = (customer_id_of(customers.pop()) if len(customers) == 1
                                   else None)
        self.shown = [*self.shown[-(_KEEP - 1):], (title, text)]
        if self.tray is not None:
            self.tray.showMessage(title, text, QSystemTrayIcon.MessageIcon.Information,
                                  _NOTICE_MS)
        else:
            QApplication.alert(self.window)
        log.debug("notice: %s — %s", title, text)

    def _raise_window(self) -> None:
        self.window.showNormal()
        self.window.raise_()
        self.window.activateWindow()

    def _clicked(self) -> None:
        self._raise_window()
        if self._last_customer:
            self.customerRequested.emit(self._last_customer)
