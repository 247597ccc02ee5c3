"""Who else is on the open customer: a row of avatars in the customer view's header.

Each avatar's tooltip says who and what they are doing ("Sam — editing city", or
"viewing"); its accessible name is the person's name. Offline the row cannot be current, so
the avatars are greyed out (:meth:`AvatarRow.set_stale`) until the connection returns.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QHBoxLayout, QLabel, QWidget

from sync.protocol import schema
from ui.colors import avatar_pixmap

__all__ = ["AvatarRow"]


class AvatarRow(QHBoxLayout):
    """The avatars of the other reps on a customer; the labels belong to ``owner``."""

    def __init__(self, owner: QWidget) -> None:
        super().__init__()
        self._owner = owner
        self._stale = False
        self.setSpacing(3)

    def set_peers(self, peers: dict[str, tuple[str, Any]]) -> None:
        """Show one avatar per person in ``peers`` (connection → (user, presence state))."""
        while self.count():
            item = self.takeAt(0)
            widget = item.widget() if item is not None else None
            if widget is not None:
                widget.deleteLater()
        people: dict[str, str] = {}
        for user, state in peers.values():
            field = state.get("field") if isinstance(state, dict) else None
            label = schema.label(str(field)).lower()
            doing = f"editing {label}" if field else "viewing"
            people[str(state.get("name") or user)] = doing
        ratio = self._owner.devicePixelRatioF()
        for name in sorted(people, key=str.casefold):
            avatar = QLabel(self._owner)
            avatar.setObjectName("presenceAvatar")
            avatar.setPixmap(avatar_pixmap(name, 26, self._owner.palette(), ratio))
            avatar.setToolTip(f"{name} — {people[name]}")
            avatar.setAccessibleName(name)
            avatar.setEnabled(not self._stale)
            self.addWidget(avatar)

    def set_stale(self, stale: bool) -> None:
        """Grey the avatars out (offline: maybe not current) or show them normally."""
        self._stale = stale
        for avatar in self.widgets():
            avatar.setEnabled(not stale)

    def widgets(self) -> list[QWidget]:
        """The avatar labels shown now."""
        widgets = []
        for i in range(self.count()):
            item = self.itemAt(i)
            widget = item.widget() if item is not None else None
            if widget is not None:
                widgets.append(widget)
        return widgets

    def names(self) -> list[str]:
        """Who the row shows, in order."""
        return [widget.accessibleName() for widget in self.widgets()]
