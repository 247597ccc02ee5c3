"""Accounts, password hashing, login throttling, access and refresh tokens (AuthService).

Real SQLite files in tmp_path; time comes from a fake clock so expiry and lockouts need no
sleeping; argon2 runs with cheap (but real) parameters except where the default matters.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from argon2 import PasswordHasher
from jwt.warnings import InsecureKeyLengthWarning

from sync.server.auth import MAX_LOCK_SECONDS, AuthService, Role, TokenPair, User
from sync.server.errors import (
    AccountDisabled,
    InvalidCredentials,
    TokenExpired,
    TokenInvalid,
    TooManyAttempts,
    UserError,
)

PASSWORD = "correct horse battery"
CUSTOMER = "46e216ca-9413-4e7e-b5c7-dfaa5aeadf9e"
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock shared by the service under test."""
    return FakeClock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A fresh server database file."""
    return tmp_path / "server.db"


@pytest.fixture
def auth(db_path: Path, clock: FakeClock) -> Iterator[AuthService]:
    """An AuthService on a real database with a fake clock and cheap argon2 parameters."""
    service = AuthService(db_path, clock=clock, hasher=FAST_HASHER)
    yield service
    service.close()


@pytest.fixture
def alice(auth: AuthService) -> User:
    """A rep account."""
    return auth.add_user("alice", PASSWORD, Role.REP)


def _raw(db_path: Path, sql: str, *params: object) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def _secret(db_path: Path) -> bytes:
    value = _raw(db_path, "SELECT value FROM meta WHERE key = 'jwt_secret'")[0][0]
    assert isinstance(value, bytes)
    return value


def _payload(token: str) -> dict[str, object]:
    body = token.split(".")[1]
    decoded = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    assert isinstance(decoded, dict)
    return decoded


# -- accounts ------------------------------------------------------------------------------


def test_password_is_stored_only_as_argon2id_hash(auth: AuthService, db_path: Path) -> None:
    """The users table holds an argon2id hash, never the password itself."""
    auth.add_user("alice", PASSWORD, Role.REP)
    [(stored,)] = _raw(db_path, "SELECT password_hash FROM users WHERE username = 'alice'")
    assert isinstance(stored, str)
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


def test_add_user_returns_the_stored_account(auth: AuthService) -> None:
    """add_user returns the account as get_user and list_users see it."""
    user = auth.add_user("bob@acme", PASSWORD, "customer", CUSTOMER.upper())
    assert user.role is Role.CUSTOMER
    assert user.customer_id == CUSTOMER
    assert (user.disabled, user.token_version) == (False, 0)
    assert auth.get_user("bob@acme") == user
    assert auth.get_user("nobody") is None
    assert auth.list_users() == [user]


@pytest.mark.parametrize(
    ("username", "password", "role", "customer_id", "message"),
    [
        ("", PASSWORD, Role.REP, None, "invalid username"),
        ("a b", PASSWORD, Role.REP, None, "invalid username"),
        ("x" * 65, PASSWORD, Role.REP, None, "invalid username"),
        ("carl", "short", Role.REP, None, "at least 8"),
        ("carl", PASSWORD, "admin", None, "unknown role"),
        ("carl", PASSWORD, Role.REP, CUSTOMER, "rep account"),
        ("carl", PASSWORD, Role.CUSTOMER, None, "needs the UUID"),
        ("carl", PASSWORD, Role.CUSTOMER, "not-a-uuid", "is not a UUID"),
    ],
)
def test_add_user_rejects_invalid_values(
    auth: AuthService, username: str, password: str, role: str, customer_id: str | None,
    message: str,
) -> None:
    """Invalid names, passwords, roles and customer ids raise UserError and store nothing."""
    with pytest.raises(UserError, match=message):
        auth.add_user(username, password, role, customer_id)
    assert auth.list_users() == []


def test_duplicate_username_is_a_clear_user_error(auth: AuthService, alice: User) -> None:
    """Adding an existing username raises UserError saying it already exists."""
    with pytest.raises(UserError, match="user 'alice' already exists"):
        auth.add_user("alice", "another password", Role.REP)


def test_admin_changes_on_unknown_user_raise(auth: AuthService) -> None:
    """Disabling, re-roling or re-passwording a missing user raises UserError."""
    with pytest.raises(UserError, match="no user named 'ghost'"):
        auth.set_disabled("ghost", True)
    with pytest.raises(UserError, match="no user named 'ghost'"):
        auth.set_role("ghost", Role.REP)
    with pytest.raises(UserError, match="no user named 'ghost'"):
        auth.set_password("ghost", PASSWORD)


def test_admin_changes_bump_token_version(auth: AuthService, alice: User) -> None:
    """Each admin change increments token_version."""
    auth.set_disabled("alice", True)
    auth.set_disabled("alice", False)
    auth.set_role("alice", Role.CUSTOMER, CUSTOMER)
    user = auth.set_password("alice", "a new password")
    assert user.token_version == 4
    assert (user.role, user.customer_id, user.disabled) == (Role.CUSTOMER, CUSTOMER, False)


# -- login ---------------------------------------------------------------------------------


def test_login_issues_tokens_that_verify(auth: AuthService, alice: User, clock: FakeClock) -> None:
    """A correct login returns a token pair whose access token verifies to the user's claims."""
    pair = auth.login("alice", PASSWORD)
    claims = auth.verify_access(pair.access_token)
    assert (claims.username, claims.role, claims.customer_id) == ("alice", Role.REP, None)
    assert claims.issued_at == clock.now
    assert claims.expires_at == clock.now + 900
    assert pair.expires_in == 900


