"""The layout of a customer document: its pycrdt roots (DESIGN.md, "The customer document").

``fields`` (Map), ``notes`` (Text), ``tasks`` (Map), ``comments`` (Array), ``meta`` (Map),
``stamps`` (Map): see :mod:`sync.protocol.document` for what each holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pycrdt import Array, Doc, Map, Text

__all__ = ["Roots", "new_document", "roots"]


@dataclass(frozen=True, slots=True)
class Roots:
    """The shared types of one customer document."""

    fields: Map[Any]
    notes: Text
    tasks: Map[Any]
    comments: Array[Any]
    meta: Map[Any]
    stamps: Map[Any]


#: The attribute that caches a document's Roots on the Doc itself. A root never changes
#: identity, and ``Doc.get`` (six per call) was the largest single cost of the server's
#: per-update path. (Not a WeakKeyDictionary: each root refers to its Doc, so the value
#: would keep the key alive; on the Doc it is an ordinary collectable cycle.)
_ROOTS_ATTR = "_liveedit_roots"


def roots(doc: Doc[Any]) -> Roots:
    """The document's root types, declared if this document has not seen them yet."""
    found: Roots | None = getattr(doc, _ROOTS_ATTR, None)
    if found is None:
        found = Roots(
            fields=doc.get("fields", type=Map),
            notes=doc.get("notes", type=Text),
            tasks=doc.get("tasks", type=Map),
            comments=doc.get("comments", type=Array),
            meta=doc.get("meta", type=Map),
            stamps=doc.get("stamps", type=Map),
        )
        setattr(doc, _ROOTS_ATTR, found)
    return found


def new_document() -> Doc[Any]:
    """An empty customer document with its roots declared."""
    doc: Doc[Any] = Doc()
    roots(doc)
    return doc
