"""The marks beside the open customer's fields: "not yet synced" while an edit of the field
waits in the outbox, "saved" once the server acknowledged it.

The outbox is the truth (``core.pending_fields()`` names the fields its queued edits touch),
so a field edited before the customer was reopened, or before the app restarted, is marked
too. :class:`SyncMarks` remembers which fields it marked "not yet synced", to turn exactly
those to "saved" when their edits are acknowledged.
"""

from __future__ import annotations

from app.core import ClientCore
from ui.field_editor import FieldEditor, SyncMark

__all__ = ["SyncMarks"]


class SyncMarks:
    """The sync marks of a form's fields (``fields``: the form's editors, by field name)."""

    def __init__(self, core: ClientCore, fields: dict[str, FieldEditor]) -> None:
        self._core = core
        self._fields = fields
        self._unsynced: set[str] = set()

    def reset(self, customer_id: str) -> None:
        """A customer was just shown: no marks, then "not yet synced" where the outbox
        holds an edit."""
        self._unsynced.clear()
        for editor in self._fields.values():
            editor.set_sync_mark(SyncMark.NONE)
        self.mark_pending(customer_id)

    def committed(self, customer_id: str, field: str) -> None:
        """This rep's edit of ``field`` was stored: "not yet synced" while it waits in the
        outbox, else "saved"."""
        editor = self._fields[field]
        if field in self._core.pending_fields(customer_id):
            self._unsynced.add(field)
            editor.set_sync_mark(SyncMark.PENDING)
        else:
            editor.set_sync_mark(SyncMark.SAVED)

    def mark_pending(self, customer_id: str) -> None:
        """Mark "not yet synced" every field with an edit in the outbox, whenever it was
        made (this session, before a reopen or a restart: the outbox names its fields)."""
        for name in self._core.pending_fields(customer_id) - self._unsynced:
            if name in self._fields:
                self._unsynced.add(name)
                self._fields[name].set_sync_mark(SyncMark.PENDING)

    def outbox_changed(self, customer_id: str) -> None:
        """The outbox shrank or grew: fields whose edits were all acknowledged say
        "saved"; fields with a new queued edit say "not yet synced"."""
        pending = self._core.pending_fields(customer_id)
        for name in self._unsynced - pending:
            if name in self._fields:
                self._fields[name].set_sync_mark(SyncMark.SAVED)
        self._unsynced &= pending
        self.mark_pending(customer_id)
