"""Tokens of the reference server: JWT access tokens and rotating refresh tokens.

- Access tokens are JWTs signed with HS256. The signing key (32 random bytes) is created on
  first use and kept in the ``meta`` table under ``jwt_secret``, so tokens survive restarts
  and every process using the same database accepts them. ``exp`` and ``iat`` are checked
  against the service's ``clock`` (one clock for every time rule, fakeable in tests).
- Refresh tokens are opaque random strings, stored only as SHA-256 hashes, grouped in a
  *family* per login. Each refresh rotates the token; presenting a used token again is a
  replay and revokes the whole family (within ``REFRESH_REUSE_GRACE`` seconds of the
  rotation, while the successor is unused, a lost answer re-rotates instead).

Accounts (who may log in, with which password) are :mod:`sync.server.accounts`' job;
:class:`sync.server.auth.AuthService` puts both together. Thread-safe through
:class:`sync.server.db.Database`.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt

from .accounts import AccountStore, Role, User
from .db import Connection
from .errors import (
    AccountDisabled,
    AuthError,
    DatabaseError,
    TokenExpired,
    TokenInvalid,
)
from .storage.base import AccountsDatabase

__all__ = ["CLOCK_SKEW_SECONDS", "REFRESH_REUSE_GRACE", "Claims", "TokenPair", "TokenService"]

log = logging.getLogger(__name__)

#: Seconds after a rotation during which presenting the old refresh token again, while its
#: successor is unused, re-rotates instead of revoking the family (a lost answer, not theft).
REFRESH_REUSE_GRACE = 20.0

#: How far in the future an access token's ``iat`` may be (clock skew between processes).
CLOCK_SKEW_SECONDS = 60.0

_ALGORITHM = "HS256"
_META_KEY_OF_SIGNING_KEY = "jwt_secret"
_MAX_TOKEN_LENGTH = 4096


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


class TokenService:
    """Access and refresh tokens on one server database (thread-safe)."""

    def __init__(
        self, db: AccountsDatabase, *, access_ttl: float, refresh_ttl: float,
        clock: Callable[[], float],
    ) -> None:
        if access_ttl <= 0 or refresh_ttl <= 0:
            raise ValueError("token lifetimes must be positive")
        self._db = db
        self.access_ttl = float(access_ttl)
        self._refresh_ttl = float(refresh_ttl)
        self._clock = clock
        self._key: bytes | None = None

    def new_login(self, user: User, now: float) -> TokenPair:
        """Start a new refresh-token family for a login (and drop expired tokens)."""
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM refresh_tokens WHERE expires_at <= ?", (now,))
            refresh_token = self._store_refresh(conn, user.id, secrets.token_hex(16), now)
        access_token, _ = self.issue_access(user, now=now)
        log.info("%r logged in", user.username)
        return TokenPair(access_token, refresh_token, self.access_ttl)

    def _store_refresh(
        self, conn: Connection, user_id: int, family: str, now: float,
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
        with self._db.transaction() as conn:
            outcome = self._rotate(conn, token_hash, now)
        if isinstance(outcome, AuthError):
            raise outcome
        user, new_token = outcome
        access_token, _ = self.issue_access(user, now=now)
        return TokenPair(access_token, new_token, self.access_ttl)

    def _rotate(
        self, conn: Connection, token_hash: str, now: float,
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
        user = AccountStore.fetch_user(conn, username)
        assert user is not None
        if self._lost_answer(conn, family, token_hash, used_at=used_at, revoked=revoked,
                             now=now):
            problem = self._refresh_problem(user, expires_at, None, revoked, now)
            if problem is not None:
                return problem
            # The client never got (or never used) the successor: hand out another one and
            # retire the unused successor, instead of treating a lost answer as a theft.
            conn.execute(
                "UPDATE refresh_tokens SET revoked = ?"
                " WHERE family = ? AND token_hash != ? AND used_at IS NULL",
                (True, family, token_hash),
            )
            log.info("refresh token of %r presented again within %g s: re-rotated", username,
                     REFRESH_REUSE_GRACE)
            return user, self._store_refresh(conn, user.id, family, now)
        problem = self._refresh_problem(user, expires_at, used_at, revoked, now)
        if problem is not None:
            if used_at is not None:
                conn.execute("UPDATE refresh_tokens SET revoked = ? WHERE family = ?",
                             (True, family))
                log.warning("refresh token of %r replayed; its family is revoked", username)
            return problem
        conn.execute(
            "UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ?", (now, token_hash)
        )
        return user, self._store_refresh(conn, user.id, family, now)

    @staticmethod
    def _lost_answer(conn: Connection, family: str, token_hash: str, *,
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
        with self._db.transaction() as conn:
            row = conn.execute(
                "SELECT family FROM refresh_tokens WHERE token_hash = ?", (token_hash,)
            ).fetchone()
            if row is None:
                raise TokenInvalid("unknown refresh token")
            conn.execute("UPDATE refresh_tokens SET revoked = ? WHERE family = ?", (True, row[0]))

    @staticmethod
    def _check_token_text(token: str) -> str:
        if not isinstance(token, str) or not token or len(token) > _MAX_TOKEN_LENGTH:
            raise TokenInvalid("malformed refresh token; log in again")
        return token

    # -- access tokens -----------------------------------------------------------------

    def issue_access(self, user: User, *, now: float | None = None) -> tuple[str, float]:
        """A signed access token for the user, and when it expires (unix seconds)."""
        issued_at = self._clock() if now is None else now
        expires_at = issued_at + self.access_ttl
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
        with self._db.reading() as conn:
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
            with self._db.transaction() as conn:
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                    (_META_KEY_OF_SIGNING_KEY, secrets.token_bytes(32)),
                )
                row = conn.execute(
                    "SELECT value FROM meta WHERE key = ?", (_META_KEY_OF_SIGNING_KEY,)
                ).fetchone()
            if not isinstance(row[0], bytes) or len(row[0]) < 32:
                raise DatabaseError("the stored JWT signing key is damaged")
            self._key = row[0]
        return self._key
