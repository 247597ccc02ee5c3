"""Accounts and tokens of the reference server: passwords, logins, access and refresh tokens.

- Passwords are hashed with argon2id (``argon2-cffi``); a login against an unknown user
  still spends the argon2 time, so response times do not reveal which usernames exist.
- Access tokens are JWTs signed with HS256. The signing key (32 random bytes) is created on
  first use and kept in the ``meta`` table under ``jwt_secret``, so tokens survive restarts
  and every process using the same database accepts them. ``exp`` and ``iat`` are checked
  against the service's ``clock`` (one clock for every time rule, fakeable in tests).
- Refresh tokens are opaque random strings, stored only as SHA-256 hashes, grouped in a
  *family* per login. Each refresh rotates the token; presenting a used token again is a
  replay and revokes the whole family.
- Every administrative change to an account (disable, enable, role, password) bumps its
  ``token_version`` and revokes its refresh tokens: tokens issued before lose access.
- Failed logins are throttled per username by :class:`sync.server.throttle.LoginThrottle`
  (in memory, per process): after ``LOCK_AFTER_FAILURES`` consecutive failures the account
  is locked for 1 s, 2 s, 4 s, … capped at ``MAX_LOCK_SECONDS``; a successful login resets
  the count.

What an account is (:class:`Role`, :class:`User`) and which usernames, passwords and roles
are valid lives in :mod:`sync.server.accounts`; both classes are re-exported here.

``AuthService`` is thread-safe (one lock around its database connection); argon2 work runs
outside the lock. It is meant to be called through ``asyncio.to_thread`` from the server,
because hashing is slow on purpose.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from . import db
from .accounts import Role, User, check_password, check_role, check_username, is_username
from .errors import (
    AccountDisabled,
    AuthError,
    DatabaseError,
    InvalidCredentials,
    TokenExpired,
    TokenInvalid,
    UserError,
)
from .throttle import LOCK_AFTER_FAILURES, MAX_LOCK_SECONDS, LoginThrottle

__all__ = [
    "LOCK_AFTER_FAILURES",
    "MAX_LOCK_SECONDS",
    "AuthService",
    "Claims",
    "Role",
    "TokenPair",
    "User",
]

log = logging.getLogger(__name__)

#: Seconds after a rotation during which presenting the old refresh token again, while its
#: successor is unused, re-rotates instead of revoking the family (a lost answer, not theft).
REFRESH_REUSE_GRACE = 20.0

#: How far in the future an access token's ``iat`` may be (clock skew between processes).
CLOCK_SKEW_SECONDS = 60.0

_ALGORITHM = "HS256"
_META_KEY_OF_SIGNING_KEY = "jwt_secret"
_MAX_TOKEN_LENGTH = 4096
_USER_COLUMNS = "id, username, role, customer_id, disabled, token_version"


@dataclass(frozen=True, slots=True)
class Claims:
    """What a verified access token says. Times are unix seconds."""

    username: str
    role: Role
    customer_id: str | None
    token_version: int
    issued_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class TokenPair:
    """The tokens a login or refresh hands out; ``expires_in`` is the access token's life."""

    access_token: str
    refresh_token: str
    expires_in: float

    def as_json(self) -> dict[str, Any]:
        """The OAuth2-style JSON body (RFC 6749 §5.1) of a token response."""
        expires_in: float = self.expires_in
        if float(expires_in).is_integer():
            expires_in = int(expires_in)
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "token_type": "bearer",
            "expires_in": expires_in,
        }


def _digest(token: str) -> str:
    """How a refresh token is stored: the hex SHA-256 of the token."""
    return hashlib.sha256(token.encode()).hexdigest()


def _user_from_row(row: tuple[Any, ...]) -> User:
    return User(
        id=int(row[0]), username=str(row[1]), role=Role(row[2]), customer_id=row[3],
        disabled=bool(row[4]), token_version=int(row[5]),
    )


def _number(payload: dict[str, Any], claim: str) -> float:
    value = payload.get(claim)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenInvalid("invalid access token; log in again")
    return float(value)


def _claims_from_payload(payload: dict[str, Any]) -> Claims:
    """Type-check a decoded (signature-verified) payload; TokenInvalid when it is odd."""
    version = payload.get("tv")
    customer_id = payload.get("cid")
    try:
        role = Role(str(payload.get("role")))
    except ValueError:
        raise TokenInvalid("invalid access token; log in again") from None
    if (
        isinstance(version, bool) or not isinstance(version, int)
        or not (customer_id is None or isinstance(customer_id, str))
    ):
        raise TokenInvalid("invalid access token; log in again")
    return Claims(
        username=str(payload["sub"]), role=role, customer_id=customer_id,
        token_version=version, issued_at=_number(payload, "iat"),
        expires_at=_number(payload, "exp"),
    )


