"""What an account of the reference server is, and which values it accepts.

:class:`Role` (the field table's, :class:`sync.protocol.schema.Role`: what an account
may see and which fields it may write) and :class:`User` describe an account as stored;
``check_username``, ``check_password`` and ``check_role`` validate what an administrator
gives for a new or changed account and raise ``UserError`` with a message saying what a
valid value looks like.

:class:`AccountStore` keeps accounts in the server database: adding and changing them
(every administrative change bumps the account's ``token_version`` and revokes its refresh
tokens, so tokens issued before lose access) and checking passwords, hashed with argon2id
(``argon2-cffi``; a login against an unknown user still spends the argon2 time, so
response times do not reveal which usernames exist). Tokens are :mod:`sync.server.tokens`'
job; :mod:`sync.server.auth` puts both together.
"""

from __future__ import annotations

import logging
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from sync.protocol.schema import Role

from .db import Connection, IntegrityError
from .errors import DuplicateKey, UserError
from .storage.base import AccountsDatabase

__all__ = [
    "MAX_PASSWORD_LENGTH",
    "MIN_PASSWORD_LENGTH",
    "AccountStore",
    "Role",
    "User",
    "check_password",
    "check_role",
    "check_username",
    "is_username",
]

log = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024
_USERNAME = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
_USER_COLUMNS = "id, username, role, customer_id, disabled, token_version"


@dataclass(frozen=True, slots=True)
class User:
    """An account as stored (without its password hash)."""

    id: int
    username: str
    role: Role
    #: Canonical lowercase UUID of the customer for role ``customer``; None for reps.
    customer_id: str | None
    disabled: bool
    token_version: int


def is_username(username: object) -> bool:
    """Whether ``username`` is a string an account may be named (1-64 of A-Za-z0-9._@-)."""
    return isinstance(username, str) and _USERNAME.match(username) is not None


def check_username(username: str) -> str:
    """The username, or UserError when an account may not be named so."""
    if not is_username(username):
        raise UserError(
            f"invalid username {username!r}: use 1-64 letters, digits and . _ - @"
        )
    return username


