"""What an account of the reference server is, and which values it accepts.

:class:`Role` and :class:`User` describe an account as stored; ``check_username``,
``check_password`` and ``check_role`` validate what an administrator gives for a new or
changed account and raise ``UserError`` with a message saying what a valid value looks
like. Storage, logins and tokens are :mod:`sync.server.auth`'s job.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from enum import StrEnum

from .errors import UserError

__all__ = [
    "MAX_PASSWORD_LENGTH",
    "MIN_PASSWORD_LENGTH",
    "Role",
    "User",
    "check_password",
    "check_role",
    "check_username",
    "is_username",
]

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024
_USERNAME = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")


class Role(StrEnum):
    """What an account may see: a rep sees every customer, a customer only its own."""

    REP = "rep"
    CUSTOMER = "customer"


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
