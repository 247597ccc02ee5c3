"""Exceptions of the client core.

Hierarchy::

    CoreError                     root of app's errors
    ├── UnknownCustomer           no such customer here (and none reachable on the server)
    ├── InvalidEdit               a field value or edit is not allowed (names the field)
    ├── PermissionDenied          the server refused access to this customer
    ├── NotSignedIn               no server or user configured for this profile yet
    ├── SignInFailed              wrong credentials, or the sign-in has expired
    ├── CredentialsUnavailable    no OS keyring (defined in app.credentials)
    ├── ReplicaError              the local replica file is unusable (defined in app.replica)
    ├── ServerUnreachable         the server could not be reached (edits stay queued)
    │   └── NotLiveEditServer     something answers there, but not a Live Edit server
    └── SyncTimeout               not fully in sync within the time allowed

Messages are written for the rep (or the support engineer at a terminal): what happened
and what to do.
"""

from __future__ import annotations

__all__ = [
    "CoreError",
    "InvalidEdit",
    "NotLiveEditServer",
    "NotSignedIn",
    "PermissionDenied",
    "ServerUnreachable",
    "SignInFailed",
    "SyncTimeout",
    "UnknownCustomer",
]


class CoreError(Exception):
    """Root of the client core's errors."""


class UnknownCustomer(CoreError):
    """No such customer in this replica (and the server does not know it either)."""


class InvalidEdit(CoreError):
    """An edit was refused before anything changed; the message names the field."""


class PermissionDenied(CoreError):
    """The server refused access to this customer for this user."""


class NotSignedIn(CoreError):
    """This profile has no server/user yet: run login first."""


class SignInFailed(CoreError):
    """Wrong username or password, or the saved sign-in is no longer valid."""


class ServerUnreachable(CoreError):
    """The server could not be reached; local edits stay queued in the outbox."""


class SyncTimeout(CoreError):
    """Not fully in sync within the time allowed (edits stay queued)."""


class NotLiveEditServer(ServerUnreachable):
    """Something answers at the address, but it is not a Live Edit server (a wrong path
    or port): the sign-in form says so instead of blaming the password."""