def test_token_pair_json_shape(auth: AuthService, alice: User) -> None:
    """as_json gives the OAuth2-style body with token_type bearer and integer expires_in."""
    pair = auth.login("alice", PASSWORD)
    assert pair.as_json() == {
        "access_token": pair.access_token, "refresh_token": pair.refresh_token,
        "token_type": "bearer", "expires_in": 900,
    }


def test_wrong_password_and_unknown_user_look_the_same(auth: AuthService, alice: User) -> None:
    """A wrong password and an unknown user raise the same InvalidCredentials message."""
    with pytest.raises(InvalidCredentials) as wrong:
        auth.login("alice", "not the password")
    with pytest.raises(InvalidCredentials) as unknown:
        auth.login("mallory", PASSWORD)
    assert str(wrong.value) == str(unknown.value) == "wrong username or password"


def test_disabled_account_cannot_log_in(auth: AuthService, alice: User) -> None:
    """The right password on a disabled account raises AccountDisabled; a wrong one does not."""
    auth.set_disabled("alice", True)
    with pytest.raises(AccountDisabled):
        auth.login("alice", PASSWORD)
    with pytest.raises(InvalidCredentials):
        auth.login("alice", "not the password")
    auth.set_disabled("alice", False)
    assert auth.login("alice", PASSWORD).access_token


def test_outdated_hash_is_rehashed_at_login(auth: AuthService, db_path: Path) -> None:
    """A hash made with weaker parameters is replaced by one with the current parameters."""
    auth.add_user("alice", PASSWORD, Role.REP)
    with AuthService(db_path) as default_params:
        default_params.login("alice", PASSWORD)
    [(stored,)] = _raw(db_path, "SELECT password_hash FROM users")
    assert isinstance(stored, str)
    assert "m=65536" in stored
    assert auth.login("alice", PASSWORD).access_token