class AuthService:
    """Accounts, logins and tokens on one server database (thread-safe).

    ``hasher`` is the argon2 ``PasswordHasher`` used for new hashes (its parameters decide
    when a stored hash needs a rehash at the next login); the default is argon2-cffi's.
    """

    def __init__(
        self,
        db_path: Path,
        *,
        access_ttl: float = 900,
        refresh_ttl: float = 30 * 86400,
        clock: Callable[[], float] = time.time,
        hasher: PasswordHasher | None = None,
    ) -> None:
        if access_ttl <= 0 or refresh_ttl <= 0:
            raise ValueError("token lifetimes must be positive")
        self._conn = db.connect(db_path)
        self._lock = threading.RLock()
        # Reads use their own connection: in WAL mode they never wait for a writer, so
        # verify_access (called on the event loop) is not held up by a login's write.
        self._read_conn = db.connect(db_path, readonly=True)
        self._read_lock = threading.Lock()
        self._access_ttl = float(access_ttl)
        self._refresh_ttl = float(refresh_ttl)
        self._clock = clock
        self._hasher = hasher or PasswordHasher()
        self._throttle = LoginThrottle()
        self._key: bytes | None = None
        self._dummy_hash: str | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def close(self) -> None:
        """Close the database connections."""
        with self._lock, self._read_lock:
            self._conn.close()
            self._read_conn.close()

    def __enter__(self) -> AuthService:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """Hold the lock and one write transaction; SQLite errors become DatabaseError."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise DatabaseError(f"the database is unavailable: {exc}") from exc
            try:
                yield self._conn
            except BaseException as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise DatabaseError(f"could not save to the database: {exc}") from exc
                raise
            try:
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise DatabaseError(f"could not save to the database: {exc}") from exc

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """The read-only connection, for reads outside a transaction."""
        with self._read_lock:
            try:
                yield self._read_conn
            except sqlite3.Error as exc:
                raise DatabaseError(f"could not read the database: {exc}") from exc

    # -- accounts ----------------------------------------------------------------------

    def add_user(
        self, username: str, password: str, role: Role | str, customer_id: str | None = None,
    ) -> User:
        """Create an account; UserError when a value is invalid or the username is taken."""
        check_username(username)
        role, customer_id = check_role(role, customer_id)
        password_hash = self._hasher.hash(check_password(password))
        with self._transaction() as conn:
            try:
                conn.execute(
                    "INSERT INTO users (username, password_hash, role, customer_id, created_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (username, password_hash, role.value, customer_id, self._clock()),
                )
            except sqlite3.IntegrityError:
                raise UserError(f"user {username!r} already exists") from None
            user = self._fetch_user(conn, username)
        assert user is not None
        log.info("added %s account %r", role.value, username)
        return user

    def get_user(self, username: str) -> User | None:
        """The account with this username, or None."""
        with self._reading() as conn:
            return self._fetch_user(conn, username)

    def list_users(self) -> list[User]:
        """Every account, by username."""
        with self._reading() as conn:
            rows = conn.execute(f"SELECT {_USER_COLUMNS} FROM users ORDER BY username")  # noqa: S608
            return [_user_from_row(row) for row in rows]

    def set_disabled(self, username: str, disabled: bool) -> User:
        """Disable or enable an account; its existing tokens lose access either way."""
        return self._change(
            username, "UPDATE users SET disabled = ? WHERE username = ?", (int(disabled),)
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
        with self._transaction() as conn:
            if conn.execute(sql, (*params, username)).rowcount == 0:
                raise UserError(f"no user named {username!r}")
            conn.execute(
                "UPDATE users SET token_version = token_version + 1 WHERE username = ?",
                (username,),
            )
            user = self._fetch_user(conn, username)
            assert user is not None
            conn.execute("UPDATE refresh_tokens SET revoked = 1 WHERE user_id = ?", (user.id,))
        log.info("changed account %r; its tokens are revoked", username)
        return user

    @staticmethod
    def _fetch_user(conn: sqlite3.Connection, username: str) -> User | None:
        row = conn.execute(
            f"SELECT {_USER_COLUMNS} FROM users WHERE username = ?", (username,)  # noqa: S608
        ).fetchone()
        return None if row is None else _user_from_row(row)

    # -- login -------------------------------------------------------------------------

    def login(self, username: str, password: str) -> TokenPair:
        """Check a username and password and hand out tokens.

        Raises TooManyAttempts while the username is locked, InvalidCredentials for a wrong
        username or password (the message does not say which), AccountDisabled when the
        password is right but the account is disabled.
        """
        now = self._clock()
        self._throttle.check(username, now)
        found = self._user_and_hash(username)
        stored_hash = found[1] if found else self._dummy()
        if not self._verify(stored_hash, password) or found is None:
            self._throttle.failure(username, now)
            raise InvalidCredentials("wrong username or password")
        self._throttle.success(username)
        user = found[0]
        self._rehash_if_needed(user, stored_hash, password)
        if user.disabled:
            raise AccountDisabled("this account is disabled; ask an administrator")
        return self._new_login(user, now)

    def _user_and_hash(self, username: str) -> tuple[User, str] | None:
        if not is_username(username):
            return None
        with self._reading() as conn:
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
        with self._transaction() as conn:
            conn.execute(
                "UPDATE users SET password_hash = ? WHERE id = ? AND password_hash = ?",
                (new_hash, user.id, stored_hash),
            )
        log.info("rehashed the password of %r with current parameters", user.username)

    def _new_login(self, user: User, now: float) -> TokenPair:
        """Start a new refresh-token family for a login (and drop expired tokens)."""
        with self._transaction() as conn:
            conn.execute("DELETE FROM refresh_tokens WHERE expires_at <= ?", (now,))
            refresh_token = self._store_refresh(conn, user.id, secrets.token_hex(16), now)
        access_token, _ = self.issue_access(user, now=now)
        log.info("%r logged in", user.username)
        return TokenPair(access_token, refresh_token, self._access_ttl)

    def _store_refresh(
        self, conn: sqlite3.Connection, user_id: int, family: str, now: float,
    ) -> str:
        token = secrets.token_urlsafe(32)
        conn.execute(
            "INSERT INTO refresh_tokens (token_hash, user_id, family, issued_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (_digest(token), user_id, family, now, now + self._refresh_ttl),
        )
        return token

    # -- refresh and logout ------------------------------------------------------------

    def refresh(self, refresh_token: str) -> TokenPair:
        """Rotate a refresh token: the old one is marked used, a new one is issued.

        Raises TokenInvalid for an unknown, revoked or reused token (a reuse revokes the
        whole family: someone replayed a stolen token), TokenExpired, AccountDisabled.
        """
        now = self._clock()
        token_hash = _digest(self._check_token_text(refresh_token))
        with self._transaction() as conn:
            outcome = self._rotate(conn, token_hash, now)
        if isinstance(outcome, AuthError):
            raise outcome
        user, new_token = outcome
        access_token, _ = self.issue_access(user, now=now)
        return TokenPair(access_token, new_token, self._access_ttl)

    def _rotate(
        self, conn: sqlite3.Connection, token_hash: str, now: float,
    ) -> tuple[User, str] | AuthError:
        """Inside a transaction: mark the token used and store its successor, or return
        the error to raise once the transaction (maybe a family revocation) is committed."""
        row = conn.execute(
            "SELECT t.family, t.expires_at, t.used_at, t.revoked, u.username"
            " FROM refresh_tokens t JOIN users u ON u.id = t.user_id"
            " WHERE t.token_hash = ?",
            (token_hash,),
        ).fetchone()
        if row is None:
            return TokenInvalid("unknown refresh token; log in again")
        family, expires_at, used_at, revoked, username = row
        user = self._fetch_user(conn, username)
        assert user is not None
        if self._lost_answer(conn, family, token_hash, used_at=used_at, revoked=revoked,
                             now=now):
            problem = self._refresh_problem(user, expires_at, None, revoked, now)
            if problem is not None:
                return problem
            # The client never got (or never used) the successor: hand out another one and
            # retire the unused successor, instead of treating a lost answer as a theft.
            conn.execute(
                "UPDATE refresh_tokens SET revoked = 1"
                " WHERE family = ? AND token_hash != ? AND used_at IS NULL",
                (family, token_hash),
            )
            log.info("refresh token of %r presented again within %g s: re-rotated", username,
                     REFRESH_REUSE_GRACE)
            return user, self._store_refresh(conn, user.id, family, now)
        problem = self._refresh_problem(user, expires_at, used_at, revoked, now)
        if problem is not None:
            if used_at is not None:
                conn.execute("UPDATE refresh_tokens SET revoked = 1 WHERE family = ?", (family,))
                log.warning("refresh token of %r replayed; its family is revoked", username)
            return problem
        conn.execute(
            "UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ?", (now, token_hash)
        )
        return user, self._store_refresh(conn, user.id, family, now)

    @staticmethod
    def _lost_answer(conn: sqlite3.Connection, family: str, token_hash: str, *,
                     used_at: float | None, revoked: int, now: float) -> bool:
        """A just-rotated token presented again while its successor was never used: the
        answer to the first refresh was most likely lost (a cut, a server crash), not
        stolen. Only within REFRESH_REUSE_GRACE seconds; otherwise reuse is a theft."""
        if used_at is None or revoked or now - used_at > REFRESH_REUSE_GRACE:
            return False
        successors = conn.execute(
            "SELECT used_at, revoked FROM refresh_tokens"
            " WHERE family = ? AND token_hash != ? AND issued_at >= ?",
            (family, token_hash, used_at),
        ).fetchall()
        return bool(successors) and all(u is None and not r for u, r in successors)

    @staticmethod
    def _refresh_problem(
        user: User, expires_at: float, used_at: float | None, revoked: int, now: float,
    ) -> AuthError | None:
        """Why a stored refresh token may not be used now, or None when it may."""
        if user.disabled:
            return AccountDisabled("this account is disabled; ask an administrator")
        if used_at is not None:
            return TokenInvalid(
                "refresh token was already used; every session of that login is now "
                "signed out; log in again"
            )
        if revoked:
            return TokenInvalid("refresh token was revoked; log in again")
        if expires_at <= now:
            return TokenExpired("refresh token expired; log in again")
        return None

    def logout(self, refresh_token: str) -> None:
        """Revoke the refresh token's whole family (idempotent); unknown → TokenInvalid."""
        token_hash = _digest(self._check_token_text(refresh_token))
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT family FROM refresh_tokens WHERE token_hash = ?", (token_hash,)
            ).fetchone()
            if row is None:
                raise TokenInvalid("unknown refresh token")
            conn.execute("UPDATE refresh_tokens SET revoked = 1 WHERE family = ?", (row[0],))

    @staticmethod
    def _check_token_text(token: str) -> str:
        if not isinstance(token, str) or not token or len(token) > _MAX_TOKEN_LENGTH:
            raise TokenInvalid("malformed refresh token; log in again")
        return token

    # -- access tokens -----------------------------------------------------------------

    def issue_access(self, user: User, *, now: float | None = None) -> tuple[str, float]:
        """A signed access token for the user, and when it expires (unix seconds)."""
        issued_at = self._clock() if now is None else now
        expires_at = issued_at + self._access_ttl
        payload = {
            "sub": user.username, "role": user.role.value, "cid": user.customer_id,
            "tv": user.token_version, "iat": issued_at, "exp": expires_at,
        }
        return jwt.encode(payload, self._secret(), algorithm=_ALGORITHM), expires_at

    def verify_access(self, token: str) -> Claims:
        """Check an access token and that its account still has access.

        Raises TokenExpired when its time is up, AccountDisabled when the account is
        disabled, TokenInvalid for anything else (bad signature or algorithm, missing or
        odd claims, a deleted account, access revoked by an admin change).
        """
        claims = self._decode(token)
        now = self._clock()
        if claims.expires_at <= now:
            raise TokenExpired("access token expired; refresh it or log in again")
        if claims.issued_at > now + CLOCK_SKEW_SECONDS:
            raise TokenInvalid("access token is issued in the future; check the clocks")
        with self._reading() as conn:
            row = conn.execute(
                "SELECT disabled, token_version FROM users WHERE username = ?",
                (claims.username,),
            ).fetchone()
        if row is None:
            raise TokenInvalid("the account of this token no longer exists")
        if row[0]:
            raise AccountDisabled("this account is disabled; ask an administrator")
        if row[1] != claims.token_version:
            raise TokenInvalid("access to this account changed; log in again")
        return claims

    def _decode(self, token: str) -> Claims:
        if not isinstance(token, str | bytes) or len(token) > _MAX_TOKEN_LENGTH:
            raise TokenInvalid("invalid access token; log in again")
        try:
            payload = jwt.decode(
                token, self._secret(), algorithms=[_ALGORITHM],
                options={
                    "require": ["exp", "iat", "sub"],
                    # Times are checked against self._clock by the caller.
                    "verify_exp": False, "verify_iat": False, "verify_nbf": False,
                },
            )
        except jwt.PyJWTError as exc:
            raise TokenInvalid("invalid access token; log in again") from exc
        return _claims_from_payload(payload)

    def _secret(self) -> bytes:
        """The HS256 key, created on first use and shared through the ``meta`` table."""
        if self._key is None:
            with self._transaction() as conn:
                conn.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)",
                    (_META_KEY_OF_SIGNING_KEY, secrets.token_bytes(32)),
                )
                row = conn.execute(
                    "SELECT value FROM meta WHERE key = ?", (_META_KEY_OF_SIGNING_KEY,)
                ).fetchone()
            if not isinstance(row[0], bytes) or len(row[0]) < 32:
                raise DatabaseError("the stored JWT signing key is damaged")
            self._key = row[0]
        return self._key
