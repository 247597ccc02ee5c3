"""The Customer App: a web page served by the reference server (docs/protocol.md, "The
live channel" and "The Customer App").

Routes (none takes a token in its URL):

- ``GET /`` → ``/app/``; ``GET /app/`` the page; ``GET /app/{file}`` its ES modules, CSS
  and icon, shipped as package data in ``sync/server/web/`` (no build step, no CDN);
- ``POST /app/session`` sign in: the access token in the JSON body (the page keeps it in
  memory only), the refresh token in an ``HttpOnly; Secure; SameSite=Strict`` cookie whose
  ``Path`` is ``/app/session``, so the browser sends it to these three routes only;
  ``POST /app/session/refresh`` rotates it; ``POST /app/session/logout`` revokes it;
- ``POST /app/api/customers/{id}/fields`` the page's save: values plus the version of
  each field the customer edited, so a change that lost to a concurrent one is reported
  with both values instead of silently overwriting it;
- ``POST /app/api/customers/{id}/presence`` which field the customer is editing.

Every response of the page carries a strict Content-Security-Policy (no inline script or
style, no other origin). The session routes are CSRF-safe: ``SameSite=Strict`` plus a
custom request header (which a cross-site form cannot send, and a cross-site script only
after a CORS preflight that this server never grants) plus an ``Origin`` check.
"""

from __future__ import annotations

import asyncio
import logging
import re
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from sync.protocol import document, schema
from sync.protocol.errors import InvalidFieldValue

from .auth import Claims, TokenPair
from .errors import AuthError, Forbidden, InvalidInput, NotFound
from .events_stream import (
    bearer_claims,
    customer_state,
    room_for_claims,
    viewer_name,
)
from .hub import SyncHub

__all__ = ["install_web_app"]

log = logging.getLogger(__name__)

WEB_ROOT = "/app"
COOKIE = "liveedit_refresh"
COOKIE_PATH = f"{WEB_ROOT}/session"
#: The header every state-changing request of the page carries (CSRF, see module doc).
CSRF_HEADER = "x-liveedit-request"
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; font-src 'self'; manifest-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
_FILE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}\.(js|css|svg)$")
_SESSION_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


class SignIn(BaseModel):
    """Credentials for ``POST /app/session``."""

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class FieldEdit(BaseModel):
    """The page's save: new values, and the version of each field the edit started from."""

    values: dict[str, str | None] = Field(max_length=64)
    base: dict[str, str] = Field(default_factory=dict, max_length=64)


class EditingField(BaseModel):
    """The field the customer is editing now (None: none)."""

    field: str | None = Field(default=None, max_length=64)


def web_file(name: str) -> bytes:
    """One file of the page from the package data; NotFound for anything else."""
    if name != "index.html" and not _FILE_RE.match(name):
        raise NotFound(f"no file {name!r} in the Customer App")
    path = resources.files("sync.server").joinpath("web", name)
    try:
        return path.read_bytes()
    except (FileNotFoundError, IsADirectoryError) as exc:
        raise NotFound(f"no file {name!r} in the Customer App") from exc


def _static(name: str) -> Response:
    suffix = name[name.rfind("."):]
    cache = "no-store" if suffix == ".html" else "no-cache"
    return Response(web_file(name), media_type=_TYPES[suffix],
                    headers={**SECURITY_HEADERS, "Cache-Control": cache})


def _check_same_origin(request: Request) -> None:
    """CSRF defence of state-changing page routes (see the module docstring)."""
    if request.headers.get(CSRF_HEADER) != "1":
        raise Forbidden(f"this request must come from the Customer App ({CSRF_HEADER}: 1)")
    origin = request.headers.get("origin")
    host = request.headers.get("host", "")
    if origin is not None and origin.partition("://")[2] != host:
        raise Forbidden("cross-site request refused")
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in {"same-origin", "none"}:
        raise Forbidden("cross-site request refused")


def _token_response(request: Request, pair: TokenPair, claims: Claims) -> JSONResponse:
    body = {
        "access_token": pair.access_token, "token_type": "bearer",
        "expires_in": pair.expires_in, "user": claims.username, "role": str(claims.role),
        "customer_id": claims.customer_id,
    }
    response = JSONResponse(body, headers={"Cache-Control": "no-store"})
    response.set_cookie(
        COOKIE, pair.refresh_token, max_age=int(request.app.state.hub.config.refresh_token_ttl),
        path=COOKIE_PATH, secure=True, httponly=True, samesite="strict",
    )
    return response


def _clear_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE, path=COOKIE_PATH, secure=True, httponly=True,
                           samesite="strict")


router = APIRouter(include_in_schema=False)


@router.get("/")
async def root() -> RedirectResponse:
    """The server's front door leads to the Customer App."""
    return RedirectResponse(f"{WEB_ROOT}/", status_code=303)


@router.get(WEB_ROOT)
async def app_bare() -> RedirectResponse:
    """``/app`` → ``/app/`` (relative module paths need the slash)."""
    return RedirectResponse(f"{WEB_ROOT}/", status_code=308)


@router.get(f"{WEB_ROOT}/")
async def page() -> Response:
    """The Customer App's page."""
    return _static("index.html")


@router.get(WEB_ROOT + "/{name}")
async def static_file(name: str) -> Response:
    """A module, stylesheet or icon of the page."""
    return _static(name)


