"""The HTTP API for other apps (seed 000), on the same port as ``/ws``.

Routes: ``/auth/login``, ``/auth/refresh``, ``/auth/logout``; ``/customers`` (list, search,
create), ``/customers/{id}`` (read, JSON Merge Patch, delete = tombstone),
``/customers/{id}/restore``, ``/customers/{id}/history``, ``/customers/{id}/versions/{seq}``;
``/directory`` (change feed since a cursor); ``/notifications`` (since a sequence number);
``/healthz``. The OpenAPI description is served at ``/openapi.json``.

Every change goes through the hub like a WebSocket update: logged durably before the
response, fanned out live, echo suppressed for the ``X-Session-Id`` given. Errors are
``{"error": <stable code>, "message": <what to do>}`` with the matching status.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pycrdt import Doc
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from sync.protocol import document
from sync.protocol.errors import ErrorCode, InvalidFieldValue
from sync.protocol.messages import customer_doc_id

from .auth import Claims, Role
from .errors import (
    AccountDisabled,
    AuthError,
    Forbidden,
    InvalidInput,
    NotFound,
    ServerError,
    TokenExpired,
    TooManyAttempts,
)
from .hub import SyncHub, can_access
from .rooms import Room

__all__ = ["install_http_api"]

_SESSION_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
MAX_BODY = 256 * 1024
#: Largest sequence number or cursor (SQLite INTEGER; larger ones overflowed into a 500).
MAX_SEQ = 2**63 - 1


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


class Address(BaseModel):
    """The nested address of the seed-000 shape."""

    street1: str | None = None
    street2: str | None = None
    city: str | None = None
    state: str | None = None
    zip: str | None = None


class Customer(BaseModel):
    """A customer account in the seed-000 JSON shape, plus contact fields and state."""

    id: str
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    tier: str | None = None
    address: Address
    deleted: bool = False
    version: int = Field(description="sequence number of the latest change")


class CustomerList(BaseModel):
    """A page of customers."""

    items: list[Customer]


class Version(BaseModel):
    """One entry of a customer's history."""

    seq: int
    time: float
    author: str
    changes: list[str]


class History(BaseModel):
    """A customer's versions, newest first."""

    items: list[Version]


class DirectoryEntryModel(BaseModel):
    """One directory row in the change feed."""

    id: str
    name: str | None
    email: str | None
    phone: str | None
    city: str | None
    state: str | None
    zip: str | None
    updated_at: float
    deleted: bool
    cursor: int


class DirectoryPage(BaseModel):
    """Directory changes after a cursor."""

    entries: list[DirectoryEntryModel]
    cursor: int
    more: bool


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
    """Every error response."""

    error: str
    message: str


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 413, 422, 429)
}


def _error(status: int, code: ErrorCode | str, message: str,
           headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": str(code), "message": message}, status, headers=headers)


def _customer_uuid(customer_id: str) -> str:
    try:
        return str(uuid.UUID(customer_id))
    except ValueError as exc:
        raise NotFound(f"no customer {customer_id!r}: customer ids are UUIDs") from exc


async def claims_of(
    request: Request, authorization: Annotated[str | None, Header()] = None,
) -> Claims:
    """The caller's verified access-token claims (``Authorization: Bearer …``)."""
    if not authorization or not authorization.lower().startswith("bearer "):
        raise AuthError("send 'Authorization: Bearer <access token>' (from /auth/login)")
    hub: SyncHub = request.app.state.hub
    return hub.auth.verify_access(authorization[7:].strip())


async def session_of(x_session_id: Annotated[str | None, Header()] = None) -> str | None:
    """The optional ``X-Session-Id`` whose WebSocket session gets no echo of this change."""
    if x_session_id is not None and not _SESSION_RE.match(x_session_id):
        raise InvalidInput("X-Session-Id must be 8-64 characters of A-Z a-z 0-9 _ -")
    return x_session_id


UserClaims = Annotated[Claims, Depends(claims_of)]
SessionHeader = Annotated[str | None, Depends(session_of)]


def hub_of(request: Request) -> SyncHub:
    """The server's hub (set on the app by create_app)."""
    hub: SyncHub = request.app.state.hub
    return hub


HubDep = Annotated[SyncHub, Depends(hub_of)]
router = APIRouter()



async def room_for(
    hub: SyncHub, claims: Claims, customer_id: str, *, must_exist: bool = True
) -> Room:
    """The customer's room, after the permission check; NotFound if it does not exist."""
    cid = _customer_uuid(customer_id)
    doc_id = customer_doc_id(cid)
    if not can_access(claims, doc_id):
        raise Forbidden("you may only see your own account")
    room = await hub.rooms.get(doc_id)
    if must_exist and not room.exists:
        raise NotFound(f"no customer {cid}")
    return room

def represent(room: Room) -> dict[str, Any]:
    data = document.to_json(room.doc_id.partition(":")[2], room.doc)
    data["version"] = room.seq
    return data

async def commit(hub: SyncHub, room: Room, fn: Any, claims: Claims, session_id: str | None) -> None:
    change = room.edit(fn)
    if change is not None:
        _, future = hub.accept_change(room, change, claims.username, session_id)
        await future

async def json_body(request: Request) -> Any:
    raw = bytearray()
    async for chunk in request.stream():  # never buffer more than MAX_BODY (+ one chunk)
        raw += chunk
        if len(raw) > MAX_BODY:
            raise InvalidInput(f"request body is larger than {MAX_BODY} bytes")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"request body is not valid JSON: {exc}") from exc
    except RecursionError:
        raise InvalidInput("request body is nested too deeply") from None
    if not isinstance(body, dict):
        raise InvalidInput("request body must be a JSON object")
    return body

