"""The live channel over plain HTTP: Server-Sent Events of one customer, or of the directory.

``GET /customers/{id}/events`` streams one customer's account as it changes (docs/protocol.md,
"The live channel (Server-Sent Events)"); ``GET /directory/events`` streams directory rows
(every customer for a rep, its own for a customer user). Both take the access token in the
``Authorization`` header (never in the URL), check it like every route (``can_access``), and
resume after a drop from ``Last-Event-ID`` (a global sequence number, durable).

There is no second change pipeline: a stream is one more :class:`~sync.server.rooms.Subscriber`
of the hub. It is attached to a hub session (``X-Session-Id``, so the page's own HTTP writes
with that id are not echoed back, docs/protocol.md §5), subscribed to the room, and receives
the same encoded frames as a ``/ws`` connection: ``RemoteUpdate`` (sent out as a ``change``
event once a write barrier says it is durable), ``Notification`` (``activity``),
``PresenceChanged`` (``presence``) and ``DirectoryChanges`` (``directory``). Its presence on
the document is the stream itself: a rep's desktop shows "Carol (customer, web)" while the
page is open.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from sync.protocol import document, schema
from sync.protocol.errors import MalformedMessage
from sync.protocol.messages import (
    DirectoryChanges,
    Message,
    Notification,
    NotificationKind,
    PresenceChanged,
    RemoteUpdate,
    customer_doc_id,
    decode,
)

from .auth import Claims, Role
from .errors import AuthError, Forbidden, InvalidInput, NotFound
from .hub import Session, SyncHub, can_access
from .rooms import Room

__all__ = [
    "EventStream",
    "activity_item",
    "bearer_claims",
    "customer_state",
    "install_event_streams",
    "room_for_claims",
]

log = logging.getLogger(__name__)

#: A comment line this often keeps proxies and the page's stall detector content.
HEARTBEAT_SECONDS = 15.0
#: The page waits this long before reconnecting after a drop (the SSE ``retry`` field).
RETRY_MS = 2000
#: A stream whose client reads slower than this many queued frames is closed (it resumes).
MAX_QUEUED_FRAMES = 10_000
#: How many recent activity items a (re)opened stream starts with.
RECENT_ACTIVITY = 20
#: Directory rows per ``directory`` event when catching up.
DIRECTORY_PAGE = 500
_SESSION_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_MAX_SEQ = 2**63 - 1
_SSE_CONTENT = {"text/event-stream": {"schema": {"type": "string"}}}
_ERROR_CONTENT = {"application/json": {"schema": {
    "type": "object", "required": ["error", "message"],
    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
}}}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "an event stream (text/event-stream)", "content": _SSE_CONTENT},
    **{code: {"description": what, "content": _ERROR_CONTENT} for code, what in (
        (401, "missing, bad or expired access token"),
        (403, "not allowed to see this customer"),
        (404, "no such customer"),
        (422, "invalid header or parameter"),
    )},
}


async def bearer_claims(request: Request) -> Claims:
    """The verified claims of ``Authorization: Bearer …`` (checked off the event loop)."""
    authorization = request.headers.get("authorization", "")
    if not authorization.lower().startswith("bearer "):
        raise AuthError("send 'Authorization: Bearer <access token>' (from /auth/login)")
    hub: SyncHub = request.app.state.hub
    return await asyncio.to_thread(hub.auth.verify_access, authorization[7:].strip())


def canonical_customer_id(customer_id: str) -> str:
    """The customer id as the server stores it (a lower-case UUID), or NotFound."""
    try:
        return str(uuid.UUID(customer_id))
    except ValueError as exc:
        raise NotFound(f"no customer {customer_id!r}: customer ids are UUIDs") from exc


async def room_for_claims(hub: SyncHub, claims: Claims, customer_id: str) -> Room:
    """The customer's room after the permission check (Forbidden / NotFound otherwise)."""
    cid = canonical_customer_id(customer_id)
    doc_id = customer_doc_id(cid)
    if not can_access(claims, doc_id):
        raise Forbidden("you may only see your own account")
    room = await hub.rooms.get(doc_id)
    if not room.exists:
        raise NotFound(f"no customer {cid}")
    return room


def _who(claims: Claims, actor: str) -> str:
    """How a viewer is told who did something: customers see "you" or "support"."""
    if actor == claims.username:
        return "you"
    return actor if claims.role == Role.REP else "support"


