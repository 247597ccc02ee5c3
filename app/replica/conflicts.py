"""The replica's conflicts and field versions.

``field_versions`` remembers the version and value of each field this client wrote that is
still current; :class:`app.documents.DocumentSet` compares it with the winning write's
stamp to detect a concurrent change, and records a :class:`Conflict` (at most one open per
field, newest values) for the rep to settle.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from ._file import ReplicaFile

__all__ = ["Conflict", "ConflictStore"]


@dataclass(frozen=True, slots=True)
class Conflict:
    """Two concurrent values of one field: ``mine`` (this client's) and ``theirs``."""

    id: int
    doc_id: str
    field: str
    mine: Any
    theirs: Any
    author: str
    time: float
    created_at: float
    resolved: bool


class ConflictStore:
    """Conflicts and field versions of one replica (a part of :class:`app.replica.Replica`)."""

    def __init__(self, replica: ReplicaFile) -> None:
        self._replica = replica

    # --- conflicts -----------------------------------------------------------------------

    def add(  # noqa: PLR0917 (the core's call shape)
        self, doc_id: str, field: str, mine: Any, theirs: Any, author: str, when: float
    ) -> int:
        """Record a conflict on a field; returns its id. An open conflict on the same
        field is updated instead (one open conflict per field, newest values)."""
        r = self._replica
        with r.transaction():
            row = r._conn().execute(
                "INSERT INTO conflicts (doc_id, field, mine, theirs, author, time, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (doc_id, field) WHERE resolved = 0"
                " DO UPDATE SET mine = excluded.mine, theirs = excluded.theirs,"
                " author = excluded.author, time = excluded.time RETURNING id",
                (doc_id, field, _json(mine), _json(theirs), author, when, time.time()),
            ).fetchone()
            conflict_id: int = row[0]
            return conflict_id

    def find(self, doc_id: str | None = None, include_resolved: bool = False) -> list[Conflict]:
        """Conflicts (open ones unless ``include_resolved``), oldest first."""
        where = ["1 = 1"]
        args: list[Any] = []
        if doc_id is not None:
            where.append("doc_id = ?")
            args.append(doc_id)
        if not include_resolved:
            where.append("resolved = 0")
        return self._select(" AND ".join(where), args)

    def get(self, doc_id: str, field: str) -> Conflict | None:
        """The open conflict on a field, or None."""
        found = self._select("doc_id = ? AND field = ? AND resolved = 0", [doc_id, field])
        return found[0] if found else None

    def _select(self, where: str, args: list[Any]) -> list[Conflict]:
        with self._replica._reading() as conn:
            rows = conn.execute(
                "SELECT id, doc_id, field, mine, theirs, author, time, created_at, resolved "  # noqa: S608
                f"FROM conflicts WHERE {where} ORDER BY id", args,
            ).fetchall()
        return [
            Conflict(r[0], r[1], r[2], json.loads(r[3]), json.loads(r[4]), r[5], r[6], r[7],
                     bool(r[8]))
            for r in rows
        ]

    def resolve(self, conflict_id: int) -> bool:
        """Mark a conflict resolved; False if it does not exist or was resolved already."""
        r = self._replica
        with r.transaction():
            return r._conn().execute(
                "UPDATE conflicts SET resolved = 1 WHERE id = ? AND resolved = 0", (conflict_id,)
            ).rowcount > 0

    # --- field versions ------------------------------------------------------------------

    def set_version(self, doc_id: str, field: str, version: str, value: Any) -> None:
        """Remember that this client wrote ``value`` as ``version`` of a field."""
        r = self._replica
        with r.transaction():
            r._conn().execute(
                "INSERT OR REPLACE INTO field_versions (doc_id, field, version, value) "
                "VALUES (?, ?, ?, ?)", (doc_id, field, version, _json(value)),
            )

    def version(self, doc_id: str, field: str) -> tuple[str, Any] | None:
        """(version, value) this client last wrote to a field, or None."""
        with self._replica._reading() as conn:
            row = conn.execute(
                "SELECT version, value FROM field_versions WHERE doc_id = ? AND field = ?",
                (doc_id, field),
            ).fetchone()
        return None if row is None else (row[0], json.loads(row[1]))

    def clear_version(self, doc_id: str, field: str) -> None:
        """Forget the version this client wrote to a field."""
        r = self._replica
        with r.transaction():
            r._conn().execute(
                "DELETE FROM field_versions WHERE doc_id = ? AND field = ?", (doc_id, field)
            )


def _json(value: Any) -> str:
    """JSON text of a field value (NaN and infinities are refused: JSON has none)."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False)