@router.post("/auth/login", response_model=TokenResponse, responses=_ERRORS,
             tags=["auth"])
async def login(hub: HubDep, body: LoginRequest) -> dict[str, Any]:
    """Exchange a username and password for an access and a refresh token."""
    pair = await asyncio.to_thread(hub.auth.login, body.username, body.password)
    return pair.as_json()

@router.post("/auth/refresh", response_model=TokenResponse, responses=_ERRORS,
             tags=["auth"])
async def refresh(hub: HubDep, body: RefreshRequest) -> dict[str, Any]:
    """Exchange a refresh token for new tokens (the old refresh token stops working)."""
    pair = await asyncio.to_thread(hub.auth.refresh, body.refresh_token)
    return pair.as_json()

@router.post("/auth/logout", status_code=204, responses=_ERRORS, tags=["auth"])
async def logout(hub: HubDep, body: RefreshRequest) -> Response:
    """Revoke a refresh token and every token rotated from it."""
    await asyncio.to_thread(hub.auth.logout, body.refresh_token)
    return Response(status_code=204)

@router.get("/customers", response_model=CustomerList, responses=_ERRORS,
            tags=["customers"])
async def list_customers(hub: HubDep,
    claims: UserClaims, q: Annotated[str, Query(max_length=200)] = "",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """Search customers by name, e-mail, phone, city or zip (word prefixes)."""
    if claims.role != Role.REP:
        assert claims.customer_id is not None
        row = await asyncio.to_thread(hub.store.directory_row, claims.customer_id)
        rows = [row] if row is not None and not row.deleted else []
    else:
        rows = await asyncio.to_thread(hub.store.search, q, limit)
    items = []
    for row in rows:
        room = await hub.rooms.get(customer_doc_id(row.customer_id))
        items.append(represent(room))
    return {"items": items}

@router.get("/customers/{customer_id}", response_model=Customer, responses=_ERRORS,
            tags=["customers"])
async def get_customer(hub: HubDep, customer_id: str, claims: UserClaims) -> dict[str, Any]:
    """One customer."""
    return represent(await room_for(hub, claims, customer_id))

@router.post("/customers", response_model=Customer, status_code=201, responses=_ERRORS,
             tags=["customers"])
async def create_customer(
    hub: HubDep, request: Request, claims: UserClaims, session_id: SessionHeader,
    response: Response,
) -> dict[str, Any]:
    """Create a customer from the seed-000 JSON shape (``id`` optional)."""
    if claims.role != Role.REP:
        raise Forbidden("only representatives create customers")
    body = await json_body(request)
    cid = str(body.get("id") or uuid.uuid4())
    try:
        cid = str(uuid.UUID(cid))
    except ValueError as exc:
        raise InvalidInput("id must be a UUID") from exc
    values = _fields(body, partial=False)
    room = await hub.rooms.get(customer_doc_id(cid))
    if room.exists:
        return _conflict(f"customer {cid} already exists")  # type: ignore[return-value]
    await commit(
        hub, room, lambda doc: document.set_fields(doc, values, author=claims.username),
        claims, session_id,
    )
    response.headers["Location"] = f"/customers/{cid}"
    return represent(room)

@router.patch("/customers/{customer_id}", response_model=Customer, responses=_ERRORS,
              tags=["customers"])
async def patch_customer(hub: HubDep, customer_id: str, request: Request, claims: UserClaims,
                         session_id: SessionHeader) -> dict[str, Any]:
    """Apply a JSON Merge Patch (RFC 7396); null sets a field to null."""
    room = await room_for(hub, claims, customer_id)
    values = _fields(await json_body(request), partial=True)
    await commit(
        hub, room, lambda doc: document.set_fields(doc, values, author=claims.username),
        claims, session_id,
    )
    return represent(room)

@router.delete("/customers/{customer_id}", response_model=Customer, responses=_ERRORS,
               tags=["customers"])
async def delete_customer(hub: HubDep, customer_id: str, claims: UserClaims,
                          session_id: SessionHeader) -> dict[str, Any]:
    """Delete a customer (a tombstone: restorable)."""
    if claims.role != Role.REP:
        raise Forbidden("only representatives delete customers")
    room = await room_for(hub, claims, customer_id)
    await commit(hub, room, lambda doc: document.set_deleted(doc, True), claims, session_id)
    return represent(room)

@router.post("/customers/{customer_id}/restore", response_model=Customer,
             responses=_ERRORS, tags=["customers"])
async def restore_customer(hub: HubDep, customer_id: str, claims: UserClaims,
                           session_id: SessionHeader) -> dict[str, Any]:
    """Undo a delete."""
    if claims.role != Role.REP:
        raise Forbidden("only representatives restore customers")
    room = await room_for(hub, claims, customer_id)
    await commit(hub, room, lambda doc: document.set_deleted(doc, False), claims, session_id)
    return represent(room)

@router.get("/customers/{customer_id}/history", response_model=History,
            responses=_ERRORS, tags=["history"])
async def history(hub: HubDep,
    customer_id: str, claims: UserClaims,
    before: Annotated[int | None, Query(ge=1, le=MAX_SEQ)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """A customer's versions, newest first: sequence number, time, author, changes."""
    room = await room_for(hub, claims, customer_id)
    entries = await asyncio.to_thread(hub.store.history, room.doc_id, before=before,
                                      limit=limit)
    return {"items": [
        {"seq": e.seq, "time": e.time, "author": e.author, "changes": list(e.changes)}
        for e in entries
    ]}

@router.get("/customers/{customer_id}/versions/{seq}", responses=_ERRORS,
            tags=["history"])
async def version(hub: HubDep, customer_id: str, seq: int, claims: UserClaims) -> dict[str, Any]:
    """The customer as it was right after change ``seq``, with notes, tasks, comments."""
    room = await room_for(hub, claims, customer_id)
    if not 1 <= seq <= MAX_SEQ:
        raise NotFound(f"versions are numbered 1 to {MAX_SEQ}")
    parts = await asyncio.to_thread(hub.store.updates_until, room.doc_id, seq)
    if not parts:
        raise NotFound(f"customer {customer_id} has no version at or before {seq}")
    doc: Doc[Any] = document.new_document()
    for part in parts:
        doc.apply_update(part)
    data = document.to_json(room.doc_id.partition(":")[2], doc)
    data["version"] = seq
    data["notes"] = document.read_notes(doc)
    data["tasks"] = [
        {"id": t.id, "title": t.title, "done": t.done, "order": t.order}
        for t in document.read_tasks(doc)
    ]
    data["comments"] = [
        {"id": c.id, "author": c.author, "time": c.time, "text": c.text}
        for c in document.read_comments(doc)
    ]
    return data

@router.get("/directory", response_model=DirectoryPage, responses=_ERRORS,
            tags=["directory"])
async def directory(hub: HubDep,
    claims: UserClaims, cursor: Annotated[int, Query(ge=0, le=MAX_SEQ)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> dict[str, Any]:
    """Directory rows changed after ``cursor`` (replicate incrementally)."""
    only = None if claims.role == Role.REP else claims.customer_id
    rows = await asyncio.to_thread(hub.store.directory_since, cursor, limit + 1, only)
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "entries": [
            {"id": r.customer_id, "name": r.name, "email": r.email, "phone": r.phone,
             "city": r.city, "state": r.state, "zip": r.zip, "updated_at": r.updated_at,
             "deleted": r.deleted, "cursor": r.cursor}
            for r in rows
        ],
        "cursor": rows[-1].cursor if rows else cursor,
        "more": more,
    }

@router.get("/notifications", response_model=NotificationPage, responses=_ERRORS,
            tags=["notifications"])
async def notifications(hub: HubDep,
    claims: UserClaims, since: Annotated[int, Query(ge=0, le=MAX_SEQ)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> dict[str, Any]:
    """Unexpired notifications after ``since`` (a customer user: its own account's)."""
    docs = None
    if claims.role != Role.REP:
        assert claims.customer_id is not None
        docs = [customer_doc_id(claims.customer_id)]
    items = await asyncio.to_thread(hub.store.notifications_since, since, docs, limit + 1)
    more = len(items) > limit
    items = items[:limit]
    return {
        "items": [
            {"seq": n.seq, "customer_id": n.doc.partition(":")[2], "kind": n.kind.value,
             "actor": n.actor, "time": n.time, "fields": list(n.fields), "title": n.title}
            for n in items
        ],
        "latest": items[-1].seq if items else since,
        "more": more,
    }

@router.get("/healthz", tags=["server"])
async def healthz(hub: HubDep) -> dict[str, Any]:
    """Liveness: the server answers and its writer is healthy."""
    return {"status": "ok" if hub.store.failed is None else "degraded",
            "seq": hub.store.last_seq}




def install_http_api(app: FastAPI) -> None:
    """Add the routes and error handlers to the ASGI app (``app.state.hub`` is the hub)."""
    app.include_router(router)
    _install_error_handlers(app)


def _fields(body: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    try:
        return document.fields_from_json(body, partial=partial)
    except InvalidFieldValue as exc:
        raise InvalidInput(str(exc)) from exc


def _conflict(message: str) -> JSONResponse:
    return _error(409, "conflict", message)


def _install_error_handlers(app: FastAPI) -> None:
    async def on_server_error(_request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, TooManyAttempts):
            return _error(429, ErrorCode.RATE_LIMITED, str(exc),
                          {"Retry-After": str(max(1, round(exc.retry_after)))})
        if isinstance(exc, TokenExpired):
            return _error(401, ErrorCode.TOKEN_EXPIRED, str(exc), {"WWW-Authenticate": "Bearer"})
        if isinstance(exc, AccountDisabled):
            return _error(401, ErrorCode.ACCESS_REVOKED, str(exc))
        if isinstance(exc, AuthError):
            return _error(401, ErrorCode.AUTH_FAILED, str(exc), {"WWW-Authenticate": "Bearer"})
        if isinstance(exc, Forbidden):
            return _error(403, ErrorCode.FORBIDDEN, str(exc))
        if isinstance(exc, NotFound):
            return _error(404, ErrorCode.UNKNOWN_DOCUMENT, str(exc))
        if isinstance(exc, InvalidInput):
            return _error(422, ErrorCode.INVALID_VALUE, str(exc))
        return _error(500, ErrorCode.INTERNAL_ERROR, "internal error; see the server log")

    async def on_http_error(_request: Request, exc: Exception) -> JSONResponse:
        # Starlette/FastAPI's own errors (unknown route, wrong method, an unparsable body
        # for a model) in our {"error", "message"} shape, like every other error.
        assert isinstance(exc, StarletteHTTPException)
        code = {401: ErrorCode.AUTH_FAILED, 404: ErrorCode.UNKNOWN_DOCUMENT,
                413: ErrorCode.MESSAGE_TOO_BIG}.get(exc.status_code, ErrorCode.BAD_MESSAGE)
        return _error(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))

    async def on_validation(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        details = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
            for e in exc.errors()
        )
        return _error(422, ErrorCode.INVALID_VALUE, details or "invalid request")

    app.add_exception_handler(ServerError, on_server_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
