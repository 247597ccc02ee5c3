"""Keeps the replica in step with the server over one ``ClientConnection``.

On every (re)connection (``_on_open``): subscribe to every held document, ask for the
directory changes since the stored cursor and the notifications since the last one seen,
send our state vector of each held document (SyncStep1), and send every outbox entry again
(docs/protocol.md §5). Then:

- server ``SyncStep1`` → push what the server lacks (an ``Update`` with a push ref, not in
  the outbox: it is derived from the document and recomputed on the next sync);
- ``SyncStep2`` / ``RemoteUpdate`` → :meth:`DocumentSet.apply_remote`;
- ``Ack`` → the outbox entry leaves (only now);
- ``Error(missing_dependencies)`` → resubscribe, which brings a fresh server SyncStep1,
  and resend that document's outbox after the push;
- directory pages and live entries → the replica (the cursor is stored per page);
- notifications live and replayed ("while you were offline") → the replica.

What the replica fails to store (disk full, read-only, locked) is not dropped: it waits
in a :class:`~app.store_retry.StoreRetry` and is stored again, in order, with the failure
reported once as ``ErrorReported(retrying=True)``. Every send of an outbox entry is
counted in the replica (``attempts``: the outbox view's "sent N times").

"In sync" means: online, the directory pass and the notification replay finished, every
held document answered its SyncStep2, the outbox is empty and no push awaits its ack.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pycrdt import Decoder, merge_updates

from sync.client import ClientConnection, ConnectionState, NotConnected, Status
from sync.protocol.errors import ErrorCode
from sync.protocol.messages import (
    DIRECTORY_FEED,
    Ack,
    DirectoryChanges,
    DirectoryPage,
    DirectorySubscribe,
    Error,
    Message,
    Notification,
    Notifications,
    Presence,
    PresenceChanged,
    PresenceState,
    ReadNotifications,
    RemoteUpdate,
    Subscribe,
    SyncStep1,
    SyncStep2,
    Update,
    Welcome,
    customer_id_of,
)

from .directory_writer import DirectoryWriter, feed_cursor
from .documents import DocumentSet
from .events import (
    DirectoryChanged,
    ErrorReported,
    EventBus,
    NotificationsArrived,
    OutboxChanged,
    PresenceUpdated,
    StatusChanged,
)
from .replica import OutboxEntry, Replica, ReplicaError
from .store_retry import StoreRetry

__all__ = ["SyncEngine"]

log = logging.getLogger(__name__)

#: Client-side pacing of updates, below the server's default 200/s, burst 2000 (§8):
#: beyond it edits wait FLUSH_DELAY seconds and go out merged per customer.
SEND_RATE = 100.0
SEND_BURST = 500.0
FLUSH_DELAY = 0.25
#: Resyncs of a customer after ``missing_dependencies`` in a row (no ack for it between)
#: that go out at once; beyond them each waits twice as long, up to RESYNC_BACKOFF_MAX s,
#: and the first wait is reported (ErrorReported, retrying).
RESYNC_RETRIES = 3
RESYNC_BACKOFF_MAX = 30.0
#: Refs of pushes (answers to the server's SyncStep1) live far above outbox refs.
_PUSH_REFS = 1 << 62
_EMPTY_UPDATE = b"\x00\x00"


class SyncEngine:
    """Drives one connection and applies what it brings to the replica."""

    def __init__(
        self, replica: Replica, docs: DocumentSet, bus: EventBus, *, url: str,
        session_id: str, token_provider: Callable[[bool], Awaitable[str]],
        client_name: str = "liveedit",
        my_presence: dict[str, dict[str, Any]] | None = None, **connection_options: Any,
    ) -> None:
        self.replica = replica
        self.docs = docs
        self.bus = bus
        self.connection = ClientConnection(
            url, session_id=session_id, token_provider=token_provider,
            on_open=self._on_open, on_message=self._on_message, client_name=client_name,
            **connection_options,
        )
        self.connection.add_status_listener(self._on_status)
        self.presence: dict[str, dict[str, tuple[str, dict[str, Any]]]] = {}
        self._refs = itertools.count(_PUSH_REFS)
        self._pushes: dict[int, str] = {}
        self._synced: set[str] = set()
        self._resend: set[str] = set()  # resync under way: resend the outbox on its SyncStep1
        # Customers whose next edit must wait for the merged flush (an earlier one does).
        self._deferred: set[str] = set()
        # missing_dependencies resyncs per customer since its last ack, and delayed ones.
        self._resyncs: dict[str, int] = {}
        self._resync_waits: dict[str, asyncio.Task[None]] = {}
        self._sent: set[int] = set()  # outbox refs sent on the current connection
        self._batches: dict[int, list[int]] = {}  # merged resend: top ref → refs it holds
        self._subscribed: set[str] = set()  # documents subscribed on this connection
        self._directory = DirectoryWriter(replica.path)
        # This rep's presence per document, re-announced on every connection; owned by the
        # core so it outlives a disconnect.
        self._my_presence: dict[str, dict[str, Any]] = (
            my_presence if my_presence is not None else {}
        )
        self._tokens = float(SEND_BURST)
        self._tokens_at = time.monotonic()
        self._flusher: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._directory_done = False
        self._notifications_done = False
        self._changed = asyncio.Event()
        self.welcome: Welcome | None = None
        self._store = StoreRetry(self._dispatch, self._report_store_failure)

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Start connecting (in the background; see ``status``)."""
        await self.connection.start()

    async def close(self) -> None:
        """Close the connection; queued edits stay in the outbox."""
        self._cancel_resync_waits()
        await self.connection.close()
        await self._store.close()
        self._directory.close()

    @property
    def status(self) -> Status:
        """The connection status."""
        return self.connection.status

    def _on_status(self, status: Status) -> None:
        self.bus.emit(StatusChanged(status))
        self._changed.set()
        if status.state is ConnectionState.ONLINE:
            task = asyncio.get_running_loop().create_task(self._send_unsent())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @property
    def in_sync(self) -> bool:
        """See the module docstring."""
        return (
            self.connection.status.state is ConnectionState.ONLINE
            and self._directory_done
            and self._notifications_done
            and set(self.replica.held_documents()) <= self._synced
            and self.replica.outbox_count() == 0
            and not self._pushes
            and not self._store.pending
        )

    def pending(self) -> str:
        """What still stands between here and "in sync", in words (for error messages)."""
        missing = set(self.replica.held_documents()) - self._synced
        parts = [
            f"connection {self.connection.status.state.value}"
            if self.connection.status.state is not ConnectionState.ONLINE else "",
            "" if self._directory_done else "directory not yet synced",
            "" if self._notifications_done else "notifications not yet replayed",
            f"{len(missing)} customer(s) not yet synced" if missing else "",
            f"{self.replica.outbox_count()} change(s) not yet acked"
            if self.replica.outbox_count() else "",
            f"{len(self._pushes)} sync push(es) not yet acked" if self._pushes else "",
            f"{self._store.pending} change(s) from the server not yet stored"
            if self._store.pending else "",
        ]
        return "; ".join(p for p in parts if p) or "in sync"

    async def wait_in_sync(self, timeout: float) -> None:  # noqa: ASYNC109 (public API)
        """Wait until fully in sync; raises TimeoutError, or the connection's fatal error."""
        async with asyncio.timeout(timeout):
            while not self.in_sync:
                self._changed.clear()
                if self.connection.status.state is ConnectionState.OFFLINE:
                    await self.connection.wait_online(timeout)  # raises the fatal error
                await self._changed.wait()

    # --- connection callbacks ------------------------------------------------------------

    async def _on_open(self, welcome: Welcome) -> None:
        self.welcome = welcome
        self._synced.clear()
        self._pushes.clear()
        self._resend.clear()
        self._sent.clear()
        self._batches.clear()
        self._deferred.clear()  # the merged resend below sends every entry
        self._cancel_resync_waits()
        self._directory_done = False
        self._notifications_done = False
        self.presence.clear()
        held = self.replica.held_documents()
        self._subscribed = set(held)
        if held:
            await self.connection.send(Subscribe(tuple(held)))
        cursor = feed_cursor(self.replica)
        await self.connection.send(Subscribe((DIRECTORY_FEED,)))
        await self.connection.send(DirectorySubscribe(cursor))
        for doc_id in held:
            await self.connection.send(SyncStep1(doc_id, self._state_vector(doc_id)))
        since = int(self.replica.get_setting("notification_seq") or 0)
        await self.connection.send(ReadNotifications(since))
        for doc_id, state in self._my_presence.items():
            if doc_id in self._subscribed:
                await self.connection.send(Presence(doc_id, state))
        await self._send_outbox_merged()

    async def _send_outbox_merged(self, only: str | None = None,
                                  skip_sent: bool = False) -> None:
        """Resend the whole outbox as one merged update per customer (a day offline can
        queue thousands of edits: one message each would trip the server's rate limit).
        The merged update carries the highest ref; its ack clears every entry it holds."""
        by_doc: dict[str, list[OutboxEntry]] = {}
        entries_now = self.replica.outbox() if only is None else self.replica.outbox_for(only)
        for entry in entries_now:
            if not (skip_sent and entry.ref in self._sent):
                by_doc.setdefault(entry.doc_id, []).append(entry)
        for doc_id, entries in by_doc.items():
            refs = [e.ref for e in entries]
            top = max(refs)
            if len(entries) > 1:
                self._batches[top] = refs
            merged = entries[0].update if len(entries) == 1 else merge_updates(
                *(e.update for e in entries))
            # Every unsent entry of the customer is in this update (queued before the first
            # await): its next edit may go out alone again.
            self._deferred.discard(doc_id)
            self._sent.update(refs)
            try:
                await self.connection.send(Update(doc_id, top, merged))
            except NotConnected:
                return
            self._count_attempts(refs)

    def _state_vector(self, doc_id: str) -> bytes:
        return self.docs.doc(customer_id_of(doc_id)).get_state()

    def _count_attempts(self, refs: list[int]) -> None:
        """Count a send of outbox entries (a counter: failing to store it loses nothing
        but the count, so it is reported and sending goes on)."""
        try:
            self.replica.mark_attempt(refs)
        except ReplicaError as exc:
            log.warning("could not count a send of %s: %s", refs, exc)
            self.bus.emit(ErrorReported(f"could not update the local outbox: {exc}"))

    async def _on_message(self, message: Message) -> None:
        if type(message) in _STORED:
            await self._store.run(message)
        else:
            await self._dispatch(message)
        self._changed.set()

    async def _dispatch(self, message: Message) -> None:
        handler = _HANDLERS.get(type(message))
        if handler is not None:
            await handler(self, message)

    def _report_store_failure(self, message: Message, exc: ReplicaError) -> None:
        doc = getattr(message, "doc", None)
        customer = customer_id_of(doc) if isinstance(doc, str) and doc else None
        self.bus.emit(ErrorReported(
            f"Changes from the server could not be saved on this computer ({exc}). "
            "Live Edit keeps them and tries again; free some disk space if it is full.",
            customer, retrying=True,
        ))

    async def _on_server_step1(self, message: SyncStep1) -> None:
        doc = self.docs.doc(customer_id_of(message.doc))
        try:
            missing = doc.get_update(message.state_vector)
        except ValueError:
            log.warning("server sent a bad state vector for %s", message.doc)
            return
        if _has_content(missing):
            ref = next(self._refs)
            self._pushes[ref] = message.doc
            await self.connection.send(Update(message.doc, ref, missing))
        if message.doc in self._resend:
            self._resend.discard(message.doc)
            await self._send_outbox_merged(only=message.doc)

    async def _on_step2(self, message: SyncStep2) -> None:
        self.docs.apply_remote(message.doc, message.update, author=None,
                               server_seq=message.seq)
        self._synced.add(message.doc)

    async def _on_remote_update(self, message: RemoteUpdate) -> None:
        self.docs.apply_remote(message.doc, message.update, author=message.author,
                               server_seq=message.seq)

    async def _on_ack(self, message: Ack) -> None:
        if self._pushes.pop(message.ref, None) is not None:
            return
        refs = self._batches.pop(message.ref, [message.ref])
        self._resyncs.pop(message.doc, None)  # the server took this customer's changes
        # No fsync per ack (a reconnect brings one per customer): should the OS lose this
        # commit, the entries are sent again and the server acks them without logging
        # them twice (§5, "no-op update").
        with self.replica.cache_transaction():
            removed = [ref for ref in refs if self.replica.remove_outbox(ref)]
        if removed:
            self.bus.emit(OutboxChanged(self.replica.pending_changes().changes))

    async def _on_error(self, message: Error) -> None:
        if message.code is ErrorCode.MISSING_DEPENDENCIES and message.doc:
            if message.ref is not None:
                self._pushes.pop(message.ref, None)
                self._batches.pop(message.ref, None)
            await self._resync(message.doc)
            return
        if message.ref is not None and message.ref in self._pushes:
            self._pushes.pop(message.ref)
            log.warning("push for %s refused: %s", message.doc, message.message)
        elif message.ref is not None and message.code in (
            ErrorCode.INVALID_UPDATE, ErrorCode.INVALID_VALUE, ErrorCode.FORBIDDEN,
            ErrorCode.NOT_SUBSCRIBED, ErrorCode.WRITE_FORBIDDEN,
        ):
            # The server will never accept these entries: keep them from blocking the outbox.
            for ref in self._batches.pop(message.ref, [message.ref]):
                self.replica.remove_outbox(ref)
            self.bus.emit(OutboxChanged(self.replica.pending_changes().changes))
        if message.code is ErrorCode.FORBIDDEN and message.doc:
            self.replica.set_held(message.doc, False)
            self._subscribed.discard(message.doc)
            self._synced.discard(message.doc)
        text = message.message
        if message.code is ErrorCode.WRITE_FORBIDDEN and message.doc:
            text += await self._start_over(message.doc)
        customer = customer_id_of(message.doc) if message.doc else None
        self.bus.emit(ErrorReported(text, customer))

    async def _resync(self, doc_id: str) -> None:
        """After ``missing_dependencies``: subscribe again, which brings the server's
        SyncStep1, and resend the customer's outbox merged on top of what it has
        (docs/protocol.md §7). One resync per customer at a time: the updates refused while
        it is under way are in its merged resend. Resyncs that keep failing (no ack for the
        customer in between) back off and are reported, rather than loop."""
        if doc_id in self._resend:
            return
        self._resend.add(doc_id)
        count = self._resyncs[doc_id] = self._resyncs.get(doc_id, 0) + 1
        if count <= RESYNC_RETRIES:
            await self._send_resync(doc_id)
            return
        delay = min(RESYNC_BACKOFF_MAX, 2.0 ** (count - RESYNC_RETRIES - 1))
        log.warning("%s: the server refused its changes as incomplete %d times in a row; "
                    "resyncing in %.0f s", doc_id, count, delay)
        if count == RESYNC_RETRIES + 1:
            self.bus.emit(ErrorReported(
                "The server keeps refusing this customer's unsent changes as incomplete; "
                "Live Edit keeps them and tries again, more slowly. If this goes on, "
                "report it to your administrator.", customer_id_of(doc_id), retrying=True,
            ))

        async def later() -> None:
            await asyncio.sleep(delay)
            self._resync_waits.pop(doc_id, None)
            await self._send_resync(doc_id)

        self._resync_waits[doc_id] = asyncio.get_running_loop().create_task(later())

    async def _send_resync(self, doc_id: str) -> None:
        if self.connection.status.state is not ConnectionState.ONLINE:
            return  # the next connection resyncs every held customer anyway
        try:
            await self.connection.send(Subscribe((doc_id,)))
        except NotConnected:
            return

    def _cancel_resync_waits(self) -> None:
        for task in self._resync_waits.values():
            task.cancel()
        self._resync_waits.clear()

    async def _start_over(self, doc_id: str) -> str:
        """After ``write_forbidden``: the server kept nothing of that update, and this
        client's later updates of the customer depend on it, so the local copy starts
        over from the server's (docs/protocol.md §7). Returns what to add to the error."""
        try:
            dropped = self.docs.reset(customer_id_of(doc_id))
        except ReplicaError as exc:
            log.warning("could not start %s over: %s", doc_id, exc)
            return f"; the local copy could not start over ({exc})"
        self._synced.discard(doc_id)
        self._resend.discard(doc_id)
        self.bus.emit(OutboxChanged(self.replica.pending_changes().changes))
        try:
            await self.connection.send(SyncStep1(doc_id, self._state_vector(doc_id)))
        except NotConnected:
            log.info("%s starts over on the next connection (it is held)", doc_id)
        if dropped:
            return (f"; this customer is shown as the server has it, and {dropped} other "
                    "unsent change(s) to it were discarded")
        return "; this customer is shown as the server has it"

    async def _on_notification(self, message: Notification) -> None:
        if self.replica.add_notifications([message], offline=False):
            self._advance_notifications(message.seq)
            self.bus.emit(NotificationsArrived((message,), offline=False))

    async def _on_notifications(self, message: Notifications) -> None:
        self.replica.add_notifications(message.items, offline=True)
        self._advance_notifications(message.latest)
        if message.items:
            self.bus.emit(NotificationsArrived(message.items, offline=True))
        if message.more:
            await self.connection.send(ReadNotifications(message.latest))
        else:
            self._notifications_done = True

    def _advance_notifications(self, seq: int) -> None:
        current = int(self.replica.get_setting("notification_seq") or 0)
        if seq > current:
            self.replica.set_setting("notification_seq", str(seq))

    async def _on_directory(self, message: DirectoryChanges) -> None:
        """A live directory change (never a page of the pass: §6)."""
        # Mid-pass, a live change moves no cursor: the pass may not have reached it.
        count = await self._directory.store(message.entries, advance=self._directory_done)
        self.bus.emit(DirectoryChanged(count, self._directory_done))

    async def _on_directory_page(self, message: DirectoryPage) -> None:
        """A page of the directory pass (the reply to DirectorySubscribe)."""
        count = await self._directory.store_page(message.rows, message.cursor,
                                                 more=message.more)
        if not message.more:
            self._directory_done = True
        self.bus.emit(DirectoryChanged(count, self._directory_done))

    async def _on_presence(self, message: PresenceChanged) -> None:
        peers = self.presence.setdefault(message.doc, {})
        if message.state is None:
            peers.pop(message.session_id, None)
        else:
            peers[message.session_id] = (message.user, dict(message.state))
        self.bus.emit(PresenceUpdated(customer_id_of(message.doc), dict(peers)))

    # --- used by the core ------------------------------------------------------------------

    async def send_update(self, doc_id: str, ref: int, update: bytes) -> None:
        """Send a new outbox entry now if online (else it goes on the next connection)."""
        if self.connection.status.state is not ConnectionState.ONLINE:
            return
        await self._send_entry(doc_id, ref, update)

    async def _send_entry(self, doc_id: str, ref: int, update: bytes) -> None:
        if ref in self._sent:
            return
        # A customer's updates must reach the server in the order they were made, each
        # builds on the one before: once one of them waits for the merged flush, the later
        # ones wait with it. Sent alone ahead of it, one would be refused as
        # missing_dependencies (and each refusal costs a resync: a flood of messages).
        if doc_id in self._deferred or not self._pace():
            self._deferred.add(doc_id)
            self._flush_later()  # the bucket is empty: this edit goes out merged, soon
            return
        self._sent.add(ref)
        try:
            await self.connection.send(Update(doc_id, ref, update))
        except NotConnected:
            return
        self._count_attempts([ref])

    def _pace(self) -> bool:
        """Client-side token bucket, below the server's per-connection limit (§8)."""
        now = time.monotonic()
        self._tokens = min(SEND_BURST, self._tokens + (now - self._tokens_at) * SEND_RATE)
        self._tokens_at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def _flush_later(self) -> None:
        if self._flusher is not None:
            return

        async def flush() -> None:
            await asyncio.sleep(FLUSH_DELAY)
            self._flusher = None
            if self.connection.status.state is not ConnectionState.ONLINE:
                return  # the next connection resends the whole outbox merged
            unsent = {e.doc_id for e in self.replica.outbox() if e.ref not in self._sent}
            self._deferred &= unsent  # nothing of the others waits any more
            for doc_id in unsent:
                await self._send_outbox_merged(only=doc_id, skip_sent=True)

        self._flusher = asyncio.get_running_loop().create_task(flush())

    async def _send_unsent(self) -> None:
        """After on_open: entries added while it ran were not sent by it; send them."""
        for entry in self.replica.outbox():
            await self._send_entry(entry.doc_id, entry.ref, entry.update)

    async def hold(self, doc_id: str) -> None:
        """Keep a document offline and in sync from now on (subscribes once)."""
        if doc_id in self._subscribed:
            return
        self.docs.hold(customer_id_of(doc_id))
        if self.connection.status.state is ConnectionState.ONLINE:
            self._subscribed.add(doc_id)
            try:
                await self.connection.send(Subscribe((doc_id,)))
                await self.connection.send(SyncStep1(doc_id, self._state_vector(doc_id)))
            except NotConnected:
                return

    async def set_presence(self, doc_id: str, state: PresenceState | None) -> None:
        """Tell the others what this rep is doing on a customer (re-announced after every
        reconnect, since the server drops presence with the connection)."""
        if state is None:
            self._my_presence.pop(doc_id, None)
        else:
            self._my_presence[doc_id] = dict(state)
        if self.connection.status.state is ConnectionState.ONLINE:
            try:
                await self.connection.send(Presence(doc_id, state))
            except NotConnected:
                return


def _has_content(update: bytes) -> bool:
    """True when an update carries structs or deletions (not the empty ``00 00``)."""
    if update == _EMPTY_UPDATE:
        return False
    decoder = Decoder(update)
    return decoder.read_var_uint() > 0 or len(update) > 2


#: Messages whose content the replica stores: a failure to store them is retried.
_STORED: frozenset[type[Message]] = frozenset({
    SyncStep2, RemoteUpdate, DirectoryChanges, DirectoryPage, Notification, Notifications,
})

_HANDLERS: dict[type[Message], Callable[[SyncEngine, Any], Awaitable[None]]] = {
    SyncStep1: SyncEngine._on_server_step1,
    SyncStep2: SyncEngine._on_step2,
    RemoteUpdate: SyncEngine._on_remote_update,
    Ack: SyncEngine._on_ack,
    Error: SyncEngine._on_error,
    Notification: SyncEngine._on_notification,
    Notifications: SyncEngine._on_notifications,
    DirectoryChanges: SyncEngine._on_directory,
    DirectoryPage: SyncEngine._on_directory_page,
    PresenceChanged: SyncEngine._on_presence,
}