def check_password(password: str) -> str:
    """The password, or UserError when it is too short or too long."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise UserError(f"the password must have at most {MAX_PASSWORD_LENGTH} characters")
    return password


def check_role(role: Role | str, customer_id: str | None) -> tuple[Role, str | None]:
    """Validate a role and its customer id; returns the role and the canonical id."""
    try:
        role = Role(role)
    except ValueError:
        raise UserError(
            f"unknown role {role!r}; use one of {', '.join(r.value for r in Role)}"
        ) from None
    if role is Role.REP:
        if customer_id is not None:
            raise UserError("a rep account sees every customer; do not give it a customer id")
        return role, None
    if customer_id is None:
        raise UserError("a customer account needs the UUID of its customer")
    try:
        return role, str(uuid.UUID(str(customer_id)))
    except ValueError:
        raise UserError(
            f"customer id {customer_id!r} is not a UUID "
            "(like 46e216ca-9413-4e7e-b5c7-dfaa5aeadf9e)"
        ) from None


def _user_from_row(row: tuple[Any, ...]) -> User:
    return User(
        id=int(row[0]), username=str(row[1]), role=Role(row[2]), customer_id=row[3],
        disabled=bool(row[4]), token_version=int(row[5]),
    )


class AccountStore:
    """Accounts on one server database (thread-safe through its database).

    ``hasher`` is the argon2 ``PasswordHasher`` used for new hashes (its parameters decide
    when a stored hash needs a rehash at the next login). ``clock`` stamps new accounts.
    """

    def __init__(
        self, db: AccountsDatabase, hasher: PasswordHasher, clock: Callable[[], float]
    ) -> None:
        self._db = db
        self._hasher = hasher
        self._clock = clock
        self._dummy_hash: str | None = None

    def add_user(
        self, username: str, password: str, role: Role | str, customer_id: str | None = None,
    ) -> User:
        """Create an account; UserError when a value is invalid or the username is taken."""
        check_username(username)
        role, customer_id = check_role(role, customer_id)
        password_hash = self._hasher.hash(check_password(password))
        with self._db.transaction() as conn:
            try:
                conn.execute(
                    "INSERT INTO users (username, password_hash, role, customer_id, created_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (username, password_hash, role.value, customer_id, self._clock()),
                )
            except (IntegrityError, DuplicateKey):
                raise UserError(f"user {username!r} already exists") from None
            user = self.fetch_user(conn, username)
        assert user is not None
        log.info("added %s account %r", role.value, username)
        return user

    def get_user(self, username: str) -> User | None:
        """The account with this username, or None."""
        with self._db.reading() as conn:
            return self.fetch_user(conn, username)

    def get_users(self, usernames: list[str]) -> dict[str, User]:
        """The accounts among ``usernames`` that exist, by username (one query per 500)."""
        found: dict[str, User] = {}
        with self._db.reading() as conn:
            for start in range(0, len(usernames), 500):
                chunk = usernames[start:start + 500]
                marks = ", ".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT {_USER_COLUMNS} FROM users WHERE username IN ({marks})",  # noqa: S608
                    tuple(chunk),
                )
                for row in rows:
                    user = _user_from_row(row)
                    found[user.username] = user
        return found

    def list_users(self) -> list[User]:
        """Every account, by username."""
        with self._db.reading() as conn:
            rows = conn.execute(f"SELECT {_USER_COLUMNS} FROM users ORDER BY username")  # noqa: S608
            return [_user_from_row(row) for row in rows]

    def set_disabled(self, username: str, disabled: bool) -> User:
        """Disable or enable an account; its existing tokens lose access either way."""
        return self._change(
            username, "UPDATE users SET disabled = ? WHERE username = ?", (bool(disabled),)
        )

    def set_role(self, username: str, role: Role | str, customer_id: str | None = None) -> User:
        """Change an account's role (and customer); its existing tokens lose access."""
        role, customer_id = check_role(role, customer_id)
        return self._change(
            username, "UPDATE users SET role = ?, customer_id = ? WHERE username = ?",
            (role.value, customer_id),
        )

    def set_password(self, username: str, password: str) -> User:
        """Set a new password; the account's existing tokens lose access."""
        password_hash = self._hasher.hash(check_password(password))
        return self._change(
            username, "UPDATE users SET password_hash = ? WHERE username = ?", (password_hash,)
        )

    def _change(self, username: str, sql: str, params: tuple[Any, ...]) -> User:
        """Run one admin UPDATE, bump token_version and revoke the refresh tokens."""
        with self._db.transaction() as conn:
            if conn.execute(sql, (*params, username)).rowcount == 0:
                raise UserError(f"no user named {username!r}")
            conn.execute(
                "UPDATE users SET token_version = token_version + 1 WHERE username = ?",
                (username,),
            )
            user = self.fetch_user(conn, username)
            assert user is not None
            conn.execute("UPDATE refresh_tokens SET revoked = ? WHERE user_id = ?", (True, user.id))
        log.info("changed account %r; its tokens are revoked", username)
        return user

    @staticmethod
    def fetch_user(conn: Connection, username: str) -> User | None:
        row = conn.execute(
            f"SELECT {_USER_COLUMNS} FROM users WHERE username = ?", (username,)  # noqa: S608
        ).fetchone()
        return None if row is None else _user_from_row(row)

    # -- passwords ---------------------------------------------------------------------

    def authenticate(self, username: str, password: str) -> User | None:
        """The account if ``password`` is its password, else None (unknown username or
        wrong password, told apart by nothing: the argon2 time is spent either way). A
        stored hash with old parameters is upgraded (same password, no token bump)."""
        found = self._user_and_hash(username)
        stored_hash = found[1] if found else self._dummy()
        if not self._verify(stored_hash, password) or found is None:
            return None
        self._rehash_if_needed(found[0], stored_hash, password)
        return found[0]

    def _user_and_hash(self, username: str) -> tuple[User, str] | None:
        if not is_username(username):
            return None
        with self._db.reading() as conn:
            row = conn.execute(
                f"SELECT {_USER_COLUMNS}, password_hash FROM users WHERE username = ?",  # noqa: S608
                (username,),
            ).fetchone()
        return None if row is None else (_user_from_row(row[:-1]), str(row[-1]))

    def _dummy(self) -> str:
        """A hash of a random password: unknown users are verified against it (timing)."""
        if self._dummy_hash is None:
            self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))
        return self._dummy_hash

    def _verify(self, stored_hash: str, password: str) -> bool:
        if not isinstance(password, str):
            password = ""
        try:
            return self._hasher.verify(stored_hash, password)
        except VerificationError:
            return False
        except InvalidHashError:
            log.error("a stored password hash is not an argon2 hash; the login fails")
            return False

    def _rehash_if_needed(self, user: User, stored_hash: str, password: str) -> None:
        """Upgrade the stored hash to the current parameters (same password, no bump)."""
        if not self._hasher.check_needs_rehash(stored_hash):
            return
        new_hash = self._hasher.hash(password)
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE users SET password_hash = ? WHERE id = ? AND password_hash = ?",
                (new_hash, user.id, stored_hash),
            )
        log.info("rehashed the password of %r with current parameters", user.username)

