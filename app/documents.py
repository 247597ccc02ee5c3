"""The customer documents this client holds, and the one path every change takes.

A **local edit** (:meth:`DocumentSet.edit`) runs the caller's function on the pycrdt
document inside one CRDT transaction, then writes the new document state, the outbox entry
(the update bytes to send) and the versions of the fields it wrote in **one SQLite
transaction** before returning: once it returns, a crash loses nothing, and the update is
sent once (the outbox entry leaves only on the server's ack).

A **remote change** (:meth:`DocumentSet.apply_remote`) integrates an update from the server
and stores the new state. Conflict detection (DESIGN.md, "Conflicts"): for each field whose
value changed, if this client wrote the value that was just replaced and the winning write's
stamp says it was *not* based on ours (``base`` is not our version), the two writes were
concurrent and ours lost: a conflict record is stored with both values, the winner's author
and time. The winning side sees no change of its value and records nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pycrdt import Doc, UndoManager

from sync.protocol import document, schema
from sync.protocol.messages import customer_doc_id, customer_id_of

from .events import ConflictRecorded, DocumentChanged, EventBus, Origin, OutboxChanged
from .outbox import ROOT_PARTS
from .replica import Replica, ReplicaError

__all__ = ["LOCAL_ORIGIN", "DocumentSet", "LocalChange"]

log = logging.getLogger(__name__)

#: Transaction origin of this client's own edits (what undo tracks).
LOCAL_ORIGIN = "local"
#: Edits closer together than this undo as one step (typing a word, not a letter).
UNDO_GROUP_MS = 600
#: Every part of a customer a change can touch (DocumentChanged.roots).
_ALL_ROOTS = frozenset({"fields", "notes", "tasks", "comments", "meta"})
#: The roots an outbox entry names besides its fields (:data:`app.outbox.ROOT_PARTS`).
_PART_ROOTS = frozenset(ROOT_PARTS)



@dataclass(frozen=True, slots=True)
class LocalChange:
    """A local edit that was stored: its outbox ``ref`` and what it changed."""

    ref: int
    customer_id: str
    update: bytes
    fields: frozenset[str]
    roots: frozenset[str]


class _Tracked(document.ChangeTracker):
    """One open document: its change tracker and this rep's undo manager."""

    def __init__(self, doc: Doc[Any]) -> None:
        super().__init__(doc)
        r = document.roots(doc)
        self._clock_skip = 0
        # Undo/redo of this rep's own edits only: the manager tracks "local" transactions;
        # remote changes (no origin) are never on its stacks (DESIGN: undo is per rep).
        self.undo = UndoManager(scopes=[r.fields, r.notes, r.tasks, r.meta, r.stamps],
                                capture_timeout_millis=UNDO_GROUP_MS,
                                timestamp=self._undo_clock)
        self.undo.include_origin(LOCAL_ORIGIN)

    def _undo_clock(self) -> int:
        return int(time.monotonic() * 1000) + self._clock_skip

    def new_undo_step(self) -> None:
        """Make the next edit its own undo step (pycrdt groups edits by time only)."""
        self._clock_skip += UNDO_GROUP_MS + 1


