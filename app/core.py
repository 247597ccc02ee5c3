"""The client core's facade: one profile's replica, documents, sync and account.

Everything the desktop app and ``liveedit client`` do goes through :class:`ClientCore`.
Edits are local-first: each returns once the change is durable in the replica (and queued
in the outbox), whether or not the server is reachable; when connected it is sent at once.
Observers subscribe to ``core.bus`` for :mod:`app.events`.
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pycrdt import Doc, Map

from sync.protocol import document, schema
from sync.protocol.errors import InvalidFieldValue
from sync.protocol.messages import customer_doc_id

from .auth import Authenticator, PasswordProvider
from .credentials import CredentialStore, CredentialsUnavailable
from .documents import DocumentSet, LocalChange
from .errors import InvalidEdit, NotSignedIn, SyncTimeout, UnknownCustomer
from .events import ConflictResolved, EventBus
from .history import HistoryClient, Version
from .outbox import PendingChanges
from .replica import Conflict, Replica
from .sync_engine import SyncEngine

__all__ = ["ClientCore", "CustomerView", "Version"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CustomerView:
    """A customer as this replica holds it now."""

    id: str
    fields: dict[str, str | None]
    deleted: bool
    notes: str
    tasks: list[document.Task]
    comments: list[document.Comment]

    def as_json(self) -> dict[str, Any]:
        """The HTTP API's representation plus notes, tasks and comments."""
        out: dict[str, Any] = {"id": self.id}
        out.update(document.shape_json(self.fields))
        out["deleted"] = self.deleted
        out["notes"] = self.notes
        out["tasks"] = [{"id": t.id, "title": t.title, "done": t.done} for t in self.tasks]
        out["comments"] = [
            {"id": c.id, "author": c.author, "time": c.time, "text": c.text}
            for c in self.comments
        ]
        return out


def _check_customer_id(customer_id: str) -> str:
    try:
        return str(uuid.UUID(customer_id))
    except ValueError as exc:
        raise UnknownCustomer(f"{customer_id!r} is not a customer id (a UUID)") from exc


