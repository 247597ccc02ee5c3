"""``/yjs/{customer_id}``: the y-websocket protocol over the same rooms, log and rules as /ws.

A browser or Node app with the ``y-websocket`` provider (or any client of that protocol)
joins one customer document per connection (docs/protocol.md §10). It gets what a desktop
rep's connection gets: the same permission check (``can_access``), the same durable log and
fan-out through :meth:`SyncHub.accept_change_then`, the same limits (message size, rate, auth
deadline, idle timeout, token expiry, revocation). What differs is the encoding
(``sync.protocol.yjs``) and three protocol habits of the reference server that the stock
provider relies on:

- the server starts with sync step 1, and answers the client's step 1 with step 2;
- a writer's own update comes back to it, like every other subscriber's copy: here it is
  sent once the update is durably stored, so for a Yjs client the echo is the ack;
- awareness updates are relayed to every connection of the document, the sender's too
  (the provider counts them as signs of life).

Authentication: ``?token=<access token>`` in the URL, or an auth message ``[2, 1, token]``
as the first message (what arrives before it is held, up to ``max_pending_before_auth``
frames). The same message renews the token later. A client that may not open the
document gets y-protocols' permission-denied message and the socket is closed.
"""

from __future__ import annotations

import itertools
import logging
import time

from starlette.datastructures import QueryParams
from starlette.websockets import WebSocket

from sync.protocol import yjs
from sync.protocol.errors import CloseCode, MalformedMessage
from sync.protocol.messages import customer_doc_id, is_doc_id
from sync.protocol.yjs import YjsCloseCode

from .auth import Claims
from .errors import AccountDisabled, AuthError
from .hub import SyncHub, can_access, not_acked
from .peer import WebSocketPeer
from .rooms import InvalidUpdate, MissingDependencies, Room
from .write_rules import WriteRefused

__all__ = ["YjsConnection"]

log = logging.getLogger(__name__)

#: Awareness client ids one connection may announce (a provider has one; a few spare).
MAX_AWARENESS_IDS = 8

_ids = itertools.count(1)