def test_concurrent_logins_from_threads(auth: AuthService, alice: User) -> None:
    """Logins from several threads at once all succeed with distinct refresh tokens."""
    results: list[TokenPair] = []

    def log_in() -> None:
        results.append(auth.login("alice", PASSWORD))

    threads = [threading.Thread(target=log_in) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len({pair.refresh_token for pair in results}) == 8


# -- throttling ----------------------------------------------------------------------------


def _fail(auth: AuthService, times: int, username: str = "alice") -> None:
    for _ in range(times):
        with pytest.raises(InvalidCredentials):
            auth.login(username, "not the password")


def test_five_failures_lock_the_account(auth: AuthService, alice: User) -> None:
    """After 5 failures even the right password is refused with retry_after 1 s."""
    _fail(auth, 5)
    with pytest.raises(TooManyAttempts) as locked:
        auth.login("alice", PASSWORD)
    assert locked.value.retry_after == pytest.approx(1.0)


def test_lock_doubles_and_is_capped(auth: AuthService, alice: User, clock: FakeClock) -> None:
    """Each further failure doubles the lock (1, 2, 4 … s) up to MAX_LOCK_SECONDS."""
    _fail(auth, 5)
    waits = []
    for _ in range(12):
        with pytest.raises(TooManyAttempts) as locked:
            auth.login("alice", "not the password")
        waits.append(locked.value.retry_after)
        clock.advance(locked.value.retry_after)
        _fail(auth, 1)
    assert waits[:4] == [1.0, 2.0, 4.0, 8.0]
    assert max(waits) == MAX_LOCK_SECONDS


def test_success_resets_the_failures(auth: AuthService, alice: User, clock: FakeClock) -> None:
    """After the lock expires, a successful login clears the count: 4 more failures pass."""
    _fail(auth, 5)
    clock.advance(1.0)
    auth.login("alice", PASSWORD)
    _fail(auth, 4)
    assert auth.login("alice", PASSWORD).access_token


def test_throttle_is_per_username(auth: AuthService, alice: User) -> None:
    """Locking one username leaves other accounts able to log in."""
    auth.add_user("bob", PASSWORD, Role.REP)
    _fail(auth, 5, "alice")
    assert auth.login("bob", PASSWORD).access_token


def test_unknown_usernames_are_throttled_too(auth: AuthService) -> None:
    """Guessing passwords for a non-existent username gets locked like a real one."""
    _fail(auth, 5, "ghost")
    with pytest.raises(TooManyAttempts):
        auth.login("ghost", PASSWORD)


# -- access tokens -------------------------------------------------------------------------


def test_access_token_expires(auth: AuthService, alice: User, clock: FakeClock) -> None:
    """An access token is refused with TokenExpired once its lifetime is over."""
    token = auth.login("alice", PASSWORD).access_token
    clock.advance(899)
    assert auth.verify_access(token).username == "alice"
    clock.advance(1)
    with pytest.raises(TokenExpired, match="access token expired; refresh it or log in again"):
        auth.verify_access(token)


def test_alg_none_is_rejected(auth: AuthService, alice: User, clock: FakeClock) -> None:
    """An unsigned token (alg none) with valid-looking claims is TokenInvalid."""
    claims = _payload(auth.login("alice", PASSWORD).access_token)
    forged = jwt.encode(claims, "", algorithm="none")
    with pytest.raises(TokenInvalid):
        auth.verify_access(forged)


def test_other_key_is_rejected(auth: AuthService, alice: User) -> None:
    """A token signed with another key is TokenInvalid."""
    claims = _payload(auth.login("alice", PASSWORD).access_token)
    forged = jwt.encode(claims, b"k" * 32, algorithm="HS256")
    with pytest.raises(TokenInvalid):
        auth.verify_access(forged)


def test_other_algorithm_with_the_right_key_is_rejected(
    auth: AuthService, alice: User, db_path: Path,
) -> None:
    """Only HS256 is accepted, even when HS512 is signed with the real key."""
    claims = _payload(auth.login("alice", PASSWORD).access_token)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)  # 32 bytes for HS512
        other = jwt.encode(claims, _secret(db_path), algorithm="HS512")
    with pytest.raises(TokenInvalid):
        auth.verify_access(other)


def test_tampered_payload_is_rejected(auth: AuthService, db_path: Path) -> None:
    """Changing the payload of a real token (customer → other customer) breaks the signature."""
    auth.add_user("bob", PASSWORD, Role.CUSTOMER, CUSTOMER)
    token = auth.login("bob", PASSWORD).access_token
    header, _, signature = token.split(".")
    claims = _payload(token)
    claims["cid"] = "00000000-0000-4000-8000-000000000000"
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(TokenInvalid):
        auth.verify_access(f"{header}.{body}.{signature}")


