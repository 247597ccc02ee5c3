"""Exceptions of the reference server.

Hierarchy::

    ServerError                       root of sync.server's errors
    ├── ConfigError                   bad command-line or configuration value
    ├── DatabaseError                 the database file cannot be used
    │   └── DuplicateKey              a unique key already exists
    ├── BusError                      a message between server nodes cannot be sent or read
    │   ├── BusPayloadTooLarge        an event too large for the bus (NOTIFY: 8,000 bytes)
    │   └── BusMessageInvalid         a message from the bus is not one of ours
    ├── ImportFailed                  an import file is unreadable or has an invalid record
    ├── UserError                     bad account administration (exists, unknown, bad name)
    ├── AuthError                     authentication failed (HTTP 401)
    │   ├── InvalidCredentials        wrong username or password
    │   ├── TokenInvalid              malformed, forged, revoked or reused token
    │   ├── TokenExpired              the token's time is up
    │   ├── AccountDisabled           the account exists but is disabled
    │   └── TooManyAttempts           throttled after repeated failures (HTTP 429)
    ├── Forbidden                     authenticated, but not allowed (HTTP 403)
    │   └── WriteForbidden            a change the role may not write (403, write_forbidden)
    ├── NotFound                      no such customer or version (HTTP 404)
    └── InvalidInput                  a request's content is invalid (HTTP 422)

Messages are written for the person who reads them (an operator at a terminal or a
developer reading an HTTP response); they never contain secrets or internal details.
"""

from __future__ import annotations

__all__ = [
    "AccountDisabled",
    "AuthError",
    "BusError",
    "BusMessageInvalid",
    "BusPayloadTooLarge",
    "ConfigError",
    "DatabaseError",
    "DuplicateKey",
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
    "WriteForbidden",
]


class ServerError(Exception):
    """Root of the reference server's errors."""


class ConfigError(ServerError):
    """A command-line or configuration value is unusable."""


class DatabaseError(ServerError):
    """The database file cannot be used (unreadable, newer schema, not SQLite)."""


class DuplicateKey(DatabaseError):
    """A row with that key already exists (a unique constraint refused it)."""


class BusError(ServerError):
    """A message between server nodes cannot be sent or read (sync/server/bus.py)."""


class BusPayloadTooLarge(BusError):
    """An event is too large for the bus: buses carry signals, the data is in the database."""


class BusMessageInvalid(BusError):
    """A message read from the bus is not an event of ours (another program's, or a newer
    version's): it is logged and skipped."""


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


class WriteForbidden(Forbidden):
    """The change touches fields (or notes, tasks, comments) the user's role may not write
    (the field table's ``writers``); ``fields`` names them. Nothing of it is kept."""

    def __init__(self, message: str, fields: tuple[str, ...]) -> None:
        super().__init__(message)
        self.fields = fields


class NotFound(ServerError):
    """The thing asked for does not exist (or is not visible to this user)."""


class InvalidInput(ServerError):
    """The request's content is invalid; the message says what to change."""
