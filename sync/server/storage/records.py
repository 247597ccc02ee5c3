"""The records every storage engine reads and writes: log entries, directory rows, commits.

Engine-neutral (no driver here): the hub builds them, the SQLite store
(``storage.sqlite.store``) and the Postgres writer (``storage.postgres.writer``) store them.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sync.protocol import schema
from sync.protocol.messages import DirectoryEntry, Notification

__all__ = ["Commit", "DirectoryRow", "LogEntry", "changes_json", "directory_columns"]


def directory_columns() -> tuple[str, ...]:
    """The directory's columns: the id, the field table's directory columns, then state."""
    return ("customer_id", *(f.name for f in schema.directory_fields()), "updated_at",
            "deleted", "cursor")


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One accepted update in the append-only log."""

    seq: int
    doc_id: str
    author: str
    session_id: str | None
    time: float
    changes: tuple[str, ...]
    data: bytes = b""


@functools.lru_cache(maxsize=4096)
def changes_json(changes: tuple[str, ...]) -> str:
    """A log entry's ``changes`` as the JSON the log stores (a handful of distinct tuples
    make up nearly every change: one ``json.dumps`` each, not one per update)."""
    return json.dumps(changes)


@dataclass(frozen=True, slots=True)
class DirectoryRow:
    """The directory projection of one customer (what lists and search show).

    ``fields`` maps each directory column of the field table to its value, in table order.
    """

    customer_id: str
    fields: dict[str, str | None]
    updated_at: float
    deleted: bool
    cursor: int

    @classmethod
    def of(
        cls, customer_id: str, values: Mapping[str, str | None], *, updated_at: float,
        deleted: bool, cursor: int,
    ) -> DirectoryRow:
        """The row of a customer whose field values are ``values`` (the directory columns
        of the field table are picked out; a missing one is null)."""
        fields = {f.name: values.get(f.name) for f in schema.directory_fields()}
        return cls(customer_id, fields, updated_at, deleted, cursor)

    def entry(self) -> DirectoryEntry:
        """The wire form of this row."""
        return DirectoryEntry(
            self.customer_id, self.fields, self.updated_at, self.deleted, self.cursor
        )

    def values(self) -> tuple[object, ...]:
        """The row's values in :func:`_directory_columns` order (for the upsert)."""
        return (self.customer_id, *self.fields.values(), self.updated_at, self.deleted,
                self.cursor)


@dataclass(slots=True)
class Commit:
    """What one accepted change writes, all in the same transaction."""

    entry: LogEntry | None = None
    directory: DirectoryRow | None = None
    notifications: Sequence[Notification] = ()
    expires_at: float = 0.0
    snapshot: tuple[str, int, bytes] | None = None
