"""Signing in: the dialog, and :func:`sign_in` for the demo and tests.

The dialog asks for the server address, the user and the password, with "Remember me"
(the refresh token then goes to the OS keyring through ``core.login``). Errors are shown
inline, in plain words. When the server cannot be reached but this profile already
belongs to a user, it offers "Open offline": the app opens on the local replica, says it
is offline, and keeps trying to connect in the background. Where the OS has no keyring,
it says the sign-in will not be remembered, and carries on.

The dialog is non-modal underneath (no nested event loop under qasync): show it and
``await dialog.result_ready()``.
"""

from __future__ import annotations

import asyncio
import logging
from enum import StrEnum

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.core import ClientCore
from app.credentials import CredentialsUnavailable
from app.errors import CoreError, InvalidEdit, ServerUnreachable, SignInFailed

from .tasks import spawn

__all__ = ["NOT_REMEMBERED", "OFFLINE_NOTICE", "Outcome", "SignInDialog", "sign_in"]

log = logging.getLogger(__name__)

NOT_REMEMBERED = "Your sign-in will not be remembered on this computer."
OFFLINE_NOTICE = ("Opened offline: you are working on this computer's copy. Your changes "
                  "are kept and sent when the server is reachable.")
DEFAULT_SERVER = "http://127.0.0.1:8765"


class Outcome(StrEnum):
    """How the dialog ended."""

    SIGNED_IN = "signed-in"
    OFFLINE = "offline"
    CANCELLED = "cancelled"


async def _login(core: ClientCore, server_url: str, user: str, password: str,
                 remember: bool) -> str | None:
    """Sign in; returns a notice for the rep (no keyring) or None."""
    try:
        await core.login(server_url, user, password, remember=remember)
    except CredentialsUnavailable as exc:
        log.warning("signed in without remembering: %s", exc)
        return NOT_REMEMBERED
    return None


async def sign_in(core: ClientCore, server_url: str, user: str, password: str,
                  remember: bool) -> None:
    """Sign in without a dialog (demo, tests). A missing keyring is logged, not raised:
    the sign-in holds for this session."""
    await _login(core, server_url, user, password, remember)


def _plain(exc: CoreError) -> str:
    """An error in words for the sign-in form."""
    if isinstance(exc, SignInFailed):
        return f"Sign-in failed: {exc}. Check the user name and password."
    if isinstance(exc, ServerUnreachable):
        return "The server cannot be reached. Check the address, or your network."
    if isinstance(exc, InvalidEdit):
        return str(exc).capitalize()
    return str(exc)


