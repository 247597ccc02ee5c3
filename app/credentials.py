"""Refresh tokens in the operating system's keyring, and nowhere else.

A signed-in user's refresh token is kept in the OS keyring (macOS Keychain, Windows
Credential Locker, Secret Service / KWallet on Linux) through :mod:`keyring`, under the
service ``"liveedit"`` and the name ``"<server_url>|<username>"``. The access token is never
stored anywhere: it lives in memory only and is renewed from the refresh token.

When no real keyring is usable (no backend, keyring's ``fail`` or ``null`` backend, or a
backend that keeps secrets in plain files such as ``keyrings.alt``), every operation raises
:class:`CredentialsUnavailable` and nothing is written: Live Edit then asks for the
password at each sign-in instead. Secrets are never written to a file by this module and
never logged.
"""

from __future__ import annotations

import logging

import keyring
import keyring.errors
from keyring.backend import KeyringBackend
from keyring.backends import chainer, fail, null

from .errors import CoreError

__all__ = ["SERVICE", "UNAVAILABLE_MESSAGE", "CredentialStore", "CredentialsUnavailable"]

log = logging.getLogger(__name__)

#: The keyring service name of every Live Edit secret.
SERVICE = "liveedit"

UNAVAILABLE_MESSAGE = (
    "no OS keyring is available on this system; Live Edit will not store your sign-in "
    "and will ask for your password instead"
)

#: Backends that do not keep a secret safely: they drop it, fail, or write a plain file.
_UNSAFE_TYPES: tuple[type[KeyringBackend], ...] = (fail.Keyring, null.Keyring)
_UNSAFE_MODULES = ("keyrings.alt",)


class CredentialsUnavailable(CoreError):
    """No OS keyring can hold the refresh token; the user must type the password."""

    def __init__(self, detail: str | None = None) -> None:
        message = UNAVAILABLE_MESSAGE if detail is None else f"{UNAVAILABLE_MESSAGE} ({detail})"
        super().__init__(message)


class CredentialStore:
    """Save, load and delete refresh tokens in the OS keyring.

    Stores only refresh tokens; access tokens are kept in memory by the caller and never
    passed here. Each call looks up the current keyring backend, so a keyring installed or
    unlocked while the app runs is used from then on.
    """

    def available(self) -> bool:
        """True when an OS keyring can hold secrets (nothing is read or written)."""
        return _backend() is not None

    def save(self, server_url: str, username: str, refresh_token: str) -> None:
        """Store the refresh token of ``username`` at ``server_url``, replacing any."""
        backend = _require_backend()
        try:
            backend.set_password(SERVICE, _key(server_url, username), refresh_token)
        except keyring.errors.KeyringError as exc:
            raise CredentialsUnavailable(f"the keyring refused the token: {exc}") from exc
        log.debug("stored a refresh token for %s at %s", username, server_url)

    def load(self, server_url: str, username: str) -> str | None:
        """The stored refresh token, or None if there is none."""
        backend = _require_backend()
        try:
            token = backend.get_password(SERVICE, _key(server_url, username))
        except keyring.errors.KeyringError as exc:
            raise CredentialsUnavailable(f"the keyring could not be read: {exc}") from exc
        return token

    def delete(self, server_url: str, username: str) -> None:
        """Forget the stored refresh token; deleting a missing one is not an error."""
        backend = _require_backend()
        try:
            backend.delete_password(SERVICE, _key(server_url, username))
        except keyring.errors.PasswordDeleteError:
            log.debug("no refresh token stored for %s at %s", username, server_url)
        except keyring.errors.KeyringError as exc:
            raise CredentialsUnavailable(f"the keyring could not be changed: {exc}") from exc


def _key(server_url: str, username: str) -> str:
    return f"{server_url}|{username}"


def _safe(backend: KeyringBackend) -> bool:
    module = type(backend).__module__
    return not isinstance(backend, _UNSAFE_TYPES) and not module.startswith(_UNSAFE_MODULES)


def _backend() -> KeyringBackend | None:
    """The keyring backend to use, or None. From a chain of backends, the first safe one
    (highest priority), so a plain-file backend in the chain is never written to."""
    try:
        current = keyring.get_keyring()
    except keyring.errors.KeyringError as exc:
        log.info("no keyring backend: %s", exc)
        return None
    candidates = (
        list(current.backends) if isinstance(current, chainer.ChainerBackend) else [current]
    )
    for backend in candidates:
        if _safe(backend):
            return backend
    return None


def _require_backend() -> KeyringBackend:
    backend = _backend()
    if backend is None:
        raise CredentialsUnavailable
    return backend
