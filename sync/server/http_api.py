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
import logging
import re
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pycrdt import Doc
from starlette.exceptions import HTTPException as StarletteHTTPException

from sync.protocol import document
from sync.protocol.errors import ErrorCode, InvalidFieldValue
from sync.protocol.messages import customer_doc_id

from .auth import Claims, Role
from .errors import (
    AccountDisabled,
    AuthError,
    DatabaseError,
    Forbidden,
    InvalidInput,
    NotFound,
    ServerError,
    TokenExpired,
    TooManyAttempts,
    WriteForbidden,
)
from .http_models import (
    ErrorBody,
    History,
    LoginRequest,
    NotificationPage,
    RefreshRequest,
    TokenResponse,
    build_models,
)
from .hub import SyncHub, can_access
from .rooms import Room

__all__ = ["install_http_api"]

log = logging.getLogger(__name__)

_SESSION_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
MAX_BODY = 256 * 1024
#: Largest sequence number or cursor (SQLite INTEGER; larger ones overflowed into a 500).
MAX_SEQ = 2**63 - 1


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 413, 422, 429)
}


def _error(status: int, code: ErrorCode | str, message: str,
           headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": str(code), "message": message}, status, headers=headers)


def _customer_uuid(customer_id: str) -> str:
    """The canonical (lower-case) form of a customer id given in any letter case."""
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
    """The customer's JSON (seed-000 shape, every field of the table) and its version."""
    data = document.to_json(room.doc_id.partition(":")[2], room.doc)
    data["version"] = room.seq
    return data


async def commit(hub: SyncHub, room: Room, fn: Any, claims: Claims, session_id: str | None) -> None:
    """Make a server-side edit and wait until the hub has it durably stored."""
    change = room.edit(fn)
    if change is not None:
        _, future = hub.accept_change(room, change, claims.username, session_id)
        await future


async def json_body(request: Request) -> Any:
    """The request's JSON object, read with a size limit; InvalidInput otherwise."""
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


async def login(hub: HubDep, body: LoginRequest) -> dict[str, Any]:
    """Exchange a username and password for an access and a refresh token."""
    pair = await asyncio.to_thread(hub.auth.login, body.username, body.password)
    return pair.as_json()


async def refresh(hub: HubDep, body: RefreshRequest) -> dict[str, Any]:
    """Exchange a refresh token for new tokens (the old refresh token stops working)."""
    pair = await asyncio.to_thread(hub.auth.refresh, body.refresh_token)
    return pair.as_json()


async def logout(hub: HubDep, body: RefreshRequest) -> Response:
    """Revoke a refresh token and every token rotated from it."""
    await asyncio.to_thread(hub.auth.logout, body.refresh_token)
    return Response(status_code=204)


async def list_customers(hub: HubDep,
    claims: UserClaims, q: Annotated[str, Query(max_length=200)] = "",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """Search customers by name, e-mail, phone, city or zip (word prefixes)."""
    if claims.role != Role.REP:
        assert claims.customer_id is not None
        row = await hub.engine.directory_row(claims.customer_id)
        rows = [row] if row is not None and not row.deleted else []
    else:
        rows = await hub.engine.search(q, limit)
    items = []
    for row in rows:
        room = await hub.rooms.get(customer_doc_id(row.customer_id))
        items.append(represent(room))
    return {"items": items}


async def get_customer(hub: HubDep, customer_id: str, claims: UserClaims) -> dict[str, Any]:
    """One customer."""
    return represent(await room_for(hub, claims, customer_id))


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
    check_writable(claims, {k: v for k, v in values.items() if v is not None})
    room = await hub.rooms.get(customer_doc_id(cid))
    if room.exists:
        return _conflict(f"customer {cid} already exists")  # type: ignore[return-value]
    await commit(
        hub, room, lambda doc: document.set_fields(doc, values, author=claims.username),
        claims, session_id,
    )
    response.headers["Location"] = f"/customers/{cid}"
    return represent(room)


async def patch_customer(hub: HubDep, customer_id: str, request: Request, claims: UserClaims,
                         session_id: SessionHeader) -> dict[str, Any]:
    """Apply a JSON Merge Patch (RFC 7396); null sets a field to null.

    A field the caller's role may not write (the field table's ``writers``) refuses the
    whole patch with 403 ``write_forbidden`` naming it; nothing is kept.
    """
    room = await room_for(hub, claims, customer_id)
    values = _fields(await json_body(request), partial=True)
    check_writable(claims, values)
    await commit(
        hub, room, lambda doc: document.set_fields(doc, values, author=claims.username),
        claims, session_id,
    )
    return represent(room)


async def delete_customer(hub: HubDep, customer_id: str, claims: UserClaims,
                          session_id: SessionHeader) -> dict[str, Any]:
    """Delete a customer (a tombstone: restorable)."""
    if claims.role != Role.REP:
        raise Forbidden("only representatives delete customers")
    room = await room_for(hub, claims, customer_id)
    await commit(hub, room, lambda doc: document.set_deleted(doc, True), claims, session_id)
    return represent(room)


async def restore_customer(hub: HubDep, customer_id: str, claims: UserClaims,
                           session_id: SessionHeader) -> dict[str, Any]:
    """Undo a delete."""
    if claims.role != Role.REP:
        raise Forbidden("only representatives restore customers")
    room = await room_for(hub, claims, customer_id)
    await commit(hub, room, lambda doc: document.set_deleted(doc, False), claims, session_id)
    return represent(room)


async def history(hub: HubDep,
    customer_id: str, claims: UserClaims,
    before: Annotated[int | None, Query(ge=1, le=MAX_SEQ)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """A customer's versions, newest first: sequence number, time, author, changes."""
    room = await room_for(hub, claims, customer_id)
    entries = await hub.engine.history(room.doc_id, before=before, limit=limit)
    return {"items": [
        {"seq": e.seq, "time": e.time, "author": e.author, "changes": list(e.changes)}
        for e in entries
    ]}


async def version(hub: HubDep, customer_id: str, seq: int, claims: UserClaims) -> dict[str, Any]:
    """The customer as it was right after change ``seq``, with notes, tasks, comments."""
    room = await room_for(hub, claims, customer_id)
    if not 1 <= seq <= MAX_SEQ:
        raise NotFound(f"versions are numbered 1 to {MAX_SEQ}")
    parts = await hub.engine.updates_until(room.doc_id, seq)
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


async def directory(hub: HubDep,
    claims: UserClaims, cursor: Annotated[int, Query(ge=0, le=MAX_SEQ)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> dict[str, Any]:
    """Directory rows changed after ``cursor`` (replicate incrementally)."""
    only = None if claims.role == Role.REP else claims.customer_id
    rows = await hub.engine.directory_since(cursor, limit + 1, only)
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "entries": [
            {"id": r.customer_id, **r.fields, "updated_at": r.updated_at,
             "deleted": r.deleted, "cursor": r.cursor}
            for r in rows
        ],
        "cursor": rows[-1].cursor if rows else cursor,
        "more": more,
    }


async def notifications(hub: HubDep,
    claims: UserClaims, since: Annotated[int, Query(ge=0, le=MAX_SEQ)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> dict[str, Any]:
    """Unexpired notifications after ``since`` (a customer user: its own account's)."""
    docs = None
    if claims.role != Role.REP:
        assert claims.customer_id is not None
        docs = [customer_doc_id(claims.customer_id)]
    items = await hub.engine.notifications_since(since, docs, limit + 1)
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


async def healthz(hub: HubDep) -> dict[str, Any]:
    """Liveness: the server answers and its writer is healthy."""
    return {"status": "ok" if hub.engine.failed is None else "degraded",
            "seq": hub.last_seq}


def install_http_api(app: FastAPI) -> None:
    """Add the routes and error handlers to the ASGI app (``app.state.hub`` is the hub).

    The customer models come from the field table as it is now (:func:`build_models`).
    """
    models = build_models()
    router = APIRouter()

    def add(method: str, path: str, endpoint: Any, tag: str, model: Any = None, *,
            status_code: int | None = None) -> None:
        router.add_api_route(path, endpoint, methods=[method], response_model=model,
                             status_code=status_code, responses=_ERRORS, tags=[tag])

    add("POST", "/auth/login", login, "auth", TokenResponse)
    add("POST", "/auth/refresh", refresh, "auth", TokenResponse)
    add("POST", "/auth/logout", logout, "auth", status_code=204)
    add("GET", "/customers", list_customers, "customers", models.CustomerList)
    add("POST", "/customers", create_customer, "customers", models.Customer,
        status_code=201)
    add("GET", "/customers/{customer_id}", get_customer, "customers", models.Customer)
    add("PATCH", "/customers/{customer_id}", patch_customer, "customers", models.Customer)
    add("DELETE", "/customers/{customer_id}", delete_customer, "customers", models.Customer)
    add("POST", "/customers/{customer_id}/restore", restore_customer, "customers",
        models.Customer)
    add("GET", "/customers/{customer_id}/history", history, "history", History)
    add("GET", "/customers/{customer_id}/versions/{seq}", version, "history")
    add("GET", "/directory", directory, "directory", models.DirectoryPage)
    add("GET", "/notifications", notifications, "notifications", NotificationPage)
    add("GET", "/healthz", healthz, "server")
    app.include_router(router)
    _install_error_handlers(app)


def check_writable(claims: Claims, values: dict[str, Any]) -> None:
    """WriteForbidden naming the fields of ``values`` the caller's role may not write."""
    forbidden = document.forbidden_fields(values, claims.role)
    if forbidden:
        raise WriteForbidden(
            f"a {claims.role.value} account may not change {', '.join(forbidden)}; "
            "nothing was changed", forbidden,
        )


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
        if isinstance(exc, WriteForbidden):
            return JSONResponse({"error": str(ErrorCode.WRITE_FORBIDDEN), "message": str(exc),
                                 "fields": list(exc.fields)}, 403)
        if isinstance(exc, Forbidden):
            return _error(403, ErrorCode.FORBIDDEN, str(exc))
        if isinstance(exc, NotFound):
            return _error(404, ErrorCode.UNKNOWN_DOCUMENT, str(exc))
        if isinstance(exc, InvalidInput):
            return _error(422, ErrorCode.INVALID_VALUE, str(exc))
        if isinstance(exc, DatabaseError):  # e.g. Postgres unreachable: come back later
            log.error("request failed on the database: %s", exc)
            return _error(503, ErrorCode.SERVER_BUSY,
                          "the server cannot reach its database; try again shortly",
                          {"Retry-After": "2"})
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
