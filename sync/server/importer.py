"""Bulk import of customer accounts (seed-000 JSON shape) into a server database.

Every record is validated before anything is written: one bad record means nothing is
imported, and the error names the record. Each customer becomes one logged update (its
first version, authored by ``import``) and a directory row, exactly as if it had been
created through the API, so clients sync it like any other change. Imports write no
notifications (a bulk load is not activity a rep needs to be told about).

On SQLite the import takes the server lock: it refuses to run while a server uses the
database (both would hand out sequence numbers). On Postgres (a ``postgresql://`` URL)
numbers are taken at commit, so it may run while nodes serve: they learn of the new
customers like of any other commit.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sync.protocol import document
from sync.protocol.errors import InvalidFieldValue
from sync.protocol.messages import customer_doc_id

from .errors import ImportFailed
from .lock import server_lock
from .storage import is_postgres_url
from .store import Commit, DirectoryRow, LogEntry, UpdateStore

__all__ = ["import_customers"]

log = logging.getLogger(__name__)

IMPORT_AUTHOR = "import"


def _validate(records: Sequence[Any]) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    seen: set[str] = set()
    for index, record in enumerate(records):
        where = f"record {index + 1}"
        if not isinstance(record, dict):
            raise ImportFailed(f"{where}: expected a JSON object, got {type(record).__name__}")
        raw_id = record.get("id")
        try:
            customer_id = str(uuid.UUID(str(raw_id))) if raw_id is not None else str(uuid.uuid4())
        except ValueError as exc:
            raise ImportFailed(f"{where}: id {raw_id!r} is not a UUID") from exc
        if customer_id in seen:
            raise ImportFailed(f"{where}: id {customer_id} appears twice in the file")
        seen.add(customer_id)
        try:
            values = document.fields_from_json(record, partial=False)
        except InvalidFieldValue as exc:
            raise ImportFailed(f"{where} ({customer_id}): {exc}") from exc
        out.append((customer_id, values))
    return out


def import_customers(db_path: Path | str, records: Sequence[Any]) -> int:
    """Validate and import customers; returns how many. Raises ImportFailed."""
    checked = _validate(records)
    if isinstance(db_path, str) and is_postgres_url(db_path):
        asyncio.run(_import_postgres(db_path, checked))
        log.info("imported %d customers into Postgres", len(checked))
        return len(checked)
    db_path = Path(db_path)
    with server_lock(db_path, purpose="import"):
        store = UpdateStore(db_path)
        try:
            existing = [cid for cid, _ in checked if store.directory_row(cid) is not None]
            if existing:
                raise ImportFailed(
                    f"{len(existing)} customer(s) already exist, e.g. {existing[0]}; "
                    "nothing was imported"
                )
            store.start()
            commits = [_commit(store, cid, values) for cid, values in checked]
            store.submit_many_sync(commits)
        finally:
            store.close()
    log.info("imported %d customers into %s", len(checked), db_path)
    return len(checked)


async def _import_postgres(url: str, checked: list[tuple[str, dict[str, Any]]]) -> None:
    """All customers in group-committed transactions (numbers taken at commit)."""
    from .storage.postgres.engine import PostgresEngine

    engine = PostgresEngine(url, node_id="import")
    await engine.start()
    try:
        existing = [cid for cid, _ in checked if await engine.directory_row(cid) is not None]
        if existing:
            raise ImportFailed(
                f"{len(existing)} customer(s) already exist, e.g. {existing[0]}; "
                "nothing was imported"
            )
        await asyncio.gather(*(engine.submit(_commit(None, cid, values))
                               for cid, values in checked))
    finally:
        await engine.close()


def _commit(store: UpdateStore | None, customer_id: str, values: dict[str, Any]) -> Commit:
    doc = document.new_document()
    with doc.transaction():
        document.set_fields(doc, values, author=IMPORT_AUTHOR)
        document.roots(doc).meta["created_by"] = IMPORT_AUTHOR
    now = time.time()
    seq = 0 if store is None else store.next_seq()  # None: numbered at commit
    update = doc.get_update()
    changes = tuple(k for k, v in values.items() if v is not None)
    return Commit(
        entry=LogEntry(seq, customer_doc_id(customer_id), IMPORT_AUTHOR, None, now, changes,
                       update),
        directory=DirectoryRow.of(customer_id, values, updated_at=now, deleted=False,
                                  cursor=seq),
    )
