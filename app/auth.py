"""Signing in to the server and keeping a valid access token.

The access token lives only in memory. The refresh token lives in memory and, when the rep
chose "remember me" and the OS has a keyring, in the keyring (``app.credentials``); where
no keyring exists the rep is told so and asked for the password instead, and no secret is
ever written to a file. :meth:`Authenticator.token` is the connection's token provider.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from sync.client.errors import AuthenticationFailed

from .credentials import CredentialStore, CredentialsUnavailable
from .errors import NotLiveEditServer, ServerUnreachable, SignInFailed

__all__ = ["Authenticator", "PasswordProvider"]

log = logging.getLogger(__name__)

PasswordProvider = Callable[[], Awaitable[str | None]]

#: Renew the access token when less than this many seconds remain.
_MARGIN = 30.0


class Authenticator:
    """Tokens for one server and user."""

    def __init__(
        self, server_url: str, username: str, *, credentials: CredentialStore | None = None,
        password_provider: PasswordProvider | None = None, timeout: float = 15.0,
    ) -> None:
        self.server_url = server_url.rstrip("/")
        self.username = username
        self.credentials = credentials or CredentialStore()
        self.password_provider = password_provider
        self.timeout = timeout
        self._access: str | None = None
        self._expires_at = 0.0
        self._refresh: str | None = None
        self._remember = False

    async def _post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as http:
                return await http.post(f"{self.server_url}{path}", json=body)
        except httpx.HTTPError as exc:
            raise ServerUnreachable(
                f"cannot reach {self.server_url}: {exc}; your edits stay queued"
            ) from exc

    def _take(self, data: dict[str, Any]) -> None:
        self._access = str(data["access_token"])
        self._expires_at = time.time() + float(data["expires_in"])
        self._refresh = str(data["refresh_token"])
        if self._remember:
            self._store_refresh()

    def _store_refresh(self) -> None:
        assert self._refresh is not None
        try:
            self.credentials.save(self.server_url, self.username, self._refresh)
        except CredentialsUnavailable as exc:
            log.warning("%s", exc)
            self._remember = False

    async def login(self, password: str, *, remember: bool = True) -> None:
        """Sign in with a password. Raises SignInFailed or ServerUnreachable.

        With ``remember`` the refresh token goes to the OS keyring; raises
        CredentialsUnavailable after signing in when there is none (the sign-in still holds
        for this session).
        """
        response = await self._post("/auth/login",
                                    {"username": self.username, "password": password})
        if response.status_code in (404, 405) or not _is_json(response):
            await self._check_server()
        if response.status_code != 200:
            raise SignInFailed(_message(response, "sign-in failed"))
        self._remember = False
        self._take(response.json())
        if remember:
            self._remember = True
            assert self._refresh is not None
            self.credentials.save(self.server_url, self.username, self._refresh)

    async def _check_server(self) -> None:
        """Raise NotLiveEditServer unless ``GET /healthz`` answers like a Live Edit server."""
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as http:
                response = await http.get(f"{self.server_url}/healthz")
        except httpx.HTTPError as exc:
            raise ServerUnreachable(f"cannot reach {self.server_url}: {exc}") from exc
        if response.status_code == 200 and _is_json(response) \
                and isinstance(response.json(), dict) and "status" in response.json():
            return
        raise NotLiveEditServer(
            f"{self.server_url} is not a Live Edit server: check the address "
            "(for example liveedit.example.com:8765, without a path)")

    async def access_token(self) -> str:
        """A valid access token for HTTP calls (refreshing or asking for the password)."""
        return await self.token(False)

    async def token(self, force_new: bool) -> str:
        """The connection's token provider (see sync.client): a valid access token.

        Raises ``AuthenticationFailed`` (fatal for the connection) when no way to sign in is
        left, and ServerUnreachable (retried) when the server cannot be reached.
        """
        if not force_new and self._access and time.time() < self._expires_at - _MARGIN:
            return self._access
        refresh = self._refresh or self._keyring_refresh()
        if refresh is not None:
            response = await self._post("/auth/refresh", {"refresh_token": refresh})
            if response.status_code == 200:
                self._take(response.json())
                assert self._access is not None
                return self._access
            if response.status_code not in (400, 401):
                # Throttled or a server fault: the token is still good, try again later.
                raise ServerUnreachable(
                    f"the server could not renew the sign-in now (HTTP {response.status_code})"
                )
            log.info("refresh refused (%s); asking for the password", response.status_code)
            self._refresh = None
            self._forget_keyring()
        if self.password_provider is not None:
            password = await self.password_provider()
            if password:
                try:
                    await self.login(password, remember=self._remember)
                except SignInFailed as exc:
                    raise AuthenticationFailed(str(exc)) from exc
                assert self._access is not None
                return self._access
        raise AuthenticationFailed(
            f"signed out of {self.server_url}: sign in again as {self.username}"
        )

    def _keyring_refresh(self) -> str | None:
        try:
            token = self.credentials.load(self.server_url, self.username)
        except CredentialsUnavailable:
            return None
        if token is not None:
            self._remember = True
        return token

    def _forget_keyring(self) -> None:
        try:
            self.credentials.delete(self.server_url, self.username)
        except CredentialsUnavailable:
            return

    async def logout(self) -> None:
        """Revoke the refresh token on the server and forget every token here."""
        refresh = self._refresh or self._keyring_refresh()
        if refresh is not None:
            try:
                await self._post("/auth/logout", {"refresh_token": refresh})
            except ServerUnreachable:
                log.warning("server unreachable; forgetting the sign-in locally only")
        self._access = self._refresh = None
        self._forget_keyring()


def _is_json(response: httpx.Response) -> bool:
    content_type: str = response.headers.get("content-type", "")
    return content_type.startswith("application/json")


def _message(response: httpx.Response, default: str) -> str:
    try:
        return str(response.json().get("message") or default)
    except ValueError:
        return f"{default} (HTTP {response.status_code})"