class DocumentSet:
    """Open documents by customer id, loaded from the replica on first use."""

    def __init__(self, replica: Replica, bus: EventBus, author: Callable[[], str]) -> None:
        self.replica = replica
        self.bus = bus
        self._author = author
        self._open: dict[str, _Tracked] = {}

    def _tracked(self, customer_id: str) -> _Tracked:
        tracked = self._open.get(customer_id)
        if tracked is None:
            doc = document.new_document()
            state = self.replica.load_document(customer_doc_id(customer_id))
            if state:
                doc.apply_update(state)
            tracked = _Tracked(doc)
            self._open[customer_id] = tracked
        return tracked

    def doc(self, customer_id: str) -> Doc[Any]:
        """The customer's document (empty if this replica has never seen it)."""
        return self._tracked(customer_id).doc

    def exists(self, customer_id: str) -> bool:
        """True when this customer's document is open or stored in the replica (a cheap
        check: the stored state is read once, when the document is opened)."""
        return customer_id in self._open or self.replica.has_document(
            customer_doc_id(customer_id))

    def edit(self, customer_id: str, fn: Callable[[Doc[Any]], object],
             summary: str = "", *, group: bool = False) -> LocalChange | None:
        """Apply a local edit durably (see the module docstring); None if nothing changed.

        ``fn`` may raise (e.g. InvalidFieldValue) before writing: then nothing changes.
        ``group``: may join the previous edit's undo step (typing); else its own step.
        """
        if not group:
            self._tracked(customer_id).new_undo_step()

        def run(doc: Doc[Any]) -> None:
            with doc.transaction(origin=LOCAL_ORIGIN):
                fn(doc)

        return self._local(customer_id, run, summary)

    def undo(self, customer_id: str) -> LocalChange | None:
        """Undo this rep's last edit of the customer (never another rep's); None if there
        is nothing to undo. Stored and sent like any edit."""
        tracked = self._tracked(customer_id)
        if not tracked.undo.can_undo():
            return None
        return self._local(customer_id, lambda _doc: tracked.undo.undo(), "undo")

    def redo(self, customer_id: str) -> LocalChange | None:
        """Redo what undo() took back; None if there is nothing to redo."""
        tracked = self._tracked(customer_id)
        if not tracked.undo.can_redo():
            return None
        return self._local(customer_id, lambda _doc: tracked.undo.redo(), "redo")

    def can_undo(self, customer_id: str) -> bool:
        """True when this rep has an edit of the customer to undo."""
        return self._tracked(customer_id).undo.can_undo()

    def can_redo(self, customer_id: str) -> bool:
        """True when there is an undone edit to redo."""
        return self._tracked(customer_id).undo.can_redo()

    def _local(self, customer_id: str, run: Callable[[Doc[Any]], object],
               summary: str) -> LocalChange | None:
        tracked = self._tracked(customer_id)
        doc = tracked.doc
        with tracked.tracking():
            run(doc)
            update = tracked.update
            if update is None:
                return None
            written = dict(tracked.fields)
            roots = frozenset(tracked.roots)
        doc_id = customer_doc_id(customer_id)
        fields = frozenset(written)
        me = self._author()
        current = document.read_fields(doc)
        values = {name: current.get(name) for name in fields}
        deleted = document.is_deleted(doc)
        with self._storing(customer_id):
            self.replica.save_document(doc_id, doc.get_update(), held=True)
            # What the rep would call changed: a new customer's empty fields are not.
            parts = {n for n, c in written.items() if c.get("oldValue") != c.get("newValue")}
            parts |= roots & _PART_ROOTS
            ref = self.replica.add_outbox(doc_id, update, summary or _summary(fields, roots),
                                          parts)
            for name in fields:
                stamp = document.read_stamp(doc, name)
                if stamp is not None and stamp.author == me:
                    self.replica.set_field_version(doc_id, name, stamp.version, values[name])
                else:  # undo brought back someone else's value: it is not ours to defend
                    self.replica.clear_field_version(doc_id, name)
            if fields or "meta" in roots:
                # Only what this edit wrote: the document may not have synced yet, and the
                # directory row from the server holds the rest.
                self.replica.upsert_local_directory(customer_id, values, deleted)
        self.bus.emit(DocumentChanged(customer_id, fields, roots, Origin.LOCAL, me,
                                      time.time(), values, deleted))
        self.bus.emit(OutboxChanged(self.replica.pending_changes().changes))
        return LocalChange(ref, customer_id, update, fields, roots)

    @contextmanager
    def _storing(self, customer_id: str) -> Iterator[None]:
        """One replica transaction for a change already in the open document. If it fails
        (disk full, read-only, locked), the open document is dropped too, so memory never
        holds what the file lacks: it reloads from the replica, and the change can be
        made or applied again."""
        try:
            with self.replica.transaction():
                yield
        except ReplicaError:
            self.forget(customer_id)
            raise

    def apply_remote(self, doc_id: str, update: bytes, *, author: str | None,
                     server_seq: int | None = None) -> bool:
        """Integrate an update from the server; True if it changed anything.

        Stores the new state (and ``server_seq``) and records conflicts (module docstring).
        """
        customer_id = customer_id_of(doc_id)
        tracked = self._tracked(customer_id)
        doc = tracked.doc
        with tracked.tracking():
            doc.apply_update(update)
            changed = tracked.update is not None
            fields = dict(tracked.fields)
            roots = frozenset(tracked.roots)
        if not changed:
            if server_seq is not None:
                # Nothing new (every held customer's SyncStep2 on a reconnect): only the
                # seq moves on, which the server can tell again, so no fsync.
                with self.replica.cache_transaction():
                    if not self.replica.set_server_seq(doc_id, server_seq):
                        self.replica.save_document(doc_id, doc.get_update(),
                                                   server_seq=server_seq)
            return False
        conflicts: list[ConflictRecorded] = []
        current = document.read_fields(doc)
        with self._storing(customer_id):
            self.replica.save_document(doc_id, doc.get_update(), server_seq=server_seq)
            for name in fields:
                conflict = self._check_conflict(doc, doc_id, name, current.get(name))
                if conflict is not None:
                    conflicts.append(conflict)
        winner_author = author
        for name in fields:
            stamp = document.read_stamp(doc, name)
            if stamp is not None and stamp.author:
                winner_author = stamp.author
        self.bus.emit(DocumentChanged(
            customer_id, frozenset(fields), roots, Origin.REMOTE, winner_author, time.time(),
            {name: current.get(name) for name in fields}, document.is_deleted(doc),
        ))
        for conflict in conflicts:
            self.bus.emit(conflict)
        return True

    def _check_conflict(self, doc: Doc[Any], doc_id: str, name: str,
                        theirs: str | None) -> ConflictRecorded | None:
        mine = self.replica.field_version(doc_id, name)
        if mine is None:
            return None
        my_version, my_value = mine
        stamp = document.read_stamp(doc, name)
        if stamp is None or stamp.version == my_version:
            return None  # our value is still the current one
        self.replica.clear_field_version(doc_id, name)
        if stamp.supersedes(my_version):
            return None  # the new value was written by someone who had seen ours
        if theirs == my_value:
            return None  # both wrote the same value: nothing to decide
        self.replica.add_conflict(doc_id, name, my_value, theirs, stamp.author, stamp.time)
        log.info("conflict on %s.%s: mine %r lost to %r by %s", doc_id, name, my_value,
                 theirs, stamp.author)
        return ConflictRecorded(customer_id_of(doc_id), name, my_value, theirs, stamp.author)

    def hold(self, customer_id: str) -> None:
        """Keep this customer's document offline and in sync (stored now, even if empty)."""
        doc_id = customer_doc_id(customer_id)
        if not self.replica.set_held(doc_id, True):
            self.replica.save_document(doc_id, self.doc(customer_id).get_update(), held=True)

    def reset(self, customer_id: str) -> int:
        """Start this customer's document over from the server's copy: the local state,
        its queued updates and field versions are dropped, and an empty document is held
        (its next sync brings the server's state). For an update the server refused for
        good (``write_forbidden``): this client's later updates build on it and would be
        refused too. Returns how many queued updates were dropped."""
        doc_id = customer_doc_id(customer_id)
        with self._storing(customer_id):
            dropped = self.replica.discard_document(doc_id)
            self.forget(customer_id)
            doc = self.doc(customer_id)
            self.replica.save_document(doc_id, doc.get_update(), held=True)
        values = document.read_fields(doc)
        self.bus.emit(DocumentChanged(
            customer_id, frozenset(values), _ALL_ROOTS, Origin.REMOTE, None,
            time.time(), values, document.is_deleted(doc),
        ))
        return dropped

    def forget(self, customer_id: str) -> None:
        """Drop an open document from memory (it reloads from the replica)."""
        self._open.pop(customer_id, None)


def _summary(fields: frozenset[str], roots: frozenset[str]) -> str:
    """Human text of what an edit touched, for the outbox view ("City, Zip", "notes")."""
    parts = [f.label for f in schema.fields() if f.name in fields]
    for root, label in (("notes", "notes"), ("tasks", "tasks"), ("comments", "comment"),
                        ("meta", "deleted/restored")):
        if root in roots:
            parts.append(label)
    return ", ".join(parts) or "change"


