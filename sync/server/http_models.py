"""The HTTP API's request and response models (they make its OpenAPI description).

The models of what a customer is (``Customer``, its ``Address``, a ``DirectoryEntry``) are
built from the field table (:mod:`sync.protocol.schema`) by :func:`build_models` when the
app is created, so a field added to the table appears in the responses and in
``/openapi.json`` without another edit. The other models do not depend on the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field, create_model

from sync.protocol import schema

__all__ = [
    "ErrorBody",
    "History",
    "LoginRequest",
    "Models",
    "NotificationModel",
    "NotificationPage",
    "RefreshRequest",
    "TokenResponse",
    "Version",
    "build_models",
]


class LoginRequest(BaseModel):
    """Credentials for ``POST /auth/login``."""

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class RefreshRequest(BaseModel):
    """A refresh token for ``/auth/refresh`` and ``/auth/logout``."""

    refresh_token: str = Field(min_length=1, max_length=512)


class TokenResponse(BaseModel):
    """Tokens returned by login and refresh."""

    access_token: str
    refresh_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth token type, not a secret
    expires_in: int


class Version(BaseModel):
    """One entry of a customer's history."""

    seq: int
    time: float
    author: str
    changes: list[str]


class History(BaseModel):
    """A customer's versions, newest first."""

    items: list[Version]


class NotificationModel(BaseModel):
    """One notification record."""

    seq: int
    customer_id: str
    kind: str
    actor: str
    time: float
    fields: list[str]
    title: str | None


class NotificationPage(BaseModel):
    """Notifications after a sequence number."""

    items: list[NotificationModel]
    latest: int
    more: bool


class ErrorBody(BaseModel):
    """Every error response; ``fields`` names the fields of a ``write_forbidden`` refusal."""

    error: str
    message: str
    fields: list[str] | None = None


@dataclass(frozen=True, slots=True)
class Models:
    """The models derived from the field table, built once per app."""

    Address: type[BaseModel]
    Customer: type[BaseModel]
    CustomerList: type[BaseModel]
    DirectoryEntry: type[BaseModel]
    DirectoryPage: type[BaseModel]


def _text(f: schema.Field) -> Any:
    """A field's pydantic type and default: text or null, with its label as the title."""
    return (str | None, Field(default=None, title=f.label))


def build_models() -> Models:
    """The customer models for the field table as it is now (call when creating the app)."""
    address = create_model(
        "Address", __doc__="The nested address of the seed-000 shape.",
        **{f.name: _text(f) for f in schema.address_fields()},
    )
    flat = {f.name: _text(f) for f in schema.fields() if not f.address}
    customer = create_model(
        "Customer",
        __doc__="A customer account in the seed-000 JSON shape, plus contact fields and state.",
        id=(str, ...), **flat, address=(address, ...), deleted=(bool, False),
        version=(int, Field(description="sequence number of the latest change")),
    )
    customer_list = create_model(
        "CustomerList", __doc__="A page of customers.",
        items=(list[customer], ...),  # type: ignore[valid-type]
    )
    entry = create_model(  # type: ignore[call-overload]
        "DirectoryEntryModel", __doc__="One directory row in the change feed.",
        id=(str, ...),
        **{f.name: (str | None, Field(title=f.label)) for f in schema.directory_fields()},
        updated_at=(float, ...), deleted=(bool, ...), cursor=(int, ...),
    )
    page = create_model(
        "DirectoryPage", __doc__="Directory changes after a cursor.",
        entries=(list[entry], ...),  # type: ignore[valid-type]
        cursor=(int, ...), more=(bool, ...),
    )
    return Models(address, customer, customer_list, entry, page)