@pytest.mark.parametrize("missing", ["exp", "iat", "sub"])
def test_required_claims(auth: AuthService, alice: User, db_path: Path, missing: str) -> None:
    """A correctly signed token without exp, iat or sub is TokenInvalid."""
    claims = _payload(auth.login("alice", PASSWORD).access_token)
    del claims[missing]
    token = jwt.encode(claims, _secret(db_path), algorithm="HS256")
    with pytest.raises(TokenInvalid):
        auth.verify_access(token)


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "x" * 10_000])
def test_garbage_tokens_are_invalid(auth: AuthService, garbage: str) -> None:
    """Strings that are not JWTs raise TokenInvalid, never something else."""
    with pytest.raises(TokenInvalid):
        auth.verify_access(garbage)


def test_disable_cuts_off_existing_access_tokens(auth: AuthService, alice: User) -> None:
    """A token issued before a disable is refused (AccountDisabled), and stays dead after enable."""
    token = auth.login("alice", PASSWORD).access_token
    auth.set_disabled("alice", True)
    with pytest.raises(AccountDisabled):
        auth.verify_access(token)
    auth.set_disabled("alice", False)
    with pytest.raises(TokenInvalid, match="log in again"):
        auth.verify_access(token)


def test_role_change_cuts_off_existing_access_tokens(auth: AuthService, alice: User) -> None:
    """After set_role the old token is TokenInvalid; a new login carries the new role."""
    token = auth.login("alice", PASSWORD).access_token
    auth.set_role("alice", Role.CUSTOMER, CUSTOMER)
    with pytest.raises(TokenInvalid):
        auth.verify_access(token)
    claims = auth.verify_access(auth.login("alice", PASSWORD).access_token)
    assert (claims.role, claims.customer_id, claims.token_version) == (
        Role.CUSTOMER, CUSTOMER, 1,
    )


def test_password_change_revokes_access_and_refresh(auth: AuthService, alice: User) -> None:
    """set_password makes old access and refresh tokens invalid; the new password works."""
    pair = auth.login("alice", PASSWORD)
    auth.set_password("alice", "brand new password")
    with pytest.raises(TokenInvalid):
        auth.verify_access(pair.access_token)
    with pytest.raises(TokenInvalid):
        auth.refresh(pair.refresh_token)
    with pytest.raises(InvalidCredentials):
        auth.login("alice", PASSWORD)
    assert auth.login("alice", "brand new password").access_token


def test_disable_from_another_process_is_seen(
    auth: AuthService, alice: User, db_path: Path,
) -> None:
    """A disable made through another AuthService (e.g. the CLI) cuts off this one's tokens."""
    token = auth.login("alice", PASSWORD).access_token
    with AuthService(db_path, hasher=FAST_HASHER) as admin:
        admin.set_disabled("alice", True)
    with pytest.raises(AccountDisabled):
        auth.verify_access(token)


def test_signing_key_persists_across_instances(
    auth: AuthService, alice: User, db_path: Path, clock: FakeClock,
) -> None:
    """A second AuthService on the same database (a restart) accepts the first one's tokens."""
    token = auth.login("alice", PASSWORD).access_token
    assert len(_secret(db_path)) == 32
    with AuthService(db_path, clock=clock, hasher=FAST_HASHER) as restarted:
        assert restarted.verify_access(token).username == "alice"


# -- refresh tokens ------------------------------------------------------------------------


def test_refresh_tokens_are_stored_hashed(auth: AuthService, alice: User, db_path: Path) -> None:
    """Only the SHA-256 of a refresh token is in the database."""
    token = auth.login("alice", PASSWORD).refresh_token
    hashes = [row[0] for row in _raw(db_path, "SELECT token_hash FROM refresh_tokens")]
    assert hashes == [hashlib.sha256(token.encode()).hexdigest()]


