"""One WebSocket connection at ``/ws``: the asyncio driver around ``ServerProtocol``.

Receives frames, feeds them to the sans-I/O protocol, acts on its events through the hub,
and sends what the protocol queues. Sending, closing and the receive loop are shared with
the Yjs endpoint (``peer.py``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from starlette.websockets import WebSocket

from sync.protocol.connection import ProtocolFailure, ServerProtocol, State
from sync.protocol.errors import CloseCode, ErrorCode
from sync.protocol.messages import (
    DIRECTORY_FEED,
    PROTOCOL_VERSION,
    Ack,
    Authenticate,
    DirectoryChanges,
    DirectoryPage,
    DirectoryRows,
    DirectorySubscribe,
    Error,
    Heartbeat,
    HeartbeatAck,
    Message,
    Notifications,
    Presence,
    PresenceChanged,
    ReadNotifications,
    RenewToken,
    Subscribe,
    Subscribed,
    SyncStep1,
    SyncStep2,
    TokenRenewed,
    Unsubscribe,
    Update,
    Welcome,
)

from .auth import Claims, Role
from .errors import AccountDisabled, AuthError, TokenExpired
from .hub import Session, SyncHub, can_access, not_acked
from .peer import WebSocketPeer
from .rooms import InvalidUpdate, MissingDependencies
from .write_rules import WriteRefused

__all__ = ["Connection"]

log = logging.getLogger(__name__)
#: Longest Error.message a decoder accepts (messages.Error.SCHEMA).
_MAX_ERROR_TEXT = 1000


class Connection(WebSocketPeer):
    """The server side of one client connection."""

    __slots__ = ("_auth_task", "_turn", "protocol", "session")

    def __init__(self, hub: SyncHub, websocket: WebSocket) -> None:
        super().__init__(hub, websocket)
        config = hub.config
        self.protocol = ServerProtocol(config.max_message_size, config.max_pending_before_auth)
        self.session: Session | None = None
        #: The Authenticate being verified in a worker thread (a database read). The receive
        #: loop goes on meanwhile: ServerProtocol holds what arrives (at most
        #: max_pending_before_auth, then 4008) until accept() releases it, in order.
        self._auth_task: asyncio.Task[None] | None = None
        #: Whoever dispatches events holds this: the receive loop, or the authentication
        #: task while it accepts and dispatches the held messages.
        self._turn = asyncio.Lock()

    # Subscriber protocol (rooms.py) ----------------------------------------------------

    @property
    def session_id(self) -> str:
        """The bound session's id ('' before authentication)."""
        return self.session.session_id if self.session else ""

    @property
    def username(self) -> str:
        """The authenticated user ('' before authentication)."""
        return self.claims.username if self.claims else ""

    # WebSocketPeer hooks -------------------------------------------------------------------

    def on_closing(self, code: int, reason: str) -> None:
        self.protocol.close(CloseCode(code), reason)

    def on_text_frame(self) -> None:
        self._fail(ErrorCode.BAD_MESSAGE, "frames must be binary", CloseCode.BAD_MESSAGE)

    def on_rate_limited(self) -> None:
        self._fail(ErrorCode.RATE_LIMITED, "too many messages; slow down", CloseCode.RATE_LIMITED)

    async def on_frame(self, data: bytes) -> None:
        self.protocol.receive_data(data)
        auth = self._auth_task
        if auth is not None and not auth.done() and self.protocol.state is State.AUTHENTICATING:
            return  # held by ServerProtocol until the token is verified
        async with self._turn:
            await self._handle_events()

    def on_closed(self) -> None:
        if self.session is not None and self.session.connection is self:
            self.hub.detach(self.session)

    def _fail(self, code: ErrorCode, message: str, close_code: CloseCode) -> None:
        if self.protocol.state is not State.CLOSED:
            self.protocol.fail(code, message, close_code)
        self._flush()
        self.close(close_code, message)

    def _flush(self) -> None:
        for frame in self.protocol.data_to_send():
            super().post(frame)

    def _send(self, message: Message) -> None:
        """Send one message through ``ServerProtocol.send`` (state and direction checks)."""
        if self.protocol.state is State.OPEN:
            self.protocol.send(message)
            self._flush()

    def post(self, frame: bytes) -> None:
        """Fan-out (Subscriber protocol): a frame encoded once for many connections, through
        ``ServerProtocol.send_encoded``. Dropped once the connection is closing."""
        if self.protocol.state is State.OPEN:
            self.protocol.send_encoded(frame)
            self._flush()

    def _error(self, code: ErrorCode, message: str, *, ref: int | None = None,
               doc: str | None = None) -> None:
        self._send(Error(code, message[:_MAX_ERROR_TEXT], ref, doc))

    async def _handle_events(self) -> None:
        while events := self.protocol.events_received():
            for event in events:
                if isinstance(event, ProtocolFailure):
                    self.log.info("closing %s: %s", self.peer, event.message)
                    self._flush()
                    self.close(event.close_code, event.message)
                    return
                await self._dispatch(event)
        self._flush()

    async def _dispatch(self, message: Message) -> None:
        handler = _HANDLERS.get(type(message))
        if handler is None:
            return
        try:
            await handler(self, message)
        except Exception:
            # A bug of ours, not the peer's: log it loudly, close with the documented 1011
            # (docs/protocol.md §8) and keep serving everyone else.
            self.log.exception("handling %s from %s failed", type(message).__name__, self.peer)
            self._fail(ErrorCode.INTERNAL_ERROR, "internal error; reconnect",
                       CloseCode.INTERNAL_ERROR)

    # Handlers -------------------------------------------------------------------------------

    def _claims_or_reject(self, outcome: Claims | AuthError) -> Claims | None:
        """The claims of a verified token; otherwise refuse the connection and None."""
        if isinstance(outcome, TokenExpired):
            self._reject(ErrorCode.TOKEN_EXPIRED, str(outcome), CloseCode.TOKEN_EXPIRED)
        elif isinstance(outcome, AccountDisabled):
            self._reject(ErrorCode.ACCESS_REVOKED, str(outcome), CloseCode.ACCESS_REVOKED)
        elif isinstance(outcome, AuthError):
            self._reject(ErrorCode.AUTH_FAILED, str(outcome), CloseCode.AUTH_FAILED)
        else:
            return outcome
        return None

    def _reject(self, code: ErrorCode, message: str, close_code: CloseCode) -> None:
        if self.protocol.state is State.AUTHENTICATING:
            self.protocol.reject(code, message, close_code)
            self._flush()
            self.close(close_code, message)
        else:
            self._fail(code, message, close_code)

    async def _on_authenticate(self, message: Authenticate) -> None:
        # Not awaited: the receive loop keeps reading while the token is checked (see
        # _auth_task); _authenticate takes the turn once the check is done.
        self._auth_task = asyncio.get_running_loop().create_task(self._authenticate(message))

    async def _authenticate(self, message: Authenticate) -> None:
        try:
            outcome = await self._check_token(message.token)
            async with self._turn:
                if self._closing or self.protocol.state is not State.AUTHENTICATING:
                    return  # closed meanwhile: auth deadline, too many held messages, shutdown
                claims = self._claims_or_reject(outcome)
                if claims is not None:
                    await self._open(message, claims)
                    await self._handle_events()  # what ServerProtocol held meanwhile, in order
        except Exception:
            self.log.exception("authenticating %s failed", self.peer)
            self._fail(ErrorCode.INTERNAL_ERROR, "internal error; reconnect",
                       CloseCode.INTERNAL_ERROR)

    async def _open(self, message: Authenticate, claims: Claims) -> None:
        """The token is good: bind the session, send Welcome, resume subscriptions."""
        self.claims = claims
        self.token_expires_at = claims.expires_at
        await self.hub.claim(message.session_id, claims)  # several nodes: the shared table
        session, resumed, replaced = self.hub.attach(message.session_id, claims, self)
        if isinstance(replaced, Connection) and replaced is not self:
            replaced.close(CloseCode.SESSION_REPLACED, "this session reconnected elsewhere")
        self.session = session
        self.log = logging.LoggerAdapter(log, {"peer": self.peer, "session": session.session_id})
        config = self.hub.config
        subscriptions = tuple(sorted(session.subscriptions))
        if session.directory:
            subscriptions += (DIRECTORY_FEED,)
        self.protocol.accept(Welcome(
            version=self.protocol.version or PROTOCOL_VERSION, session_id=session.session_id,
            user=claims.username, role=str(claims.role), customer_id=claims.customer_id,
            resumed=resumed, subscriptions=subscriptions, token_expires_at=claims.expires_at,
            heartbeat_interval=config.heartbeat_interval,
            max_message_size=config.max_message_size,
            max_subscriptions=config.max_subscriptions, server_time=time.time(),
        ))
        self._flush()
        if resumed:
            for doc_id in session.subscriptions:
                room = await self.hub.subscribe(session, doc_id)
                self._send_presence_snapshot(room)
        self.log.info("%s authenticated as %s (%s)", self.peer, claims.username,
                      "resumed" if resumed else "new session")

    async def _on_renew(self, message: RenewToken) -> None:
        claims = self._claims_or_reject(await self._check_token(message.token))
        if claims is None:
            return
        if self.claims is None or claims.username != self.claims.username:
            self._fail(ErrorCode.AUTH_FAILED, "a renewed token must be for the same user",
                       CloseCode.AUTH_FAILED)
            return
        if (claims.role, claims.customer_id) != (self.claims.role, self.claims.customer_id):
            # The account's access changed: its subscriptions were checked against the old
            # role. Same rule as the sweeper's revocation (docs/protocol.md §7).
            self._fail(ErrorCode.ACCESS_REVOKED, "your access changed; sign in again",
                       CloseCode.ACCESS_REVOKED)
            return
        self.claims = claims
        if self.session is not None:
            self.session.claims = claims
        self.token_expires_at = claims.expires_at
        self._send(TokenRenewed(claims.expires_at))

    async def _on_subscribe(self, message: Subscribe) -> None:
        session, claims = self._require()
        accepted: list[str] = []
        for doc_id in message.docs:
            if doc_id == DIRECTORY_FEED:
                if not session.directory:
                    session.directory = True
                    self.hub.session_changed(session)
                accepted.append(doc_id)
                continue
            if not can_access(claims, doc_id):
                self._error(ErrorCode.FORBIDDEN, "you may not open this customer", doc=doc_id)
                continue
            if (doc_id not in session.subscriptions
                    and len(session.subscriptions) >= self.hub.config.max_subscriptions):
                self._error(
                    ErrorCode.TOO_MANY_SUBSCRIPTIONS,
                    f"at most {self.hub.config.max_subscriptions} documents per connection",
                    doc=doc_id,
                )
                continue
            accepted.append(doc_id)
        rooms = [await self.hub.subscribe(session, d) for d in accepted if d != DIRECTORY_FEED]
        if accepted:
            self._send(Subscribed(tuple(accepted)))
        for room in rooms:
            self._send(SyncStep1(room.doc_id, room.doc.get_state()))
            self._send_presence_snapshot(room)

    def _send_presence_snapshot(self, room: Any) -> None:
        for session_id, (user, state) in room.presence.items():
            if session_id != self.session_id:
                self._send(PresenceChanged(room.doc_id, session_id, user, state))

    async def _on_unsubscribe(self, message: Unsubscribe) -> None:
        session, _ = self._require()
        for doc_id in message.docs:
            if doc_id == DIRECTORY_FEED:
                if session.directory:
                    session.directory = False
                    self.hub.session_changed(session)
            else:
                self.hub.unsubscribe(session, doc_id)

    def _subscribed_room(self, doc_id: str, ref: int | None = None) -> Any:
        session, _ = self._require()
        room = self.hub.rooms.get_loaded(doc_id)
        if doc_id not in session.subscriptions or room is None:
            self._error(ErrorCode.NOT_SUBSCRIBED, "subscribe to this document first",
                        ref=ref, doc=doc_id)
            return None
        return room

    async def _on_sync_step1(self, message: SyncStep1) -> None:
        room = self._subscribed_room(message.doc)
        if room is None:
            return
        try:
            update = room.doc.get_update(message.state_vector)
        except ValueError:
            self._error(ErrorCode.INVALID_UPDATE, "that is not a valid state vector",
                        doc=message.doc)
            return
        self._send(SyncStep2(message.doc, update, room.seq))

    async def _on_update(self, message: Update) -> None:
        room = self._subscribed_room(message.doc, message.ref)
        if room is None:
            return
        session, claims = self._require()
        try:
            change = room.apply_update(message.update, writer=claims.role)
        except WriteRefused as exc:
            # docs/protocol.md §7 write_forbidden: nothing kept, no Ack; the client resyncs.
            self.log.info("refused an update of %s to %s: %s", claims.username, message.doc,
                          ", ".join(exc.names))
            self._error(ErrorCode.WRITE_FORBIDDEN, str(exc), ref=message.ref, doc=message.doc)
            return
        except InvalidUpdate as exc:
            if exc.partial is not None:
                # What pycrdt integrated before failing is in the document: log and fan it
                # out like any change, so memory, log and replicas agree (no Ack: it failed).
                self.hub.accept_change_then(room, exc.partial, claims.username,
                                            session.session_id, not_acked)
            self._error(ErrorCode.INVALID_UPDATE, str(exc), ref=message.ref, doc=message.doc)
            return
        except MissingDependencies as exc:
            if exc.partial is not None:
                # The part that did integrate: logged and fanned out like any change, no
                # Ack (the rest was refused, see rooms.py); the client resyncs.
                self.hub.accept_change_then(room, exc.partial, claims.username,
                                            session.session_id, not_acked)
            self._error(ErrorCode.MISSING_DEPENDENCIES, str(exc), ref=message.ref,
                        doc=message.doc)
            return
        if change is None:
            self.hub.stats["noop_updates"] += 1
            self.hub.durable(room).add_done_callback(lambda f: self._after_barrier(f, message))
        else:
            # No future per update: the hub calls back once the change is durable.
            self.hub.accept_change_then(
                room, change, claims.username, session.session_id,
                lambda seq, error: self._after_store(seq, error, message))

    def _after_barrier(self, future: asyncio.Future[int], message: Update) -> None:
        if future.cancelled():
            self._after_store(None, None, message)
        else:
            error = future.exception()
            self._after_store(None if error is not None else future.result(), error, message)

    def _after_store(self, seq: int | None, error: BaseException | None,
                     message: Update) -> None:
        if seq is None:
            self.log.error("update %d of %s to %s not acknowledged: %s", message.ref,
                           self.username, message.doc, error or "cancelled")
            self._error(ErrorCode.INTERNAL_ERROR, "the server could not store this change; "
                        "it stays in your outbox", ref=message.ref, doc=message.doc)
        else:
            self._send(Ack(message.doc, message.ref, seq))

    async def _on_presence(self, message: Presence) -> None:
        room = self._subscribed_room(message.doc)
        if room is None:
            return
        session, _ = self._require()
        self.hub.set_presence(room, session, message.state)

    async def _on_read_notifications(self, message: ReadNotifications) -> None:
        session, claims = self._require()
        if claims.role == Role.REP:
            docs: list[str] | None = sorted(session.subscriptions)
        else:
            docs = [d for d in session.subscriptions if can_access(claims, d)]
        items = await self.hub.engine.notifications_since(message.since, docs,
                                                          message.limit + 1)
        more = len(items) > message.limit
        items = items[: message.limit]
        latest = items[-1].seq if items else message.since
        self._send(Notifications(tuple(items), latest, more))

    async def _on_directory_subscribe(self, message: DirectorySubscribe) -> None:
        session, claims = self._require()
        if not session.directory:
            session.directory = True
            self.hub.session_changed(session)
        only = None if claims.role == Role.REP else claims.customer_id
        page = self.hub.config.page_size
        cursor = message.cursor
        while True:
            rows = await self.hub.engine.directory_since(cursor, page + 1, only)
            more = len(rows) > page
            rows = rows[:page]
            if rows:
                cursor = rows[-1].cursor
            # The pass comes as DirectoryPage, live changes as DirectoryChanges (§6); a
            # version-2 client gets the pass as DirectoryChanges too (§9).
            entries = tuple(r.entry() for r in rows)
            if self.protocol.version == 2:
                self._send(DirectoryChanges(entries, cursor, more))
            else:
                self._send(DirectoryPage(DirectoryRows.of(entries), cursor, more))
            if not more or self._closing:
                break

    async def _on_heartbeat(self, message: Heartbeat) -> None:
        self._send(HeartbeatAck(message.nonce))

    async def _on_heartbeat_ack(self, message: HeartbeatAck) -> None:
        return

    def _require(self) -> tuple[Session, Claims]:
        assert self.session is not None and self.claims is not None  # state OPEN guarantees
        return self.session, self.claims

    # Called by the server's sweeper ---------------------------------------------------------

    def sweep(self, now: float) -> float | None:
        """Enforce the auth deadline, idle timeout and token expiry (docs/protocol.md §8);
        the time of the next deadline, or None once closing."""
        config = self.hub.config
        if self._closing:
            return None
        if self.protocol.state in (State.AWAITING_AUTH, State.AUTHENTICATING):
            deadline = self.connected_at + config.auth_timeout
            if now > deadline:
                self._fail(ErrorCode.AUTH_TIMEOUT,
                           f"authenticate within {config.auth_timeout:g} seconds",
                           CloseCode.AUTH_TIMEOUT)
                return None
            return deadline
        idle_deadline = self.last_seen + config.idle_timeout
        expires_in = self.token_expires_at - time.time()
        if now > idle_deadline:
            self._fail(ErrorCode.BAD_MESSAGE, "no heartbeat; connection considered dead",
                       CloseCode.HEARTBEAT_TIMEOUT)
        elif expires_in < 0:
            self._fail(ErrorCode.TOKEN_EXPIRED, "access token expired; renew it in time",
                       CloseCode.TOKEN_EXPIRED)
        else:
            return min(idle_deadline, now + expires_in)
        return None

    def revoke(self, reason: str) -> None:
        """The account was disabled or changed: close at once."""
        self._fail(ErrorCode.ACCESS_REVOKED, reason, CloseCode.ACCESS_REVOKED)


_HANDLERS: dict[type[Message], Any] = {
    Authenticate: Connection._on_authenticate,
    RenewToken: Connection._on_renew,
    Subscribe: Connection._on_subscribe,
    Unsubscribe: Connection._on_unsubscribe,
    SyncStep1: Connection._on_sync_step1,
    Update: Connection._on_update,
    Presence: Connection._on_presence,
    ReadNotifications: Connection._on_read_notifications,
    DirectorySubscribe: Connection._on_directory_subscribe,
    Heartbeat: Connection._on_heartbeat,
    HeartbeatAck: Connection._on_heartbeat_ack,
}