class YjsConnection(WebSocketPeer):
    """The server side of one y-websocket client on one customer document."""

    __slots__ = ("_authenticating", "_awareness_ids", "_held", "_nudged", "_queried", "doc_id",
                 "room", "session_id")

    def __init__(self, hub: SyncHub, websocket: WebSocket, customer_id: str) -> None:
        super().__init__(hub, websocket)
        self.doc_id = customer_doc_id(customer_id)
        #: Fan-out key: excludes this connection from the immediate fan-out of its own
        #: updates (it gets them back after the commit instead).
        self.session_id = f"yjs-{next(_ids)}"
        self.room: Room | None = None
        self._held: list[bytes] = []
        self._authenticating = False
        self._awareness_ids: set[int] = set()
        self._queried = False
        #: A sync step 1 was sent for a refused update and no update of this connection
        #: has integrated since: do not ask again (see _on_update).
        self._nudged = False

    @property
    def username(self) -> str:
        """The authenticated user ('' before authentication)."""
        return self.claims.username if self.claims else ""

    # Opening and authentication -----------------------------------------------------------

    async def on_open(self) -> None:
        if not is_doc_id(self.doc_id):
            self._deny("not a customer id: use the customer's UUID", YjsCloseCode.BAD_REQUEST)
            return
        # Parsed, not cached on the socket (websocket.query_params would keep it all along).
        token = QueryParams(self.websocket.scope["query_string"]).get("token")
        if token:
            await self._authenticate(token)

    async def _authenticate(self, token: str) -> None:
        self._authenticating = True
        try:
            claims = await self._verify(token)
            if claims is None:
                return
            if not can_access(claims, self.doc_id):
                self._deny("you may not open this customer", YjsCloseCode.FORBIDDEN)
                return
            room = await self.hub.rooms.get(self.doc_id)
            if self.closing:
                return
            self.claims = claims
            self.token_expires_at = claims.expires_at
            self.room = room
            room.yjs[self.session_id] = self
            self.post(yjs.sync_step1(room.doc.get_state()))
            if room.yjs_awareness:
                self.post(yjs.awareness_update(list(room.yjs_awareness.values())))
            self.log.info("%s opened %s over /yjs as %s", self.peer, self.doc_id,
                          claims.username)
        finally:
            self._authenticating = False
        held, self._held = self._held, []
        for frame in held:
            if self.closing:
                break
            await self.on_frame(frame)

    async def _verify(self, token: str) -> Claims | None:
        outcome = await self._check_token(token)
        if self.closing:
            return None
        if isinstance(outcome, AccountDisabled):
            self._deny(str(outcome), YjsCloseCode.FORBIDDEN)
        elif isinstance(outcome, AuthError):  # no, forged or expired token
            self._deny(str(outcome), YjsCloseCode.UNAUTHORIZED)
        else:
            return outcome
        return None

    def _deny(self, reason: str, code: int) -> None:
        """Tell the client in y-protocols' words, then close."""
        self.log.info("denied %s on %s: %s", self.peer, self.doc_id, reason)
        self.post(yjs.permission_denied(reason))
        self.close(code, reason)

    # Frames ---------------------------------------------------------------------------------

    def on_text_frame(self) -> None:
        self.close(CloseCode.BAD_MESSAGE, "frames must be binary")

    def on_rate_limited(self) -> None:
        self.close(CloseCode.RATE_LIMITED, "too many messages; slow down")

    async def on_frame(self, data: bytes) -> None:
        if len(data) > self.hub.config.max_message_size:
            self.close(CloseCode.MESSAGE_TOO_BIG,
                       f"messages are limited to {self.hub.config.max_message_size} bytes")
            return
        try:
            message = yjs.parse(data)
        except MalformedMessage as exc:
            self.close(CloseCode.BAD_MESSAGE, f"malformed message: {exc}")
            return
        self._queried = False
        if self.room is None:
            if isinstance(message, yjs.AuthToken) and not self._authenticating:
                await self._authenticate(message.token)
            elif len(self._held) >= self.hub.config.max_pending_before_auth:
                self.close(CloseCode.RATE_LIMITED, "too many messages before authentication")
            else:
                self._held.append(data)
            return
        try:
            await self._handle(self.room, message)
        except Exception:
            # A bug of ours, not the peer's: log it, close with 1011, serve everyone else.
            self.log.exception("handling %s from %s failed", type(message).__name__, self.peer)
            self.close(CloseCode.INTERNAL_ERROR, "internal error; reconnect")

    async def _handle(self, room: Room, message: yjs.YMessage) -> None:
        if isinstance(message, yjs.SyncStep1):
            try:
                update = room.doc.get_update(message.state_vector)
            except ValueError:
                self.close(CloseCode.BAD_MESSAGE, "that is not a valid state vector")
                return
            self.post(yjs.sync_step2(update))
        elif isinstance(message, (yjs.SyncStep2, yjs.SyncUpdate)):
            self._on_update(room, message.update)
        elif isinstance(message, yjs.AwarenessUpdate):
            self._on_awareness(room, message)
        elif isinstance(message, yjs.QueryAwareness):
            if room.yjs_awareness:
                self.post(yjs.awareness_update(list(room.yjs_awareness.values())))
        elif isinstance(message, yjs.AuthToken):
            await self._renew(message.token)
        else:
            self.close(CloseCode.BAD_MESSAGE, "only a server may send permission-denied")

    def _on_update(self, room: Room, update: bytes) -> None:
        assert self.claims is not None
        try:
            # Fields the role may not write are undone for everyone inside the change
            # (repair); other parts it may not write (notes, tasks, …) refuse the update.
            change = room.apply_update(update, writer=self.claims.role, repair=True)
        except WriteRefused as exc:
            self._deny(str(exc), YjsCloseCode.FORBIDDEN)
            return
        except InvalidUpdate as exc:
            if exc.partial is not None:
                # What pycrdt integrated before failing is in the document: log and fan it
                # out like any change, so memory, log and replicas agree.
                self.hub.accept_change_then(room, exc.partial, self.claims.username, None,
                                            not_acked)
            self.close(CloseCode.BAD_MESSAGE, str(exc))
            return
        except MissingDependencies as exc:
            # Refused, nothing of it kept pending (rooms.py); a part that did integrate is
            # logged and fanned out. Ask the client for everything we lack: its step 2
            # answer carries the missing changes with this one. Once only until something
            # of this connection integrates: if the answer is refused too, the client
            # lacks the dependencies itself, and asking again would loop.
            if exc.partial is not None:
                self.hub.accept_change_then(room, exc.partial, self.claims.username,
                                            self.session_id, not_acked)
            if not self._nudged:
                self._nudged = True
                self.post(yjs.sync_step1(room.doc.get_state()))
            return
        self._nudged = False
        if change is None:
            return
        update = change.update
        # The echo, built once it is durable (no future per update: the hub calls back).
        self.hub.accept_change_then(
            room, change, self.claims.username, self.session_id,
            lambda seq, _error: None if seq is None else self.post(yjs.sync_update(update)))

    def _on_awareness(self, room: Room, message: yjs.AwarenessUpdate) -> None:
        accepted: list[yjs.AwarenessEntry] = []
        for entry in message.entries:
            mine = entry.client_id in self._awareness_ids
            current = room.yjs_awareness.get(entry.client_id)
            if not mine and current is not None:
                continue  # another connection's client: not this one's to change
            if not mine:
                if entry.state is None or len(self._awareness_ids) >= MAX_AWARENESS_IDS:
                    continue
                self._awareness_ids.add(entry.client_id)
            if current is not None and entry.clock < current.clock:
                continue
            if entry.state is None:
                room.yjs_awareness.pop(entry.client_id, None)
                self._awareness_ids.discard(entry.client_id)
            else:
                room.yjs_awareness[entry.client_id] = entry
            accepted.append(entry)
        if accepted:
            frame = (yjs.awareness_update(accepted) if len(accepted) != len(message.entries)
                     else yjs.awareness_relay(message.payload))
            room.broadcast_yjs(frame)

    async def _renew(self, token: str) -> None:
        claims = await self._verify(token)
        old = self.claims
        assert old is not None
        if claims is None:
            return
        if claims.username != old.username or (
            claims.role, claims.customer_id) != (old.role, old.customer_id
        ):
            self._deny("a renewed token must be for the same user and access; reconnect",
                       YjsCloseCode.FORBIDDEN)
            return
        self.claims = claims
        self.token_expires_at = claims.expires_at

    # Closing --------------------------------------------------------------------------------

    def on_closed(self) -> None:
        room = self.room
        if room is None:
            return
        room.yjs.pop(self.session_id, None)
        gone = [
            yjs.AwarenessEntry(cid, room.yjs_awareness[cid].clock + 1, None)
            for cid in self._awareness_ids if cid in room.yjs_awareness
        ]
        for entry in gone:
            del room.yjs_awareness[entry.client_id]
        if gone:
            room.broadcast_yjs(yjs.awareness_update(gone))

    # Called by the server's sweeper -----------------------------------------------------------

    def sweep(self, now: float) -> float | None:
        """Auth deadline, idle timeout (with a query-awareness nudge first), token expiry;
        the time of the next deadline, or None once closing."""
        config = self.hub.config
        if self.closing:
            return None
        if self.room is None:
            deadline = self.connected_at + config.auth_timeout
            if now > deadline:
                if not self._authenticating:
                    self._deny(f"authenticate within {config.auth_timeout:g} seconds",
                               YjsCloseCode.UNAUTHORIZED)
                    return None
                return now + config.auth_timeout / 10  # the check is under way
            return deadline
        silent = now - self.last_seen
        expires_in = self.token_expires_at - time.time()
        if silent > config.idle_timeout:
            self.close(CloseCode.HEARTBEAT_TIMEOUT, "no message; connection considered dead")
            return None
        if silent > config.idle_timeout / 2 and not self._queried:
            self._queried = True
            self.post(yjs.query_awareness())  # a live provider answers with its awareness
        elif expires_in < 0:
            self._deny("access token expired; reconnect with a new token",
                       YjsCloseCode.UNAUTHORIZED)
            return None
        # Next: the nudge half-way through the idle timeout, or (nudged) the timeout itself.
        next_check = self.last_seen + config.idle_timeout / (1 if self._queried else 2)
        return min(next_check, now + expires_in)

    def revoke(self, reason: str) -> None:
        """The account was disabled or changed: close at once."""
        self._deny(reason, YjsCloseCode.FORBIDDEN)
