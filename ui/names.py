"""How customers are named on screen, from the core (shared by the docks and dialogs)."""

from __future__ import annotations

import logging

from app.core import ClientCore
from app.errors import CoreError

__all__ = ["customer_id_of", "customer_name"]

log = logging.getLogger(__name__)

_DOC_PREFIX = "customer:"


def customer_id_of(doc_id: str) -> str:
    """The customer id of a document id ("customer:<uuid>" → "<uuid>")."""
    return doc_id.removeprefix(_DOC_PREFIX)


def customer_name(core: ClientCore, customer_id: str) -> str:
    """The customer's name as this replica holds it, or a short stand-in."""
    try:
        name = core.customer(customer_id).fields.get("name")
    except CoreError as exc:
        log.debug("no name for %s: %s", customer_id, exc)
        name = None
    return name or f"Customer {customer_id[:8]}"