def customer_state(room: Room, claims: Claims) -> dict[str, Any]:
    """The account as the page shows it: every field of the table with its label, group,
    value, whether this viewer may write it, and its version stamp (for lost-change
    detection, docs/protocol.md "The live channel"); for a rep also the case notes."""
    writable = schema.writable_by(claims.role)
    rows = []
    for f in schema.fields():
        stamp = document.read_stamp(room.doc, f.name)
        rows.append({
            "name": f.name, "label": f.label, "group": f.group, "max_length": f.max_length,
            "choices": list(f.choices) if f.choices else None,
            "writable": f.name in writable, "value": document.read_field(room.doc, f.name),
            "version": stamp.version if stamp else "",
            "by": _who(claims, stamp.author) if stamp and stamp.author else None,
            "at": stamp.time if stamp else None,
        })
    state: dict[str, Any] = {
        "id": room.doc_id.partition(":")[2], "version": room.seq, "deleted": room.deleted,
        "fields": rows,
    }
    if claims.role == Role.REP:  # the case notes are support's, not the customer's
        state["notes"] = document.read_notes(room.doc)
    return state


def activity_item(notification: Notification, claims: Claims) -> dict[str, Any]:
    """One activity entry: what happened, to which fields (labels and groups), by whom."""
    return {
        "seq": notification.seq, "kind": notification.kind.value,
        "by": _who(claims, notification.actor), "time": notification.time,
        "fields": [{"name": n, "label": schema.label(n), "group": _group(n)}
                   for n in notification.fields],
    }


def _group(name: str) -> str | None:
    for f in schema.fields():
        if f.name == name:
            return f.group
    return None