def test_refresh_rotates(auth: AuthService, alice: User, clock: FakeClock) -> None:
    """refresh returns a new pair; the new refresh token works and the old one is spent."""
    first = auth.login("alice", PASSWORD)
    clock.advance(600)
    second = auth.refresh(first.refresh_token)
    assert second.refresh_token != first.refresh_token
    assert auth.verify_access(second.access_token).expires_at == clock.now + 900
    third = auth.refresh(second.refresh_token)
    assert third.refresh_token not in {first.refresh_token, second.refresh_token}


def test_refresh_reuse_revokes_the_family(auth: AuthService, alice: User) -> None:
    """Replaying a refresh token whose successor was already used (a theft) raises
    TokenInvalid and kills the successors too; other logins are untouched."""
    other_login = auth.login("alice", PASSWORD)
    first = auth.login("alice", PASSWORD)
    second = auth.refresh(first.refresh_token)
    third = auth.refresh(second.refresh_token)
    with pytest.raises(TokenInvalid, match="already used"):
        auth.refresh(first.refresh_token)
    with pytest.raises(TokenInvalid):
        auth.refresh(third.refresh_token)
    assert auth.refresh(other_login.refresh_token).refresh_token


def test_refresh_replay_after_the_grace_window_revokes_the_family(
    auth: AuthService, alice: User, clock: FakeClock,
) -> None:
    """Presenting a rotated token again after the grace window is a theft, even if its
    successor was never used."""
    from sync.server.tokens import REFRESH_REUSE_GRACE

    first = auth.login("alice", PASSWORD)
    second = auth.refresh(first.refresh_token)
    clock.advance(REFRESH_REUSE_GRACE + 1)
    with pytest.raises(TokenInvalid):
        auth.refresh(first.refresh_token)
    with pytest.raises(TokenInvalid):
        auth.refresh(second.refresh_token)


def test_lost_refresh_answer_is_retried_within_the_grace_window(
    auth: AuthService, alice: User, clock: FakeClock,
) -> None:
    """If the answer to a refresh was lost (its successor never used), presenting the old
    token again soon after re-rotates: new tokens, the unused successor retired."""
    first = auth.login("alice", PASSWORD)
    lost = auth.refresh(first.refresh_token)
    clock.advance(5)
    again = auth.refresh(first.refresh_token)
    assert again.refresh_token != lost.refresh_token
    assert auth.verify_access(again.access_token).username == "alice"
    with pytest.raises(TokenInvalid):
        auth.refresh(lost.refresh_token)
    assert auth.refresh(again.refresh_token).refresh_token


def test_refresh_token_expires(auth: AuthService, alice: User, clock: FakeClock) -> None:
    """A refresh token older than refresh_ttl raises TokenExpired."""
    token = auth.login("alice", PASSWORD).refresh_token
    clock.advance(30 * 86400)
    with pytest.raises(TokenExpired):
        auth.refresh(token)


def test_refresh_for_disabled_account(auth: AuthService, alice: User) -> None:
    """Refreshing for a disabled account raises AccountDisabled."""
    token = auth.login("alice", PASSWORD).refresh_token
    auth.set_disabled("alice", True)
    with pytest.raises(AccountDisabled):
        auth.refresh(token)


@pytest.mark.parametrize("token", ["", "never-issued", "x" * 5000])
def test_unknown_refresh_token(auth: AuthService, token: str) -> None:
    """An empty, unknown or huge refresh token raises TokenInvalid."""
    with pytest.raises(TokenInvalid):
        auth.refresh(token)


def test_logout_revokes_the_family(auth: AuthService, alice: User) -> None:
    """After logout neither the presented token nor its rotated successor can refresh."""
    first = auth.login("alice", PASSWORD)
    second = auth.refresh(first.refresh_token)
    auth.logout(first.refresh_token)
    with pytest.raises(TokenInvalid):
        auth.refresh(second.refresh_token)


def test_logout_is_idempotent_and_rejects_unknown(auth: AuthService, alice: User) -> None:
    """Logging out twice is fine; an unknown token raises TokenInvalid."""
    token = auth.login("alice", PASSWORD).refresh_token
    auth.logout(token)
    auth.logout(token)
    with pytest.raises(TokenInvalid):
        auth.logout("never-issued")
