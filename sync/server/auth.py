"""Authentication of the reference server: logins, on accounts and tokens.

:class:`AuthService` is what the server and the CLI use. It puts together the accounts
(:class:`sync.server.accounts.AccountStore`: who exists, passwords, administrative
changes) and the tokens (:class:`sync.server.tokens.TokenService`: JWT access tokens,
rotating refresh tokens) on one database (a SQLite file, or Postgres through
``storage.postgres.accounts_db``), and throttles failed logins per username
(:class:`sync.server.throttle.LoginThrottle`, in memory, per process; on Postgres
:class:`~sync.server.throttle.SharedLoginThrottle`, shared by every node): after
``LOCK_AFTER_FAILURES`` consecutive failures the account is locked for 1 s, 2 s, 4 s, …
capped at ``MAX_LOCK_SECONDS``; a successful login resets the count.

``Role``, ``User``, ``Claims`` and ``TokenPair`` are re-exported here. ``AuthService`` is
thread-safe; argon2 work runs outside the database lock. It is meant to be called through
``asyncio.to_thread`` from the server, because hashing is slow on purpose.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from argon2 import PasswordHasher

from .accounts import AccountStore, Role, User
from .errors import AccountDisabled, InvalidCredentials
from .storage.base import open_accounts_database
from .throttle import LOCK_AFTER_FAILURES, MAX_LOCK_SECONDS, LoginThrottle, SharedLoginThrottle
from .tokens import Claims, TokenPair, TokenService

__all__ = [
    "LOCK_AFTER_FAILURES",
    "MAX_LOCK_SECONDS",
    "AuthService",
    "Claims",
    "Role",
    "TokenPair",
    "User",
]


class AuthService:
    """Accounts, logins and tokens on one server database (thread-safe).

    ``hasher`` is the argon2 ``PasswordHasher`` used for new hashes (its parameters decide
    when a stored hash needs a rehash at the next login); the default is argon2-cffi's.
    ``accounts`` and ``tokens`` are the two halves, for callers that need only one.
    """

    def __init__(
        self,
        db_path: Path | str,
        *,
        access_ttl: float = 900,
        refresh_ttl: float = 30 * 86400,
        clock: Callable[[], float] = time.time,
        hasher: PasswordHasher | None = None,
    ) -> None:
        if access_ttl <= 0 or refresh_ttl <= 0:
            raise ValueError("token lifetimes must be positive")
        self._db, shared = open_accounts_database(db_path)
        self._clock = clock
        self.accounts = AccountStore(self._db, hasher or PasswordHasher(), clock)
        self.tokens = TokenService(self._db, access_ttl=access_ttl, refresh_ttl=refresh_ttl,
                                   clock=clock)
        self._throttle: LoginThrottle | SharedLoginThrottle = (
            SharedLoginThrottle(self._db) if shared else LoginThrottle()
        )

    # -- lifecycle ---------------------------------------------------------------------

    def close(self) -> None:
        """Close the database connections."""
        self._db.close()

    def __enter__(self) -> AuthService:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- login -------------------------------------------------------------------------

    def login(self, username: str, password: str) -> TokenPair:
        """Check a username and password and hand out tokens.

        Raises TooManyAttempts while the username is locked, InvalidCredentials for a wrong
        username or password (the message does not say which), AccountDisabled when the
        password is right but the account is disabled.
        """
        now = self._clock()
        self._throttle.check(username, now)
        user = self.accounts.authenticate(username, password)
        if user is None:
            self._throttle.failure(username, now)
            raise InvalidCredentials("wrong username or password")
        self._throttle.success(username)
        if user.disabled:
            raise AccountDisabled("this account is disabled; ask an administrator")
        return self.tokens.new_login(user, now)

    # -- the halves, under the names callers know --------------------------------------

    def add_user(
        self, username: str, password: str, role: Role | str, customer_id: str | None = None,
    ) -> User:
        """Create an account (see :meth:`AccountStore.add_user`)."""
        return self.accounts.add_user(username, password, role, customer_id)

    def get_user(self, username: str) -> User | None:
        """The account with this username, or None."""
        return self.accounts.get_user(username)

    def get_users(self, usernames: list[str]) -> dict[str, User]:
        """The accounts among ``usernames`` that exist, by username."""
        return self.accounts.get_users(usernames)

    def list_users(self) -> list[User]:
        """Every account, by username."""
        return self.accounts.list_users()

    def set_disabled(self, username: str, disabled: bool) -> User:
        """Disable or enable an account; its existing tokens lose access either way."""
        return self.accounts.set_disabled(username, disabled)

    def set_role(self, username: str, role: Role | str, customer_id: str | None = None) -> User:
        """Change an account's role (and customer); its existing tokens lose access."""
        return self.accounts.set_role(username, role, customer_id)

    def set_password(self, username: str, password: str) -> User:
        """Set a new password; the account's existing tokens lose access."""
        return self.accounts.set_password(username, password)

    def refresh(self, refresh_token: str) -> TokenPair:
        """Rotate a refresh token (see :meth:`TokenService.refresh`)."""
        return self.tokens.refresh(refresh_token)

    def logout(self, refresh_token: str) -> None:
        """Revoke the refresh token's whole family (see :meth:`TokenService.logout`)."""
        self.tokens.logout(refresh_token)

    def issue_access(self, user: User, *, now: float | None = None) -> tuple[str, float]:
        """A signed access token for the user, and when it expires (unix seconds)."""
        return self.tokens.issue_access(user, now=now)

    def verify_access(self, token: str) -> Claims:
        """Check an access token and that its account still has access."""
        return self.tokens.verify_access(token)