def _event(kind: str, data: Any, event_id: int | None = None) -> bytes:
    """One SSE event; ``data`` is JSON on one line (no newline can end the event early)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return f"{head}event: {kind}\ndata: {body}\n\n".encode()


class EventStream:
    """One open event stream: a hub subscriber that queues frames for the response body.

    ``post`` is called by the hub on the event loop and never waits; the response
    generator drains the queue. A stream that falls :data:`MAX_QUEUED_FRAMES` behind is
    ended (its client resumes from its last event id).
    """

    def __init__(self, hub: SyncHub, claims: Claims, session_id: str) -> None:
        self.hub = hub
        self.claims = claims
        self._session_id = session_id
        self._frames: deque[bytes] = deque()
        self._wake = asyncio.Event()
        self.closed = False

    @property
    def session_id(self) -> str:
        """The hub session this stream serves (the page's ``X-Session-Id``)."""
        return self._session_id

    @property
    def username(self) -> str:
        """The signed-in user."""
        return self.claims.username

    def post(self, frame: bytes) -> None:
        """Queue one encoded frame (the hub's fan-out path); never waits."""
        if self.closed:
            return
        if len(self._frames) >= MAX_QUEUED_FRAMES:
            log.info("event stream of %s fell behind; ending it (the client resumes)",
                     self.username)
            self.close()
            return
        self._frames.append(frame)
        self._wake.set()

    def close(self) -> None:
        """End the stream (its client reconnects and resumes)."""
        self.closed = True
        self._wake.set()

    def close_for_resync(self) -> None:
        """The room was dropped after a failed write: end the stream; a resume reloads."""
        self.close()

    async def next_messages(self, wait: float) -> list[Message]:
        """The frames queued so far, decoded; waits up to ``wait`` seconds for the first."""
        if not self._frames and not self.closed:
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
            except TimeoutError:
                return []
        out: list[Message] = []
        while self._frames:
            frame = self._frames.popleft()
            try:
                out.append(decode(frame))
            except MalformedMessage:  # our own frames: cannot happen, but never hide it
                log.exception("event stream could not decode a hub frame")
        return out


def _session_id(value: str | None) -> str:
    if value is None:
        return "sse-" + uuid.uuid4().hex
    if not _SESSION_RE.match(value):
        raise InvalidInput("X-Session-Id must be 8-64 characters of A-Z a-z 0-9 _ -")
    return value


def _last_event_id(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    if not value.isdigit() or int(value) > _MAX_SEQ:
        raise InvalidInput("Last-Event-ID must be a sequence number from this stream")
    return int(value)


def _attach(hub: SyncHub, claims: Claims, stream: EventStream) -> Session:
    """Bind the stream to its hub session; a stream still open for it is ended."""
    session, _resumed, replaced = hub.attach(stream.session_id, claims, stream)
    if replaced is not None and replaced is not stream:
        closer = getattr(replaced, "close", None)
        if callable(closer):
            closer()
    return session


def viewer_name(room: Room, claims: Claims) -> str:
    """How others see this page's viewer: "Carol Diaz (customer, web)" / "sam (web)"."""
    if claims.role == Role.CUSTOMER:  # presence strings are at most 256 characters (§4)
        return f"{(room.name or claims.username)[:200]} (customer, web)"
    return f"{claims.username} (web)"


def presence_view(hub: SyncHub, room: Room, claims: Claims, own: str) -> dict[str, Any]:
    """Who else is on the account now. A customer learns that support is there (and which
    field they edit), not who; a rep sees names."""
    viewers = []
    for session_id, (user, state) in room.presence.items():
        if session_id == own:
            continue
        session = hub.sessions.get(session_id)
        support = session is not None and session.claims.role == Role.REP
        field = state.get("field") if isinstance(state, dict) else None
        entry: dict[str, Any] = {
            "support": support,
            "web": bool(state.get("app") == "web") if isinstance(state, dict) else False,
            "field": field if isinstance(field, str) else None,
            "field_label": schema.label(field) if isinstance(field, str) else None,
        }
        if claims.role == Role.REP:
            name = state.get("name") if isinstance(state, dict) else None
            entry["name"] = str(name or user)
        viewers.append(entry)
    return {"viewers": viewers}


async def _opening(
    hub: SyncHub, claims: Claims, room: Room, own_session: str, last_id: int | None,
) -> AsyncIterator[bytes]:
    """What every (re)opened stream starts with: the whole account (with the fields
    changed since ``last_id``), recent activity, who else is there."""
    yield f"retry: {RETRY_MS}\n\n".encode()
    mark = room.seq
    await hub.barrier()  # the room's changes up to ``mark`` are durable now
    state = customer_state(room, claims)
    # A change after ``mark`` may be in the state already; it also comes as a ``change``.
    durable = min(room.seq, mark)
    if last_id is not None and last_id < durable:
        entries = await hub.engine.history(room.doc_id, limit=200)
        state["missed"] = sorted({c for e in entries if e.seq > last_id for c in e.changes})
    yield _event("state", state, durable)
    recent = await hub.engine.notifications_since(0, [room.doc_id], 5000)
    items = [activity_item(n, claims) for n in recent
             if n.kind not in (NotificationKind.JOINED, NotificationKind.LEFT)]
    yield _event("activity", {"items": items[-RECENT_ACTIVITY:], "replace": True})
    yield _event("presence", presence_view(hub, room, claims, own_session))


async def _customer_events(
    hub: SyncHub, request: Request, claims: Claims, room: Room, stream: EventStream, *,
    last_id: int | None, poll: bool,
) -> AsyncIterator[bytes]:
    if poll:  # one look, then the response ends (a proxy that buffers still delivers it)
        async for chunk in _opening(hub, claims, room, stream.session_id, last_id):
            yield chunk
        return
    session = _attach(hub, claims, stream)
    room = await hub.subscribe(session, room.doc_id)
    hub.set_presence(room, session, {"name": viewer_name(room, claims), "app": "web"})
    try:
        async for chunk in _opening(hub, claims, room, stream.session_id, last_id):
            yield chunk
        async for chunk in _pump(hub, request, claims, room, stream):
            yield chunk
    finally:
        stream.close()
        if session.connection is stream:
            hub.detach(session)


async def _batches(
    hub: SyncHub, request: Request, claims: Claims, stream: EventStream,
) -> AsyncIterator[bytes | list[Message]]:
    """The hub's frames for a stream, batch by batch, until the token expires, the account
    loses access or the client goes. Keep-alives and the ending event (``expired``,
    ``revoked``) come as ready-made bytes, to be sent as they are."""
    while not stream.closed:
        left = claims.expires_at - time.time()
        if left <= 0:
            yield _event("expired", {"message": "access token expired; refresh and resume"})
            return
        messages = await stream.next_messages(min(HEARTBEAT_SECONDS, left))
        if messages:
            yield messages
            continue
        if await request.is_disconnected():
            return
        why = await _revoked(hub, claims)
        if why is not None:
            yield _event("revoked", {"message": why})
            return
        yield b": keep-alive\n\n"


async def _pump(
    hub: SyncHub, request: Request, claims: Claims, room: Room, stream: EventStream,
) -> AsyncIterator[bytes]:
    """Turn hub frames into events until the token expires or the client goes."""
    async for batch in _batches(hub, request, claims, stream):
        if isinstance(batch, bytes):
            yield batch
            continue
        changed_seq, authors, presence = 0, [], False
        for message in batch:
            if isinstance(message, RemoteUpdate):
                changed_seq = max(changed_seq, message.seq)
                authors.append(_who(claims, message.author))
            elif isinstance(message, Notification):
                if message.kind not in (NotificationKind.JOINED, NotificationKind.LEFT):
                    yield _event("activity", {"items": [activity_item(message, claims)]})
            elif isinstance(message, PresenceChanged):
                presence = True
        if changed_seq:
            # Ids are durable sequence numbers: a resume "since N" never skips a change
            # that a crash took back (docs/protocol.md, "The live channel").
            try:
                await hub.barrier()
            except Exception as exc:  # the writer failed: the room is dropped (hub.py)
                log.warning("event stream of %s ends: the change was not stored (%s)",
                            claims.username, exc)
                return  # the client resumes and reloads what is really stored
            state = customer_state(room, claims)
            state["by"] = sorted(set(authors))
            yield _event("change", state, changed_seq)
        if presence:
            yield _event("presence", presence_view(hub, room, claims, stream.session_id))


async def _revoked(hub: SyncHub, claims: Claims) -> str | None:
    """Why the stream's account lost access since it opened (checked at every keep-alive,
    like the sweeper's check of /ws connections), or None."""
    account = await asyncio.to_thread(hub.auth.get_user, claims.username)
    if account is None or account.disabled:
        return "your account was disabled"
    if account.token_version != claims.token_version:
        return "your account changed; sign in again"
    return None


async def _directory_events(
    hub: SyncHub, request: Request, claims: Claims, stream: EventStream, cursor: int,
) -> AsyncIterator[bytes]:
    session = _attach(hub, claims, stream)
    session.directory = True
    only = None if claims.role == Role.REP else claims.customer_id
    try:
        yield f"retry: {RETRY_MS}\n\n".encode()
        while True:  # catch up from the cursor, then follow live changes
            rows = await hub.engine.directory_since(cursor, DIRECTORY_PAGE + 1, only)
            more = len(rows) > DIRECTORY_PAGE
            rows = rows[:DIRECTORY_PAGE]
            if rows:
                cursor = rows[-1].cursor
                yield _event("directory", {"entries": [_directory_entry(r.entry())
                                                       for r in rows], "more": more}, cursor)
            if not more:
                break
        yield _event("ready", {"cursor": cursor})
        async for batch in _batches(hub, request, claims, stream):
            if isinstance(batch, bytes):
                yield batch
                continue
            for message in batch:
                if isinstance(message, DirectoryChanges) and message.cursor > cursor:
                    cursor = message.cursor
                    yield _event("directory", {"entries": [
                        _directory_entry(e) for e in message.entries
                    ], "more": False}, cursor)
    finally:
        stream.close()
        if session.connection is stream:
            session.directory = False
            hub.detach(session)


def _directory_entry(entry: Any) -> dict[str, Any]:
    return {"id": entry.customer_id, **dict(entry.fields), "updated_at": entry.updated_at,
            "deleted": entry.deleted, "cursor": entry.cursor}


_STREAM_HEADERS = {
    "Cache-Control": "no-store",
    # nginx and friends: do not buffer this response (docs/protocol.md, "The live channel").
    "X-Accel-Buffering": "no",
}

router = APIRouter(tags=["live"])


@router.get("/customers/{customer_id}/events", responses=_RESPONSES,
            response_class=StreamingResponse)
async def customer_events(
    request: Request, customer_id: str,
    poll: Annotated[bool, Query(description="answer the opening events, then end")] = False,
    last_event_id: Annotated[str | None, Header(max_length=20)] = None,
    x_session_id: Annotated[str | None, Header(max_length=64)] = None,
) -> StreamingResponse:
    """Server-Sent Events of one customer: ``state`` first, then ``change`` (id = the
    change's durable sequence number; data = the whole account with per-field versions),
    ``activity``, ``presence``, and ``expired`` when the access token runs out (``revoked``
    when the account is disabled or changed). Resume with
    ``Last-Event-ID``. Send ``X-Session-Id`` to get no echo of your own HTTP writes.
    ``poll=true`` (for networks that buffer streams): the opening events, then the end."""
    hub: SyncHub = request.app.state.hub
    claims = await bearer_claims(request)
    last_id = _last_event_id(last_event_id)
    stream = EventStream(hub, claims, _session_id(x_session_id))
    room = await room_for_claims(hub, claims, customer_id)
    return StreamingResponse(
        _customer_events(hub, request, claims, room, stream, last_id=last_id, poll=poll),
        media_type="text/event-stream", headers=_STREAM_HEADERS,
    )


@router.get("/directory/events", responses=_RESPONSES, response_class=StreamingResponse)
async def directory_events(
    request: Request,
    cursor: Annotated[int, Query(ge=0, le=_MAX_SEQ)] = 0,
    last_event_id: Annotated[str | None, Header(max_length=20)] = None,
    x_session_id: Annotated[str | None, Header(max_length=64)] = None,
) -> StreamingResponse:
    """Server-Sent Events of the directory (a rep: every customer; a customer user: its
    own row): ``directory`` events with rows changed after ``cursor`` (or
    ``Last-Event-ID``, which wins), then ``ready``, then live changes as they commit."""
    hub: SyncHub = request.app.state.hub
    claims = await bearer_claims(request)
    last_id = _last_event_id(last_event_id)
    stream = EventStream(hub, claims, _session_id(x_session_id))
    return StreamingResponse(
        _directory_events(hub, request, claims, stream, cursor if last_id is None else last_id),
        media_type="text/event-stream", headers=_STREAM_HEADERS,
    )


def install_event_streams(app: Any) -> None:
    """Add the live-channel routes to the ASGI app (``app.state.hub`` is the hub)."""
    app.include_router(router)
