"""The local replica: one SQLite file per user profile holding everything the app keeps.

Documents (full pycrdt state), the outbox of local updates not yet acknowledged, the
customer directory with full-text search, notifications, conflicts and settings live in
one file, so a local edit and its outbox entry commit together: ::

    with replica.transaction():
        replica.save_document(doc_id, state)
        ref = replica.add_outbox(doc_id, update, "City, Zip")

The file, its transactions and settings are :class:`ReplicaFile` (``_file``); the schema
and migrations are :mod:`app.replica.schema`. Each part has its own store over the same
file and transaction: :class:`~app.replica.documents.DocumentStore` (documents and
outbox), :class:`~app.replica.directory.DirectoryStore` (directory and search),
:class:`~app.replica.notifications.NotificationStore`,
:class:`~app.replica.conflicts.ConflictStore` (conflicts and field versions).
:class:`Replica` is the thin facade the core uses: it owns the stores and forwards to them.

Errors: :class:`ReplicaError` (message says what to do). Logging: INFO when a replica is
opened or migrated, DEBUG for directory and outbox batches.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import sqlite_utils

from sync.protocol.messages import DirectoryEntry, DirectoryRows, Notification

from ..outbox import PendingChanges
from ._file import ReplicaError, ReplicaFile
from .conflicts import Conflict, ConflictStore
from .directory import DirectoryRow, DirectoryStore, digit_terms, fts_query
from .documents import DocumentStore, OutboxEntry
from .notifications import NotificationStore, StoredNotification

__all__ = [
    "Conflict",
    "DirectoryRow",
    "OutboxEntry",
    "Replica",
    "ReplicaError",
    "StoredNotification",
    "digit_terms",
    "fts_query",
]


class Replica(ReplicaFile):
    """The local SQLite replica of one user profile. Create it with :meth:`open`."""

    def __init__(self, db: sqlite_utils.Database, path: Path) -> None:
        super().__init__(db, path)
        self.document_store = DocumentStore(self)
        self.directory_store = DirectoryStore(self)
        self.notification_store = NotificationStore(self)
        self.conflict_store = ConflictStore(self)

    # --- documents and outbox ------------------------------------------------------------

    def save_document(self, doc_id: str, state: bytes, *, held: bool | None = None,
                      server_seq: int | None = None) -> None:
        """See :meth:`DocumentStore.save_document`."""
        self.document_store.save_document(doc_id, state, held=held, server_seq=server_seq)

    def load_document(self, doc_id: str) -> bytes | None:
        """See :meth:`DocumentStore.load_document`."""
        return self.document_store.load_document(doc_id)

    def discard_document(self, doc_id: str) -> int:
        """See :meth:`DocumentStore.discard_document`."""
        return self.document_store.discard_document(doc_id)

    def has_document(self, doc_id: str) -> bool:
        """See :meth:`DocumentStore.has_document`."""
        return self.document_store.has_document(doc_id)

    def set_server_seq(self, doc_id: str, seq: int) -> bool:
        """See :meth:`DocumentStore.set_server_seq`."""
        return self.document_store.set_server_seq(doc_id, seq)

    def held_documents(self) -> list[str]:
        """See :meth:`DocumentStore.held_documents`."""
        return self.document_store.held_documents()

    def set_held(self, doc_id: str, held: bool) -> bool:
        """See :meth:`DocumentStore.set_held`."""
        return self.document_store.set_held(doc_id, held)

    def server_seq(self, doc_id: str) -> int:
        """See :meth:`DocumentStore.server_seq`."""
        return self.document_store.server_seq(doc_id)

    def add_outbox(self, doc_id: str, update: bytes, summary: str,
                   parts: Iterable[str] | None = None) -> int:
        """See :meth:`DocumentStore.add_outbox`."""
        return self.document_store.add_outbox(doc_id, update, summary, parts)

    def pending_parts(self, doc_id: str) -> frozenset[str]:
        """See :meth:`DocumentStore.pending_parts`."""
        return self.document_store.pending_parts(doc_id)

    def outbox(self, limit: int | None = None) -> list[OutboxEntry]:
        """See :meth:`DocumentStore.outbox`."""
        return self.document_store.outbox(limit)

    def outbox_for(self, doc_id: str) -> list[OutboxEntry]:
        """See :meth:`DocumentStore.outbox_for`."""
        return self.document_store.outbox_for(doc_id)

    def remove_outbox(self, ref: int) -> bool:
        """See :meth:`DocumentStore.remove_outbox`."""
        return self.document_store.remove_outbox(ref)

    def outbox_count(self) -> int:
        """See :meth:`DocumentStore.outbox_count`."""
        return self.document_store.outbox_count()

    def pending_changes(self) -> PendingChanges:
        """See :meth:`DocumentStore.pending_changes`."""
        return self.document_store.pending_changes()

    def mark_attempt(self, refs: Iterable[int]) -> None:
        """See :meth:`DocumentStore.mark_attempt`."""
        self.document_store.mark_attempt(refs)

    # --- directory -----------------------------------------------------------------------

    def apply_directory(self, entries: Iterable[DirectoryEntry]) -> int:
        """See :meth:`DirectoryStore.apply`."""
        return self.directory_store.apply(entries)

    def stage_directory(self, rows: DirectoryRows) -> None:
        """See :meth:`DirectoryStore.stage`."""
        self.directory_store.stage(rows)

    def finish_directory_load(self) -> int:
        """See :meth:`DirectoryStore.finish_load`."""
        return self.directory_store.finish_load()

    def directory_is_empty(self) -> bool:
        """See :meth:`DirectoryStore.is_empty`."""
        return self.directory_store.is_empty()

    def upsert_local_directory(self, customer_id: str, fields: Mapping[str, Any],
                               deleted: bool) -> None:
        """See :meth:`DirectoryStore.upsert_local`."""
        self.directory_store.upsert_local(customer_id, fields, deleted)

    def search(  # noqa: PLR0917 (positional query/limit/offset are the public shape)
        self, query: str, limit: int = 50, offset: int = 0, include_deleted: bool = False,
        order_by: str = "name", descending: bool = False,
    ) -> list[DirectoryRow]:
        """See :meth:`DirectoryStore.search`."""
        return self.directory_store.search(query, limit, offset, include_deleted, order_by,
                                           descending)

    def count(self, query: str, include_deleted: bool = False) -> int:
        """See :meth:`DirectoryStore.count`."""
        return self.directory_store.count(query, include_deleted)

    def deleted_customers(self, query: str = "", limit: int = 200) -> list[DirectoryRow]:
        """See :meth:`DirectoryStore.deleted`."""
        return self.directory_store.deleted(query, limit)

    def get_directory(self, customer_id: str) -> DirectoryRow | None:
        """See :meth:`DirectoryStore.get`."""
        return self.directory_store.get(customer_id)

    # --- notifications -------------------------------------------------------------------

    def add_notifications(self, items: Iterable[Notification], *, offline: bool) -> int:
        """See :meth:`NotificationStore.add`."""
        return self.notification_store.add(items, offline=offline)

    def notifications(self, limit: int = 100,
                      unread_only: bool = False) -> list[StoredNotification]:
        """See :meth:`NotificationStore.latest`."""
        return self.notification_store.latest(limit, unread_only)

    def mark_read(self, seqs: Iterable[int]) -> None:
        """See :meth:`NotificationStore.mark_read`."""
        self.notification_store.mark_read(seqs)

    # --- conflicts and field versions ----------------------------------------------------

    def add_conflict(  # noqa: PLR0917 (the core's call shape)
        self, doc_id: str, field: str, mine: Any, theirs: Any, author: str, time: float
    ) -> int:
        """See :meth:`ConflictStore.add`."""
        return self.conflict_store.add(doc_id, field, mine, theirs, author, time)

    def conflicts(self, doc_id: str | None = None,
                  include_resolved: bool = False) -> list[Conflict]:
        """See :meth:`ConflictStore.find`."""
        return self.conflict_store.find(doc_id, include_resolved)

    def get_conflict(self, doc_id: str, field: str) -> Conflict | None:
        """See :meth:`ConflictStore.get`."""
        return self.conflict_store.get(doc_id, field)

    def resolve_conflict(self, conflict_id: int) -> bool:
        """See :meth:`ConflictStore.resolve`."""
        return self.conflict_store.resolve(conflict_id)

    def set_field_version(self, doc_id: str, field: str, version: str, value: Any) -> None:
        """See :meth:`ConflictStore.set_version`."""
        self.conflict_store.set_version(doc_id, field, version, value)

    def field_version(self, doc_id: str, field: str) -> tuple[str, Any] | None:
        """See :meth:`ConflictStore.version`."""
        return self.conflict_store.version(doc_id, field)

    def clear_field_version(self, doc_id: str, field: str) -> None:
        """See :meth:`ConflictStore.clear_version`."""
        self.conflict_store.clear_version(doc_id, field)
