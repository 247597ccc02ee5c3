"""Who may write what, enforced on every route (docs/protocol.md §7, "write_forbidden").

The field table (:mod:`sync.protocol.schema`) says which roles may write each field
(``writers``) and the document's other parts (``writable_roots``). HTTP checks a patch's
fields before applying it (``http_api.check_writable``); WebSocket updates are opaque CRDT
bytes, so :func:`check_writable` applies one to a copy of the document and looks at what
it changed. Only writers the table restricts pay for that (:func:`writes_everything` is
true for reps, whose updates take the usual path untouched).
"""

from __future__ import annotations

from typing import Any

from pycrdt import Doc

from sync.protocol import document, schema
from sync.protocol.schema import Role

__all__ = ["WriteRefused", "check_writable", "writes_everything"]


class WriteRefused(Exception):
    """The update changes what the writer's role may not write (``names``: the fields,
    then ``notes``/``tasks``/``comments``/``meta``). Nothing of it was integrated."""

    def __init__(self, message: str, names: tuple[str, ...]) -> None:
        super().__init__(message)
        self.names = names


_writes_all: tuple[tuple[schema.Field, ...], dict[Role, bool]] = ((), {})


def writes_everything(role: Role) -> bool:
    """True when the field table lets ``role`` write every field and every other root
    (remembered per table: this runs for every update)."""
    global _writes_all  # noqa: PLW0603 - a cache of a pure function of the table
    table = schema.fields()
    if _writes_all[0] is not table:
        _writes_all = (table, {})
    known = _writes_all[1].get(role)
    if known is None:
        known = _writes_all[1][role] = (
            schema.writable_by(role) == frozenset(schema.field_names())
            and schema.writable_roots(role) >= {"notes", "tasks", "comments", "meta"}
        )
    return known


def check_writable(doc: Doc[Any], update: bytes, writer: Role, *, fields_too: bool) -> None:
    """WriteRefused when ``update`` changes what ``writer`` may not write.

    Tried on a copy of the document first, so nothing of a refused update is ever in
    the room (only writers restricted by the field table pay for the copy).
    """
    scratch: Doc[Any] = Doc()
    document.roots(scratch)
    scratch.apply_update(doc.get_update())
    tracker = document.ChangeTracker(scratch)
    try:
        with tracker.tracking():
            try:
                scratch.apply_update(update)
            except (ValueError, RuntimeError):
                return  # not a valid update: apply_update says so the usual way
        names = document.forbidden_changes(
            tracker.fields if fields_too else (), tracker.roots, writer
        )
    finally:
        tracker.close()
    if names:
        raise WriteRefused(
            f"a {writer} account may not change {', '.join(names)}; nothing of this "
            "update was kept: resync the document", names,
        )
