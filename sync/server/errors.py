"""Exceptions of the reference server.

Hierarchy::

    ServerError                       root of sync.server's errors
    ├── ConfigError                   bad command-line or configuration value
    ├── DatabaseError                 the database file cannot be used
    ├── ImportFailed                  an import file is unreadable or has an invalid record
    ├── UserError                     bad account administration (exists, unknown, bad name)
    ├── AuthError                     authentication failed (HTTP 401)
    │   ├── InvalidCredentials        wrong username or password
    │   ├── TokenInvalid              malformed, forged, revoked or reused token
    │   ├── TokenExpired              the token's time is up
    │   ├── AccountDisabled           the account exists but is disabled
    │   └── TooManyAttempts           throttled after repeated failures (HTTP 429)
    ├── Forbidden                     authenticated, but not allowed (HTTP 403)
    ├── NotFound                      no such customer or version (HTTP 404)
    └── InvalidInput                  a request's content is invalid (HTTP 422)

Messages are written for the person who reads them (an operator at a terminal or a
developer reading an HTTP response); they never contain secrets or internal details.
"""

from __future__ import annotations

__all__ = [
    "AccountDisabled",
    "AuthError",
    "ConfigError",
    "DatabaseError",
    "Forbidden",
    "ImportFailed",
    "InvalidCredentials",
    "InvalidInput",
    "NotFound",
    "ServerError",
    "TokenExpired",
    "TokenInvalid",
    "TooManyAttempts",
    "UserError",
]


class ServerError(Exception):
    """Root of the reference server's errors."""


class ConfigError(ServerError):
    """A command-line or configuration value is unusable."""


class DatabaseError(ServerError):
    """The database file cannot be used (unreadable, newer schema, not SQLite)."""


class ImportFailed(ServerError):
    """An import file is unreadable or holds an invalid record; nothing was imported."""


class UserError(ServerError):
    """An account administration request is invalid."""


class AuthError(ServerError):
    """Authentication failed."""


class InvalidCredentials(AuthError):
    """Wrong username or password (the message does not say which)."""


class TokenInvalid(AuthError):
    """The token is malformed, forged, revoked or was already used."""


class TokenExpired(AuthError):
    """The token's lifetime is over; log in again or refresh."""


class AccountDisabled(AuthError):
    """The account is disabled by an administrator."""


class TooManyAttempts(AuthError):
    """Too many failed logins; ``retry_after`` seconds until the next attempt is allowed."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Forbidden(ServerError):
    """The user is authenticated but may not do this."""


class NotFound(ServerError):
    """The thing asked for does not exist (or is not visible to this user)."""


class InvalidInput(ServerError):
    """The request's content is invalid; the message says what to change."""
