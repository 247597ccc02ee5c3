"""Signing in: the dialog, and :func:`sign_in` for the demo and tests.

The dialog asks for the server address, the user and the password, with "Remember me"
(the refresh token then goes to the OS keyring through ``core.login``). Errors are shown
inline, in plain words. When the server cannot be reached but this profile already
belongs to a user, it offers "Open offline": the app opens on the local replica, says it
is offline, and keeps trying to connect in the background. Where the OS has no keyring,
it says the sign-in will not be remembered (in plain text beside the greyed-out box), and
carries on. The server field remembers the last server signed in to (``QSettings``) and
takes ``host:port`` as well as a full address.

Enter signs in exactly once: the dialog's default button takes Enter, and a second
request while one is under way is ignored; nothing touches the dialog after it closed
(the app deletes it as soon as it has its outcome).

:func:`has_saved_sign_in` tells the app whether a remembered sign-in lets it skip the
dialog.

The dialog is non-modal underneath (no nested event loop under qasync): show it and
``await dialog.result_ready()``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from enum import StrEnum
from urllib.parse import urlsplit

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.core import ClientCore
from app.credentials import CredentialsUnavailable
from app.errors import (
    CoreError,
    InvalidEdit,
    NotLiveEditServer,
    ServerUnreachable,
    SignInFailed,
)

from .tasks import spawn

__all__ = [
    "NOT_REMEMBERED",
    "OFFLINE_NOTICE",
    "Outcome",
    "SignInDialog",
    "has_saved_sign_in",
    "normalise_server",
    "sign_in",
]

log = logging.getLogger(__name__)

NOT_REMEMBERED = "Your sign-in will not be remembered on this computer."
OFFLINE_NOTICE = ("Opened offline: you are working on this computer's copy. Your changes "
                  "are kept and sent when the server is reachable.")
LAST_SERVER = "signin/lastServer"


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


def normalise_server(text: str) -> str:
    """What the rep typed as a server address, as a URL: ``host:port`` gets ``http://``
    (``https://`` for port 443); a trailing slash goes. Raises ValueError for an address
    that cannot be one."""
    text = text.strip().rstrip("/")
    if not text:
        raise ValueError("Fill in the server address.")
    if "://" not in text:
        scheme = "https" if text.split("/", 1)[0].endswith(":443") else "http"
        text = f"{scheme}://{text}"
    parts = urlsplit(text)
    try:
        parts.port  # noqa: B018 (validates the port)
    except ValueError as exc:
        raise ValueError(f"“{text}” has a port that is not a number.") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"“{text}” is not a server address: use host:port or "
                         "https://host.")
    return text


def has_saved_sign_in(core: ClientCore) -> bool:
    """True when this profile has a user and the keyring holds their refresh token, so
    the app can open straight into the main window."""
    server, user = core.server_url, core.username
    if not server or not user or not core.credentials.available():
        return False
    try:
        return core.credentials.load(server, user) is not None
    except CredentialsUnavailable as exc:
        log.warning("cannot read the saved sign-in: %s", exc)
        return False


def _plain(exc: CoreError) -> str:
    """An error in words for the sign-in form."""
    if isinstance(exc, SignInFailed):
        return f"Sign-in failed: {exc}. Check the user name and password."
    if isinstance(exc, NotLiveEditServer):
        return ("This is not a Live Edit server. Check the address: host and port, for "
                "example liveedit.example.com:8765, without a path.")
    if isinstance(exc, ServerUnreachable):
        return "The server cannot be reached. Check the address, or your network."
    if isinstance(exc, InvalidEdit):
        return str(exc).capitalize()
    return str(exc)


class SignInDialog(QDialog):
    """Server address, user, password and "Remember me"."""

    def __init__(self, core: ClientCore, parent: QWidget | None = None, *,
                 server_url: str | None = None, user: str | None = None,
                 settings: QSettings | None = None,
                 open_profile: Callable[[str, str], ClientCore] | None = None) -> None:
        super().__init__(parent)
        #: The profile signed in to; another one when the rep signs in as another account
        #: and ``open_profile(server_url, user)`` gives that account's profile.
        self.core = core
        self.settings = settings
        self._open_profile = open_profile
        self.outcome = Outcome.CANCELLED
        #: Something the main window should tell the rep (offline, not remembered).
        self.notice: str | None = None
        self._done: asyncio.Future[Outcome] | None = None
        self._attempting: asyncio.Task[bool] | None = None
        self._closed = False
        self.setWindowTitle("Sign in to Live Edit")
        self.setAccessibleName("Sign in")
        last = settings.value(LAST_SERVER) if settings is not None else None
        self._build(server_url or core.server_url or (last if isinstance(last, str) else ""),
                    user or core.username or "")
        self.finished.connect(self._on_finished)

    # --- layout --------------------------------------------------------------------------

    def _build(self, server_url: str, user: str) -> None:
        heading = QLabel("Sign in to Live Edit")
        font = heading.font()
        font.setPointSizeF(font.pointSizeF() * 1.3)
        font.setBold(True)
        heading.setFont(font)
        self.server = self._field(server_url, "Server address")
        self.server.setPlaceholderText("liveedit.example.com:8765")
        self.user = self._field(user, "User name")
        self.password = self._field("", "Password")
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        remember_row = self._build_remember()
        form = QFormLayout()
        form.addRow("&Server:", self.server)
        form.addRow("&User:", self.user)
        form.addRow("&Password:", self.password)
        form.addRow("", remember_row)
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
        self.setMinimumWidth(460)
        (self.password if user else self.server if not server_url else self.user).setFocus()

    def _build_remember(self) -> QHBoxLayout:
        """The "Remember me" box, and why it is greyed out where there is no keyring."""
        self.remember = QCheckBox("&Remember me on this computer")
        self.remember.setAccessibleName("Remember me")
        self.remember.setChecked(True)
        #: Why the box is greyed out, in plain words beside it (no keyring on this system).
        self.remember_reason = QLabel(NOT_REMEMBERED)
        self.remember_reason.setObjectName("rememberReason")
        self.remember_reason.setWordWrap(True)
        self.remember_reason.setEnabled(False)  # the palette's quiet text colour
        self.remember_reason.hide()
        if not self.core.credentials.available():
            self.remember.setChecked(False)
            self.remember.setEnabled(False)
            self.remember.setToolTip(NOT_REMEMBERED)
            self.remember_reason.setText(
                "No keyring on this computer: you will be asked for your password next time.")
            self.remember_reason.show()
        remember_row = QHBoxLayout()
        remember_row.setSpacing(8)
        remember_row.addWidget(self.remember)
        remember_row.addWidget(self.remember_reason, 1)
        return remember_row

    def _field(self, text: str, name: str) -> QLineEdit:
        # Enter reaches the default button (Sign in) through QDialog: no returnPressed
        # connection, which made one Enter start two sign-ins.
        edit = QLineEdit(text)
        edit.setAccessibleName(name)
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
        if self._closed or not self.sign_in_button.isEnabled():
            return
        if self._attempting is not None and not self._attempting.done():
            return  # one sign-in at a time
        self._attempting = spawn(self.attempt(), what="sign in")

    async def attempt(self) -> bool:
        """Try to sign in with what the form holds; True when it closed signed in."""
        user = self.user.text().strip()
        if not self.server.text().strip() or not user or not self.password.text():
            self._say("Fill in the server address, your user name and your password.")
            return False
        try:
            server = normalise_server(self.server.text())
        except ValueError as exc:
            self._say(str(exc))
            return False
        self.server.setText(server)
        password, remember = self.password.text(), self.remember.isChecked()
        core = self.core
        if self._open_profile is not None and core.username \
                and (core.username, core.server_url) != (user, server):
            core = self._open_profile(server, user)  # replicas of two accounts never mix
        self._busy(True)
        try:
            notice = await _login(core, server, user, password, remember)
        except CoreError as exc:
            if not self._closed:
                self._busy(False)
                self._failed(exc)
            return False
        if self._closed:  # cancelled meanwhile: the dialog may be gone
            return False
        self._busy(False)
        self.core = core
        self.notice = notice
        if self.settings is not None:
            self.settings.setValue(LAST_SERVER, server)
        self.outcome = Outcome.SIGNED_IN
        self.accept()
        return True

    def _failed(self, exc: CoreError) -> None:
        log.info("sign-in failed: %s", exc)
        self._say(_plain(exc))
        can_go_offline = (isinstance(exc, ServerUnreachable)
                          and not isinstance(exc, NotLiveEditServer) and bool(self.core.username))
        if can_go_offline:
            self.message.setText(self.message.text() + " You can open this computer's copy "
                                 f"as {self.core.username} and work offline.")
            self.offline_button.show()
            self.offline_button.setFocus()
        elif isinstance(exc, NotLiveEditServer):
            self.server.setFocus()
            self.server.selectAll()
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
