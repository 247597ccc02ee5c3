"""Failure modes seen in a popular Python Yjs server, which ours must not have: subscribers
churning during a broadcast make nobody miss an update, and many clients opening the same
not-yet-loaded document at the same instant all sync."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from sync.protocol.messages import (
    Ack,
    RemoteUpdate,
    Subscribe,
    Subscribed,
    SyncStep1,
    SyncStep2,
    Update,
)

from .conftest import scaled
from .test_server_sync import Replica, join, new_doc_id, rep
from .wire import WireClient

UPDATES = int(os.environ.get("LIVEEDIT_CHURN_UPDATES", "10000"))


async def test_churn_during_broadcast_makes_no_watcher_miss_an_update(
    server_factory: Any,
) -> None:
    """10,000 updates pushed while other clients connect, subscribe and drop: every steady
    watcher receives every one (merged per loop turn), in order, and ends with the writer's
    document."""
    server = server_factory("--rate-limit", "100000", "--rate-burst", "100000")
    doc_id = new_doc_id()
    writer = await rep(server, "writer")
    replica = await join(writer, doc_id)
    watchers = [await rep(server, f"watcher{i}") for i in range(5)]
    views = [await join(w, doc_id) for w in watchers]
    updates = [replica.set(name=f"v{i}") for i in range(UPDATES)]
    stop = asyncio.Event()

    async def churn() -> int:
        joined = 0
        while not stop.is_set():
            client = await rep(server, "churner")
            await client.send(Subscribe((doc_id,)))
            await client.expect(Subscribed)
            joined += 1
            await client.close()
        return joined

    churners = [asyncio.create_task(churn()) for _ in range(3)]
    for ref, update in enumerate(updates, start=1):
        await writer.send(Update(doc_id, ref, update))
    await writer.expect(Ack, lambda m: m.ref == UPDATES, timeout=120)
    stop.set()
    joined = sum(await asyncio.gather(*churners))
    final = replica.doc.get_state()
    for watcher, view in zip(watchers, views, strict=True):
        # The writer's updates of one loop turn come merged in one frame (hub.py): take
        # frames, in order, until the watcher holds everything the writer wrote.
        seqs = []
        while view.doc.get_state() != final:
            message = await watcher.expect(RemoteUpdate, timeout=60)
            seqs.append(message.seq)
            view.apply(message.update)
        assert seqs == sorted(set(seqs))
        assert view.fields()["name"] == f"v{UPDATES - 1}"
    assert joined > 0


async def test_fifty_clients_opening_an_unloaded_document_at_once_all_sync(
    server: Any,
) -> None:
    """50 clients subscribe to the same stored-but-unloaded document at the same instant;
    every one is subscribed and receives the full document."""
    doc_id = new_doc_id()
    author = await rep(server, "author")
    source = await join(author, doc_id)
    await author.send(Update(doc_id, 1, source.set(name="Loaded Once", city="Everywhere")))
    await author.expect(Ack)
    await author.close()
    server.stop()  # the next server starts with nothing in memory
    server.restart()
    server.add_user("crowd")
    token = server.token("crowd")
    clients = await asyncio.gather(*(WireClient.connect(server.ws_url, token)
                                     for _ in range(50)))
    await asyncio.gather(*(c.send(Subscribe((doc_id,))) for c in clients))

    async def sync(client: WireClient) -> dict[str, Any]:
        await client.expect(Subscribed, timeout=scaled(30))
        await client.expect(SyncStep1, lambda m: m.doc == doc_id)
        replica = Replica()
        await client.send(SyncStep1(doc_id, replica.doc.get_state()))
        step2 = await client.expect(SyncStep2, lambda m: m.doc == doc_id)
        replica.apply(step2.update)
        return replica.fields()

    views = await asyncio.gather(*(sync(c) for c in clients))
    assert all(v["name"] == "Loaded Once" and v["city"] == "Everywhere" for v in views)