class SignInDialog(QDialog):
    """Server address, user, password and "Remember me"."""

    def __init__(self, core: ClientCore, parent: QWidget | None = None, *,
                 server_url: str | None = None, user: str | None = None) -> None:
        super().__init__(parent)
        self.core = core
        self.outcome = Outcome.CANCELLED
        #: Something the main window should tell the rep (offline, not remembered).
        self.notice: str | None = None
        self._done: asyncio.Future[Outcome] | None = None
        self._closed = False
        self.setWindowTitle("Sign in to Live Edit")
        self.setAccessibleName("Sign in")
        self._build(server_url or core.server_url or DEFAULT_SERVER, user or core.username or "")
        self.finished.connect(self._on_finished)

    # --- layout --------------------------------------------------------------------------

    def _build(self, server_url: str, user: str) -> None:
        heading = QLabel("Sign in to Live Edit")
        font = heading.font()
        font.setPointSizeF(font.pointSizeF() * 1.3)
        font.setBold(True)
        heading.setFont(font)
        self.server = self._field(server_url, "Server address")
        self.user = self._field(user, "User name")
        self.password = self._field("", "Password")
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.remember = QCheckBox("&Remember me on this computer")
        self.remember.setAccessibleName("Remember me")
        self.remember.setChecked(True)
        if not self.core.credentials.available():
            self.remember.setChecked(False)
            self.remember.setEnabled(False)
            self.remember.setToolTip(NOT_REMEMBERED)
        form = QFormLayout()
        form.addRow("&Server:", self.server)
        form.addRow("&User:", self.user)
        form.addRow("&Password:", self.password)
        form.addRow("", self.remember)
        self.message = QLabel()
        self.message.setAccessibleName("Sign-in message")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message.hide()
        self.buttons = QDialogButtonBox()
        self.sign_in_button = self._button("Sign in", QDialogButtonBox.ButtonRole.AcceptRole)
        self.sign_in_button.setDefault(True)
        self.offline_button = self._button("Open &offline", QDialogButtonBox.ButtonRole.ActionRole)
        self.offline_button.hide()
        cancel = self._button("Cancel", QDialogButtonBox.ButtonRole.RejectRole)
        self.sign_in_button.clicked.connect(self._submit)
        self.offline_button.clicked.connect(self.open_offline)
        cancel.clicked.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(heading)
        layout.addLayout(form)
        layout.addWidget(self.message)
        layout.addWidget(self.buttons)
        self.setMinimumWidth(420)
        (self.password if user else self.user).setFocus()

    def _field(self, text: str, name: str) -> QLineEdit:
        edit = QLineEdit(text)
        edit.setAccessibleName(name)
        edit.returnPressed.connect(self._submit)
        return edit

    def _button(self, text: str, role: QDialogButtonBox.ButtonRole) -> QPushButton:
        button = self.buttons.addButton(text, role)
        assert isinstance(button, QPushButton)
        button.setAccessibleName(text.replace("&", ""))
        button.setAutoDefault(False)
        return button

    # --- behaviour -----------------------------------------------------------------------

    def result_ready(self) -> asyncio.Future[Outcome]:
        """A future resolved with the :class:`Outcome` when the dialog closes."""
        if self._done is None:
            self._done = asyncio.get_running_loop().create_future()
            if self._closed:
                self._done.set_result(self.outcome)
        return self._done

    def _on_finished(self, _code: int) -> None:
        self._closed = True
        if self._done is not None and not self._done.done():
            self._done.set_result(self.outcome)

    def _submit(self) -> None:
        if not self.sign_in_button.isEnabled():
            return
        spawn(self.attempt(), what="sign in")

    async def attempt(self) -> bool:
        """Try to sign in with what the form holds; True when it closed signed in."""
        server, user = self.server.text().strip(), self.user.text().strip()
        if not server or not user or not self.password.text():
            self._say("Fill in the server address, your user name and your password.")
            return False
        self._busy(True)
        try:
            self.notice = await _login(self.core, server, user, self.password.text(),
                                       self.remember.isChecked())
        except CoreError as exc:
            self._failed(exc)
            return False
        finally:
            self._busy(False)
        self.outcome = Outcome.SIGNED_IN
        self.accept()
        return True

    def _failed(self, exc: CoreError) -> None:
        log.info("sign-in failed: %s", exc)
        self._say(_plain(exc))
        can_go_offline = isinstance(exc, ServerUnreachable) and bool(self.core.username)
        if can_go_offline:
            self.message.setText(self.message.text() + " You can open this computer's copy "
                                 f"as {self.core.username} and work offline.")
            self.offline_button.show()
            self.offline_button.setFocus()
        else:
            self.password.setFocus()
            self.password.selectAll()

    def open_offline(self) -> None:
        """Open the local replica without signing in (the profile must have a user)."""
        if not self.core.username:
            self._say("This computer has no copy yet: sign in once while online.")
            return
        password = self.password.text()
        if password and self.core.password_provider is None:
            async def provide() -> str | None:
                return password  # kept in memory only, to sign in once the server is back

            self.core.password_provider = provide
        self.notice = OFFLINE_NOTICE
        self.outcome = Outcome.OFFLINE
        self.accept()

    def _say(self, text: str) -> None:
        self.message.setText(text)
        self.message.setAccessibleDescription(text)
        self.message.show()

    def _busy(self, busy: bool) -> None:
        for widget in (self.server, self.user, self.password, self.remember,
                       self.sign_in_button):
            widget.setEnabled(not busy and (widget is not self.remember
                                            or self.core.credentials.available()))
        self.sign_in_button.setText("Signing in…" if busy else "Sign in")
        if busy:
            self.message.hide()
