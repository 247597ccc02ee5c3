"""The replica's documents and outbox: what a local edit writes in one transaction.

``documents`` holds the full pycrdt state of each customer held locally, whether it is
held (opened or pinned: kept offline and synced) and the last server ``seq`` merged into
it. ``outbox`` holds local updates not yet acknowledged by the server, oldest first; its
``ref`` is the protocol's client ``ref`` (never reused), ``attempts`` how many times the
sync engine sent it, ``parts`` which fields (and notes, tasks, comments, meta) it
changes. Logging: DEBUG for each queued entry.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..outbox import ChangeCounter, PendingChanges, decode_parts, encode_parts
from ._file import ReplicaFile

__all__ = ["DocumentStore", "OutboxEntry"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """A local update waiting for the server's Ack; ``ref`` is the protocol's client ref."""

    ref: int
    doc_id: str
    update: bytes
    created_at: float
    summary: str
    attempts: int
    #: Field names and :data:`app.outbox.ROOT_PARTS` this update changes.
    parts: frozenset[str] = frozenset()


class DocumentStore:
    """Documents and the outbox of one replica (a part of :class:`app.replica.Replica`)."""

    def __init__(self, replica: ReplicaFile) -> None:
        self._replica = replica
        # pending_changes() of the committed outbox: (counter, rows counted, highest ref).
        self._counted: tuple[ChangeCounter, int, int] | None = None

    # --- documents -----------------------------------------------------------------------

    def save_document(
        self, doc_id: str, state: bytes, *, held: bool | None = None,
        server_seq: int | None = None,
    ) -> None:
        """Store the full state of a document; ``held``/``server_seq`` None keep the
        current value (new documents: not held, seq 0)."""
        with self._replica.transaction():
            self._replica._conn().execute(
                "INSERT INTO documents (doc_id, state, held, server_seq, updated_at) "
                "VALUES (:doc, :state, coalesce(:held, 0), coalesce(:seq, 0), :now) "
                "ON CONFLICT (doc_id) DO UPDATE SET state = excluded.state, "
                "held = coalesce(:held, held), server_seq = coalesce(:seq, server_seq), "
                "updated_at = excluded.updated_at",
                {"doc": doc_id, "state": state, "held": None if held is None else int(held),
                 "seq": server_seq, "now": time.time()},
            )

    def load_document(self, doc_id: str) -> bytes | None:
        """The stored state of a document, or None if it is not here."""
        state: bytes | None = self._replica._one(
            "SELECT state FROM documents WHERE doc_id = ?", (doc_id,)
        )
        return state

    def discard_document(self, doc_id: str) -> int:
        """Forget a document: its state, its queued updates and the field versions this
        client wrote (it is fetched again from the server); returns how many queued
        updates went with it."""
        with self._replica.transaction():
            conn = self._replica._conn()
            dropped: int = conn.execute("DELETE FROM outbox WHERE doc_id = ?",
                                        (doc_id,)).rowcount
            conn.execute("DELETE FROM documents WHERE doc_id = ?", (doc_id,))
            conn.execute("DELETE FROM field_versions WHERE doc_id = ?", (doc_id,))
            return dropped

    def has_document(self, doc_id: str) -> bool:
        """True when the document is stored (without reading its state)."""
        return bool(self._replica._one("SELECT 1 FROM documents WHERE doc_id = ?", (doc_id,)))

    def set_server_seq(self, doc_id: str, seq: int) -> bool:
        """Record that the stored document has merged the server's ``seq`` (its state did
        not change); False if it is not stored."""
        with self._replica.transaction():
            cur = self._replica._conn().execute(
                "UPDATE documents SET server_seq = ? WHERE doc_id = ?", (seq, doc_id))
            return cur.rowcount > 0

    def held_documents(self) -> list[str]:
        """Ids of documents held offline (opened or pinned), sorted."""
        with self._replica._reading() as conn:
            rows = conn.execute("SELECT doc_id FROM documents WHERE held = 1 ORDER BY doc_id")
            return [r[0] for r in rows]

    def set_held(self, doc_id: str, held: bool) -> bool:
        """Mark a stored document held or not; False if it is not stored."""
        with self._replica.transaction():
            cur = self._replica._conn().execute(
                "UPDATE documents SET held = ? WHERE doc_id = ?", (int(held), doc_id)
            )
            return cur.rowcount > 0

    def server_seq(self, doc_id: str) -> int:
        """The last server seq merged into the document (0 if none or not stored)."""
        seq: int | None = self._replica._one(
            "SELECT server_seq FROM documents WHERE doc_id = ?", (doc_id,)
        )
        return seq or 0

    # --- outbox --------------------------------------------------------------------------

    def add_outbox(self, doc_id: str, update: bytes, summary: str,
                   parts: Iterable[str] | None = None) -> int:
        """Queue a local update; returns its ref (increasing, never reused). ``parts``: the
        field names and roots it changes (None: read from ``summary``)."""
        stored = None if parts is None else encode_parts(parts)
        with self._replica.transaction():
            ref: int = self._replica._conn().execute(
                'INSERT INTO outbox (doc_id, "update", created_at, summary, parts) '
                "VALUES (?, ?, ?, ?, ?) RETURNING ref",
                (doc_id, update, time.time(), summary, stored),
            ).fetchone()[0]
            log.debug("outbox: queued ref %d for %s (%s)", ref, doc_id, summary)
            return ref

    def outbox(self, limit: int | None = None) -> list[OutboxEntry]:
        """Queued updates, oldest first (at most ``limit``)."""
        return self._outbox("", (), limit)

    def outbox_for(self, doc_id: str) -> list[OutboxEntry]:
        """Queued updates of one document, oldest first."""
        return self._outbox(" WHERE doc_id = ?", (doc_id,), None)

    def _outbox(self, where: str, args: tuple[Any, ...], limit: int | None) -> list[OutboxEntry]:
        sql = 'SELECT ref, doc_id, "update", created_at, summary, attempts, parts FROM outbox'
        with self._replica._reading() as conn:
            rows = conn.execute(
                f"{sql}{where} ORDER BY ref LIMIT ?", (*args, -1 if limit is None else limit)
            ).fetchall()
        return [OutboxEntry(r[0], r[1], r[2], r[3], r[4], r[5], decode_parts(r[6], r[4]))
                for r in rows]

    def pending_parts(self, doc_id: str) -> frozenset[str]:
        """Every field name and root (notes, tasks, comments, meta) that queued updates of
        ``doc_id`` change; empty once all are acknowledged."""
        with self._replica._reading() as conn:
            rows = conn.execute("SELECT parts, summary FROM outbox WHERE doc_id = ?",
                                (doc_id,)).fetchall()
        out: set[str] = set()
        for parts, summary in rows:
            out |= decode_parts(parts, summary)
        return frozenset(out)

    def pending_changes(self) -> PendingChanges:
        """The outbox counted as a rep counts changes (:mod:`app.outbox`).

        Called after every edit and ack: rescanning the outbox each time made typing into
        a long outbox quadratic (10,000 keystrokes: minutes). The count of the committed
        outbox is kept; while the outbox only grew since (refs are never reused, so: as
        many rows as counted plus those above the highest ref counted), only the new rows
        are counted; after a removal it is counted again from the start."""
        sql = "SELECT doc_id, summary, created_at FROM outbox"
        with self._replica._reading() as conn:
            rows, top = conn.execute(
                "SELECT count(*), coalesce(max(ref), 0) FROM outbox").fetchone()
            counted = self._counted
            counter: ChangeCounter | None = None
            if counted is not None and counted[1] <= rows:
                new = conn.execute(f"{sql} WHERE ref > ? ORDER BY ref", (counted[2],)).fetchall()
                if counted[1] + len(new) == rows:
                    counter = counted[0]
                    for row in new:
                        counter.add(*row)
            if counter is None:
                counter = ChangeCounter()
                for row in conn.execute(f"{sql} ORDER BY ref"):
                    counter.add(*row)
            # Inside a transaction the rows may yet be rolled back: not kept.
            self._counted = None if conn.in_transaction else (counter, rows, top)
        return counter.result()

    def remove_outbox(self, ref: int) -> bool:
        """Drop an acknowledged update; False if there was no such ref."""
        with self._replica.transaction():
            cur = self._replica._conn().execute("DELETE FROM outbox WHERE ref = ?", (ref,))
            return cur.rowcount > 0

    def outbox_count(self) -> int:
        """How many updates are queued."""
        count: int = self._replica._one("SELECT count(*) FROM outbox")
        return count

    def mark_attempt(self, refs: Iterable[int]) -> None:
        """Count one more sending attempt for each of ``refs`` (the sync engine calls it
        for every entry it sends; the outbox view shows "sent N times")."""
        with self._replica.cache_transaction():
            self._replica._conn().executemany(
                "UPDATE outbox SET attempts = attempts + 1 WHERE ref = ?", ((r,) for r in refs)
            )