@router.post(f"{WEB_ROOT}/session")
async def sign_in(request: Request, body: SignIn) -> JSONResponse:
    """Sign in: access token in the body, refresh token in the HttpOnly cookie."""
    _check_same_origin(request)
    hub: SyncHub = request.app.state.hub
    pair = await asyncio.to_thread(hub.auth.login, body.username, body.password)
    claims = await asyncio.to_thread(hub.auth.verify_access, pair.access_token)
    return _token_response(request, pair, claims)


@router.post(f"{WEB_ROOT}/session/refresh")
async def refresh(request: Request) -> Response:
    """A new access token from the refresh cookie (which rotates)."""
    _check_same_origin(request)
    token = request.cookies.get(COOKIE)
    if not token:
        raise AuthError("not signed in")
    hub: SyncHub = request.app.state.hub
    try:
        pair = await asyncio.to_thread(hub.auth.refresh, token)
    except AuthError as exc:
        response = JSONResponse({"error": "auth_failed", "message": str(exc)}, status_code=401)
        _clear_cookie(response)
        return response
    claims = await asyncio.to_thread(hub.auth.verify_access, pair.access_token)
    return _token_response(request, pair, claims)


@router.post(f"{WEB_ROOT}/session/logout")
async def sign_out(request: Request) -> Response:
    """Revoke the refresh token (and its whole family) and drop the cookie."""
    _check_same_origin(request)
    token = request.cookies.get(COOKIE)
    hub: SyncHub = request.app.state.hub
    if token:
        try:
            await asyncio.to_thread(hub.auth.logout, token)
        except AuthError as exc:  # already revoked or unknown: signed out all the same
            log.info("sign-out with a refresh token the server does not know: %s", exc)
    response = Response(status_code=204)
    _clear_cookie(response)
    return response


def _session_header(value: str | None) -> str | None:
    if value is not None and not _SESSION_RE.match(value):
        raise InvalidInput("X-Session-Id must be 8-64 characters of A-Z a-z 0-9 _ -")
    return value


@router.post(WEB_ROOT + "/api/customers/{customer_id}/fields")
async def save_fields(
    request: Request, customer_id: str, body: FieldEdit,
    x_session_id: Annotated[str | None, Header(max_length=64)] = None,
) -> Response:
    """Save the customer's edits. A field whose version moved on since ``base`` (someone
    else changed it meanwhile) is not written: it comes back in ``lost`` with both values.
    """
    _check_same_origin(request)
    hub: SyncHub = request.app.state.hub
    claims = await bearer_claims(request)
    session_id = _session_header(x_session_id)
    room = await room_for_claims(hub, claims, customer_id)
    forbidden = sorted(set(body.values) - schema.writable_by(claims.role))
    unknown = [n for n in forbidden if n not in schema.field_names()]
    if unknown:
        raise InvalidInput(f"unknown field {unknown[0]!r}; known fields: "
                           f"{', '.join(schema.field_names())}")
    if forbidden:
        names = ", ".join(schema.label(n) for n in forbidden)
        return JSONResponse({"error": "write_forbidden", "fields": forbidden,
                             "message": f"you may not change {names}; ask support"},
                            status_code=403)
    try:
        values = {n: schema.validate(n, v) for n, v in body.values.items()}
    except InvalidFieldValue as exc:
        raise InvalidInput(str(exc)) from exc
    # From here to accept_change nothing awaits: the check and the write are one step.
    lost, write = [], {}
    for name, value in values.items():
        stamp = document.read_stamp(room.doc, name)
        current = document.read_field(room.doc, name)
        base = body.base.get(name)
        if base is not None and (stamp.version if stamp else "") != base and current != value:
            lost.append({"field": name, "label": schema.label(name), "yours": value,
                         "theirs": current,
                         "by": "support" if stamp and stamp.author != claims.username
                         else "you"})
        else:
            write[name] = value
    if write:
        change = room.edit(
            lambda doc: document.set_fields(doc, write, author=claims.username)
        )
        if change is not None:
            _, durable = hub.accept_change(room, change, claims.username, session_id)
            await durable
    state = customer_state(room, claims)
    return JSONResponse({"state": state, "saved": sorted(write), "lost": lost})


@router.post(WEB_ROOT + "/api/customers/{customer_id}/presence")
async def editing(
    request: Request, customer_id: str, body: EditingField,
    x_session_id: Annotated[str | None, Header(max_length=64)] = None,
) -> Response:
    """Tell the others on the account which field this page's customer is editing."""
    _check_same_origin(request)
    hub: SyncHub = request.app.state.hub
    claims = await bearer_claims(request)
    room = await room_for_claims(hub, claims, customer_id)
    session = hub.sessions.get(_session_header(x_session_id) or "")
    if (session is None or session.username != claims.username or session.connection is None
            or room.doc_id not in session.subscriptions):
        raise InvalidInput("open the account's event stream with this X-Session-Id first")
    if body.field is not None and body.field not in schema.field_names():
        raise InvalidInput(f"unknown field {body.field!r}")
    state: dict[str, Any] = {"name": viewer_name(room, claims), "app": "web"}
    if body.field is not None:
        state["field"] = body.field
    hub.set_presence(room, session, state)
    return Response(status_code=204)


def install_web_app(app: Any) -> None:
    """Add the Customer App's routes to the ASGI app."""
    app.include_router(router)