class ClientCore:
    """One user profile: replica + documents + (optionally) a live connection."""

    def __init__(self, replica: Replica, *, credentials: CredentialStore | None = None,
                 password_provider: PasswordProvider | None = None) -> None:
        self.replica = replica
        self.bus = EventBus()
        self.credentials = credentials or CredentialStore()
        self.password_provider = password_provider
        self.docs = DocumentSet(replica, self.bus, lambda: self.username or "")
        self.engine: SyncEngine | None = None
        self._auth: Authenticator | None = None
        self._my_presence: dict[str, dict[str, Any]] = {}
        if self.replica.get_setting("session_id") is None:
            self.replica.set_setting("session_id", secrets.token_urlsafe(16))

    @classmethod
    def open(cls, data_dir: Path, **options: Any) -> ClientCore:
        """Open (or create) the profile in ``data_dir``."""
        return cls(Replica.open(Path(data_dir) / "replica.db"), **options)

    @property
    def closed(self) -> bool:
        """True once close() ran: views with a pending timer must then do nothing."""
        return self.replica.closed

    async def close(self) -> None:
        """Disconnect and close the replica."""
        await self.disconnect()
        self.replica.close()

    # --- profile and account ---------------------------------------------------------------

    @property
    def server_url(self) -> str | None:
        """The server this profile syncs with."""
        return self.replica.get_setting("server_url")

    @property
    def username(self) -> str | None:
        """The user this profile belongs to."""
        return self.replica.get_setting("username")

    @property
    def session_id(self) -> str:
        """This client instance's session id (seed 001), stable across restarts."""
        value = self.replica.get_setting("session_id")
        assert value is not None
        return value

    def authenticator(self) -> Authenticator:
        """The profile's authenticator; raises NotSignedIn before the first login."""
        if self._auth is None:
            if not self.server_url or not self.username:
                raise NotSignedIn("this profile has no server yet: run 'liveedit client login'")
            self._auth = Authenticator(self.server_url, self.username,
                                       credentials=self.credentials,
                                       password_provider=self.password_provider)
        return self._auth

    async def login(self, server_url: str, username: str, password: str, *,
                    remember: bool = True) -> None:
        """Sign in and make this profile belong to ``username`` at ``server_url``.

        A profile is for one user on one server: signing in as someone else needs another
        data folder (their replicas must never mix).
        """
        server_url = server_url.rstrip("/")
        if self.username and (self.username != username or self.server_url != server_url):
            raise InvalidEdit(
                f"this profile belongs to {self.username} at {self.server_url}; "
                "use another --data-dir for another user or server"
            )
        auth = Authenticator(server_url, username, credentials=self.credentials,
                             password_provider=self.password_provider)
        try:
            await auth.login(password, remember=remember)
        except CredentialsUnavailable:
            self._adopt(auth)  # signed in for this session; only remembering failed
            raise
        self._adopt(auth)

    def _adopt(self, auth: Authenticator) -> None:
        self._auth = auth
        self.replica.set_setting("server_url", auth.server_url)
        self.replica.set_setting("username", auth.username)

    # --- connection ------------------------------------------------------------------------

    async def connect(self, **connection_options: Any) -> SyncEngine:
        """Start syncing in the background (reconnecting as needed); returns the engine."""
        if self.engine is None:
            auth = self.authenticator()
            ws_url = auth.server_url.replace("http", "ws", 1) + "/ws"
            self.engine = SyncEngine(
                self.replica, self.docs, self.bus, url=ws_url, session_id=self.session_id,
                token_provider=auth.token, my_presence=self._my_presence, **connection_options,
            )
            await self.engine.start()
        return self.engine

    async def disconnect(self) -> None:
        """Stop syncing; queued edits stay in the outbox."""
        if self.engine is not None:
            await self.engine.close()
            self.engine = None

    async def sync(self, timeout: float = 30.0) -> None:  # noqa: ASYNC109 (public API)
        """Connect and wait until fully in sync. Raises SyncTimeout (edits stay queued)."""
        engine = await self.connect()
        try:
            await engine.wait_in_sync(timeout)
        except TimeoutError as exc:
            status = engine.status
            detail = f", {status.error}" if status.error else ""
            log.warning("sync timed out: %s", engine.pending())
            raise SyncTimeout(
                f"not in sync after {timeout:g} s ({engine.pending()}{detail}); "
                f"{self.replica.outbox_count()} change(s) stay queued"
            ) from exc

    # --- reading ---------------------------------------------------------------------------

    def customer(self, customer_id: str) -> CustomerView:
        """A customer from the replica (empty fields while a just-opened one is still
        arriving); raises UnknownCustomer if this replica has never heard of it."""
        cid = self._known(customer_id)
        doc = self.docs.doc(cid)
        return CustomerView(
            id=cid, fields=document.read_fields(doc), deleted=document.is_deleted(doc),
            notes=document.read_notes(doc), tasks=document.read_tasks(doc),
            comments=document.read_comments(doc),
        )

    def _known(self, customer_id: str) -> str:
        cid = _check_customer_id(customer_id)
        if not self.docs.exists(cid) and self.replica.get_directory(cid) is None:
            raise UnknownCustomer(f"no customer {cid} in this replica; sync first?")
        return cid

    def search(self, query: str, limit: int = 50, offset: int = 0, *,
               order_by: str = "name", descending: bool = False) -> list[Any]:
        """Customers matching ``query`` (word prefixes), from the local index (offline),
        sorted by ``order_by`` (name, email, phone, city, state, zip, updated_at)."""
        return self.replica.search(query, limit=limit, offset=offset, order_by=order_by,
                                   descending=descending)

    def count(self, query: str) -> int:
        """How many live customers match ``query`` (as :meth:`search`), offline too."""
        return self.replica.count(query)

    def deleted_customers(self, query: str = "", limit: int = 200) -> list[Any]:
        """Deleted customers matching ``query`` (as :meth:`search`), most recently deleted
        first, from the local directory (offline too); restore with
        :meth:`restore_customer`."""
        return self.replica.deleted_customers(query, limit)

    def pending_changes(self) -> PendingChanges:
        """What waits for the server, counted as a rep counts changes (per field, per
        notes editing session, per customer; :mod:`app.outbox`)."""
        return self.replica.pending_changes()

    def pending_parts(self, customer_id: str) -> frozenset[str]:
        """What of the customer waits for the server: field names and ``notes``,
        ``tasks``, ``comments``, ``meta`` of its queued edits (empty once acked)."""
        doc_id = customer_doc_id(_check_customer_id(customer_id))
        return self.replica.pending_parts(doc_id)

    def pending_fields(self, customer_id: str) -> frozenset[str]:
        """The customer's fields with an edit in the outbox ("not yet synced")."""
        return self.pending_parts(customer_id) & frozenset(schema.field_names())

    def outbox(self) -> list[Any]:
        """Changes waiting for the server's ack, oldest first."""
        return self.replica.outbox()

    def conflicts(self, customer_id: str | None = None) -> list[Conflict]:
        """Open conflicts (all, or one customer's)."""
        doc_id = customer_doc_id(_check_customer_id(customer_id)) if customer_id else None
        return self.replica.conflicts(doc_id)

    def notifications(self, limit: int = 100) -> list[Any]:
        """Stored notifications, newest first."""
        return self.replica.notifications(limit=limit)

    def presence(self, customer_id: str) -> dict[str, tuple[str, dict[str, Any]]]:
        """Who else is on this customer now (session id → (user, state))."""
        if self.engine is None:
            return {}
        return dict(self.engine.presence.get(customer_doc_id(customer_id), {}))

    async def set_presence(self, customer_id: str, state: Mapping[str, Any] | None) -> None:
        """Tell the other reps on this customer what this rep is doing (best effort:
        presence is not queued while offline). ``None``: this rep left the customer."""
        cid = _check_customer_id(customer_id)
        doc_id = customer_doc_id(cid)
        if self.engine is not None:
            await self.engine.set_presence(doc_id, state)
        elif state is None:
            self._my_presence.pop(doc_id, None)
        else:
            self._my_presence[doc_id] = dict(state)

    # --- editing (local first) ---------------------------------------------------------------

    async def _edit(self, customer_id: str, fn: Callable[[Doc[Any]], object],
                    summary: str = "", *, group: bool = False) -> LocalChange | None:
        try:
            change = self.docs.edit(customer_id, fn, summary, group=group)
        except InvalidFieldValue as exc:
            raise InvalidEdit(str(exc)) from exc
        return await self._send(change)

    async def _send(self, change: LocalChange | None) -> LocalChange | None:
        if change is not None and self.engine is not None:
            doc_id = customer_doc_id(change.customer_id)
            await self.engine.hold(doc_id)
            await self.engine.send_update(doc_id, change.ref, change.update)
        return change

    async def undo(self, customer_id: str) -> bool:
        """Undo this rep's last edit of the customer (others' edits are untouched)."""
        cid = self._known(customer_id)
        return await self._send(self.docs.undo(cid)) is not None

    async def redo(self, customer_id: str) -> bool:
        """Redo the last undone edit of the customer."""
        cid = self._known(customer_id)
        return await self._send(self.docs.redo(cid)) is not None

    def can_undo(self, customer_id: str) -> bool:
        """True when this rep has an edit of the customer to undo."""
        return self.docs.can_undo(_check_customer_id(customer_id))

    def can_redo(self, customer_id: str) -> bool:
        """True when there is an undone edit of the customer to redo."""
        return self.docs.can_redo(_check_customer_id(customer_id))

    async def open_customer(self, customer_id: str) -> CustomerView:
        """Hold a customer offline and keep it in sync; returns what is known now.

        Online, a customer this replica has not seen yet (a link, a notification before
        the directory synced) is held and fetched; offline it raises UnknownCustomer.
        """
        cid = _check_customer_id(customer_id)
        if self.engine is None:
            cid = self._known(cid)
        if self.engine is not None:
            await self.engine.hold(customer_doc_id(cid))
        else:
            self.docs.hold(cid)
        return self.customer(cid)

    async def create_customer(self, values: Mapping[str, Any]) -> str:
        """A new customer (works offline); returns its id."""
        cid = str(uuid.uuid4())
        author = self.username or ""

        def create(doc: Doc[Any]) -> None:
            document.set_fields(doc, {**dict.fromkeys(schema.field_names()), **values},
                                author=author)
            meta = document.roots(doc).meta
            meta["created_by"] = author
            meta["created_at"] = time.time()

        await self._edit(cid, create, "new customer")
        return cid

    async def set_fields(self, customer_id: str, values: Mapping[str, Any]) -> LocalChange | None:
        """Set fields (validated first: nothing changes if any value is invalid)."""
        cid = self._known(customer_id)
        author = self.username or ""
        return await self._edit(cid, lambda d: document.set_fields(d, values, author=author))

    async def notes_insert(self, customer_id: str, index: int, text: str) -> None:
        """Insert text into the case notes at ``index``."""
        cid = self._known(customer_id)

        def insert(doc: Doc[Any]) -> None:
            if len(document.read_notes(doc)) + len(text) > document.MAX_NOTES_LENGTH:
                raise InvalidFieldValue("notes", f"at most {document.MAX_NOTES_LENGTH} "
                                                 "characters")
            document.insert_notes(doc, index, text)

        await self._edit(cid, insert, "notes", group=True)

    async def notes_append(self, customer_id: str, text: str) -> None:
        """Append text to the case notes."""
        cid = self._known(customer_id)
        await self.notes_insert(cid, len(document.read_notes(self.docs.doc(cid))), text)

    async def notes_delete(self, customer_id: str, index: int, length: int) -> None:
        """Delete ``length`` characters of the notes from ``index``."""
        cid = self._known(customer_id)

        def delete(doc: Doc[Any]) -> None:
            document.delete_notes(doc, index, length)

        await self._edit(cid, delete, "notes", group=True)

    async def add_task(self, customer_id: str, title: str) -> str:
        """Add a follow-up task; returns its id."""
        cid = self._known(customer_id)
        task_id = uuid.uuid4().hex
        await self._edit(cid, lambda d: document.add_task(d, title, task_id), "tasks")
        return task_id

    async def edit_task(self, customer_id: str, task_id: str, *, title: str | None = None,
                        done: bool | None = None) -> None:
        """Retitle or (un)check a task."""
        cid = self._known(customer_id)
        await self._edit(cid, lambda d: document.edit_task(d, task_id, title=title, done=done),
                         "tasks")

    async def delete_task(self, customer_id: str, task_id: str) -> None:
        """Delete a task."""
        cid = self._known(customer_id)
        await self._edit(cid, lambda d: document.delete_task(d, task_id), "tasks")

    async def move_task(self, customer_id: str, task_id: str, index: int) -> None:
        """Move a task to ``index`` in the list."""
        cid = self._known(customer_id)
        await self._edit(cid, lambda d: document.move_task(d, task_id, index), "tasks")

    async def add_comment(self, customer_id: str, text: str) -> None:
        """Append a comment by this rep."""
        cid = self._known(customer_id)
        author = self.username or ""
        await self._edit(cid, lambda d: document.add_comment(d, author, text, time.time()),
                         "comment")

    async def delete_customer(self, customer_id: str) -> None:
        """Tombstone a customer (restorable)."""
        cid = self._known(customer_id)
        await self._edit(cid, lambda d: document.set_deleted(d, True), "deleted")

    async def restore_customer(self, customer_id: str) -> None:
        """Undo a delete."""
        cid = self._known(customer_id)
        await self._edit(cid, lambda d: document.set_deleted(d, False), "restored")

    # --- conflicts ---------------------------------------------------------------------------

    async def resolve_conflict(self, customer_id: str, field: str, *, use_mine: bool) -> None:
        """Keep theirs (dismiss) or use mine (write my value again as a new change)."""
        cid = _check_customer_id(customer_id)
        doc_id = customer_doc_id(cid)
        conflict = self.replica.get_conflict(doc_id, field)
        if conflict is None:
            raise InvalidEdit(f"no open conflict on {field} for customer {cid}")
        if use_mine:
            await self.set_fields(cid, {field: conflict.mine})
        self.replica.resolve_conflict(conflict.id)
        self.bus.emit(ConflictResolved(cid, field, use_mine))

    # --- history (from the server) ---------------------------------------------------------

    async def history(self, customer_id: str, limit: int = 100) -> list[Version]:
        """A customer's versions on the server, newest first."""
        cid = _check_customer_id(customer_id)
        return await HistoryClient(self.authenticator()).history(cid, limit)

    async def version(self, customer_id: str, seq: int) -> dict[str, Any]:
        """The customer as it was right after change ``seq`` (JSON, with notes/tasks)."""
        cid = _check_customer_id(customer_id)
        return await HistoryClient(self.authenticator()).version(cid, seq)

    async def revert(self, customer_id: str, seq: int, field: str | None = None) -> None:
        """Bring back the customer (or one field) as it was at ``seq``, as a new change by
        this rep, so it syncs like any edit."""
        cid = self._known(customer_id)
        old = await self.version(cid, seq)
        values = document.fields_from_json(
            {k: v for k, v in old.items() if k in {*schema.field_names(), "address"}},
            partial=False,
        )
        if field is not None:
            if field not in schema.field_names():
                raise InvalidEdit(
                    f"unknown field {field!r}; fields: {', '.join(schema.field_names())}")
            await self.set_fields(cid, {field: values[field]})
            return
        author = self.username or ""

        def restore(doc: Doc[Any]) -> None:
            document.set_fields(doc, values, author=author)
            r = document.roots(doc)
            if document.is_deleted(doc) != bool(old.get("deleted")):
                document.set_deleted(doc, bool(old.get("deleted")))
            if str(r.notes) != old.get("notes", ""):
                document.replace_notes(doc, old.get("notes", ""))
            wanted = {t["id"]: t for t in old.get("tasks", [])}
            for task_id in list(r.tasks.keys()):
                if task_id not in wanted:
                    del r.tasks[task_id]
            for task_id, task in wanted.items():
                r.tasks[task_id] = Map({"title": task["title"], "done": task["done"],
                                        "order": task["order"]})

        await self._edit(cid, restore, f"revert to version {seq}")
