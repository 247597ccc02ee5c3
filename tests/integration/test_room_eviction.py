"""Room eviction over real sockets: documents nobody uses leave the server's memory
(``--room-idle-timeout``, ``--max-loaded-rooms``) and come back identical, with no gap for
their subscribers; HTTP reads do not pin them; snapshots keep their rhythm across reloads.

Evictions are seen in the server's debug log (``evicted N … ; M loaded``).
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from typing import Any

import httpx

from sync.protocol import document
from sync.protocol.messages import (
    Ack,
    RemoteUpdate,
    Subscribe,
    Subscribed,
    SyncStep1,
    SyncStep2,
    Unsubscribe,
    Update,
)

from .conftest import ServerHandle, scaled
from .test_server_sync import Replica, join, new_doc_id, rep
from .wire import WireClient, eventually

_LOADED = re.compile(r"evicted (\d+) .*; (\d+) loaded")

#: A short idle timeout, and debug logging to see evictions.
FAST_EVICTION = ("--room-idle-timeout", "0.3", "--log-level", "debug")


def loaded_after(server: ServerHandle, mark: int) -> int | None:
    """The loaded-room count of the newest eviction line after output line ``mark``."""
    for line in reversed(server.output[mark:]):
        match = _LOADED.search(line)
        if match:
            return int(match.group(2))
    return None


async def evicted_down_to(server: ServerHandle, mark: int, loaded: int) -> None:
    """Wait until the server logs an eviction leaving ``loaded`` rooms, after ``mark``."""
    await eventually(lambda: loaded_after(server, mark) == loaded, timeout=10)


async def send_all(client: WireClient, doc_id: str, updates: list[bytes], first_ref: int) -> int:
    """Send updates and wait for the last ack; returns its seq."""
    for ref, update in enumerate(updates, start=first_ref):
        await client.send(Update(doc_id, ref, update))
    last = first_ref + len(updates) - 1
    return (await client.expect(Ack, lambda m: m.ref == last, timeout=30)).seq


def everything(replica: Replica) -> dict[str, Any]:
    """What a document holds, comparable: fields, notes, tasks, comments, state vector."""
    doc = replica.doc
    return {
        "fields": document.read_fields(doc), "notes": document.read_notes(doc),
        "tasks": document.read_tasks(doc), "comments": document.read_comments(doc),
        "deleted": document.is_deleted(doc), "state": doc.get_state(),
    }


async def full_copy(client: WireClient, doc_id: str) -> tuple[Replica, int]:
    """Subscribe and take the server's whole document (SyncStep2 from an empty state)."""
    await client.send(Subscribe((doc_id,)))
    await client.expect(Subscribed)
    await client.expect(SyncStep1, lambda m: m.doc == doc_id)
    replica = Replica()
    await client.send(SyncStep1(doc_id, replica.doc.get_state()))
    step2 = await client.expect(SyncStep2, lambda m: m.doc == doc_id)
    replica.apply(step2.update)
    return replica, step2.seq


def rich_edits(replica: Replica) -> list[bytes]:
    """Edits of every root: fields, notes, tasks (add, tick, move), comments, tombstone."""
    doc = replica.doc
    start = len(replica.updates)
    document.set_fields(doc, {"name": "Grace Hopper", "city": "Arlington", "email": "g@x.org"})
    document.roots(doc).notes.insert(0, "Called about the invoice. ")
    first = document.add_task(doc, "send the contract")
    document.add_task(doc, "call back")
    document.edit_task(doc, first, done=True)
    document.move_task(doc, first, 1)
    document.add_comment(doc, "alex", "she prefers e-mail", 1.0)
    document.set_fields(doc, {"city": "Washington"})
    document.set_deleted(doc, True)
    document.set_deleted(doc, False)
    return replica.updates[start:]


async def test_an_evicted_document_reloads_identical(server_factory: Any) -> None:
    """Edit every root, let the room go idle and be evicted, open it again: the reloaded
    document equals the one evicted (content, state vector, seq)."""
    server = server_factory(*FAST_EVICTION)
    doc_id = new_doc_id()
    alex = await rep(server, "alex")
    replica = await join(alex, doc_id)
    last_seq = await send_all(alex, doc_id, rich_edits(replica), 1)
    reader = await rep(server, "reader")
    before, seq_before = await full_copy(reader, doc_id)
    assert everything(before) == everything(replica) and seq_before == last_seq

    mark = len(server.output)
    await alex.send(Unsubscribe((doc_id,)))
    await reader.close()
    await evicted_down_to(server, mark, 0)

    after, seq_after = await full_copy(alex, doc_id)
    assert everything(after) == everything(before)
    assert seq_after == seq_before


async def test_a_resumed_subscriber_sees_no_gap_across_an_eviction(
    server_factory: Any,
) -> None:
    """A subscriber drops (its session keeps the subscription), the document changes and is
    evicted meanwhile; on resume the subscriber's resync brings exactly what it missed and
    the live updates that follow build on it: same document as the writer, seqs rising."""
    server = server_factory(*FAST_EVICTION)
    doc_id = new_doc_id()
    writer = await rep(server, "writer")
    written = await join(writer, doc_id)
    watcher = await rep(server, "watcher", session_id="watcher-session-1")
    seen = await join(watcher, doc_id)
    seq1 = await send_all(writer, doc_id, [written.set(name="One")], 1)
    live = await watcher.expect(RemoteUpdate, lambda m: m.seq == seq1)
    seen.apply(live.update)

    await watcher.close()
    seq2 = await send_all(writer, doc_id, [written.set(city="Missed")], 2)
    mark = len(server.output)
    await writer.send(Unsubscribe((doc_id,)))
    await evicted_down_to(server, mark, 0)

    watcher = await rep(server, "watcher", session_id="watcher-session-1")
    assert watcher.welcome is not None and watcher.welcome.resumed
    assert watcher.welcome.subscriptions == (doc_id,)
    await watcher.send(SyncStep1(doc_id, seen.doc.get_state()))
    step2 = await watcher.expect(SyncStep2, lambda m: m.doc == doc_id)
    assert step2.seq == seq2 > seq1
    seen.apply(step2.update)
    assert seen.fields()["city"] == "Missed"

    await join(writer, doc_id, written)
    seq3 = await send_all(writer, doc_id, [written.set(city="After")], 3)
    live = await watcher.expect(RemoteUpdate, lambda m: m.doc == doc_id)
    assert live.seq == seq3 > seq2
    seen.apply(live.update)
    assert everything(seen) == everything(written)


async def test_http_reads_do_not_pin_documents(server_factory: Any) -> None:
    """Customers loaded by HTTP calls (create, search, get) are evicted once idle; the one a
    WebSocket subscriber holds stays, and keeps getting live changes."""
    server = server_factory(*FAST_EVICTION)
    server.add_user("alex")
    token = server.token("alex")
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=server.http_url, headers=auth,
                                 timeout=scaled(10)) as http:
        ids = []
        for i in range(20):
            created = await http.post("/customers", json={"name": f"Pinned Test {i}"})
            assert created.status_code == 201
            ids.append(created.json()["id"])
        listed = await http.get("/customers", params={"q": "pinned", "limit": 50})
        assert len(listed.json()["items"]) == 20
        holder = await WireClient.connect(server.ws_url, token)
        held = f"customer:{ids[0]}"
        await join(holder, held)
        mark = len(server.output)
        await evicted_down_to(server, mark, 1)

        patched = await http.patch(f"/customers/{ids[0]}", json={"address": {"city": "Live"}})
        assert patched.status_code == 200
        change = await holder.expect(RemoteUpdate, lambda m: m.doc == held)
        assert change.author == "alex"
        again = await http.get(f"/customers/{ids[7]}")  # reloaded from storage
        assert again.json()["name"] == "Pinned Test 7"


async def test_the_cap_evicts_idle_documents_and_they_come_back_right(
    server_factory: Any,
) -> None:
    """With --max-loaded-rooms 3, touching 12 customers keeps at most 3 idle ones loaded
    (plus the subscribed one); every customer still reads back its latest change, and the
    subscribed document is never evicted."""
    server = server_factory("--max-loaded-rooms", "3", "--log-level", "debug")
    server.add_user("alex")
    token = server.token("alex")
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=server.http_url, headers=auth,
                                 timeout=scaled(10)) as http:
        ids = [(await http.post("/customers", json={"name": f"Cap {i}"})).json()["id"]
               for i in range(12)]
        holder = await WireClient.connect(server.ws_url, token)
        held = f"customer:{ids[0]}"
        await join(holder, held)
        mark = len(server.output)
        for i, cid in enumerate(ids):
            city = {"address": {"city": f"C{i}"}}
            assert (await http.patch(f"/customers/{cid}", json=city)).is_success
        # Each load over the cap evicts the least recently used committed room at once.
        await eventually(lambda: (loaded_after(server, mark) or 99) <= 4)
        mark = len(server.output)
        for i, cid in enumerate(ids):  # each load evicts the least recently used at once
            body = (await http.get(f"/customers/{cid}")).json()
            assert (body["name"], body["address"]["city"]) == (f"Cap {i}", f"C{i}")
        counts = [int(m.group(2)) for line in server.output[mark:]
                  if (m := _LOADED.search(line))]
        assert counts and max(counts) <= 4
        await holder.expect(RemoteUpdate, lambda m: m.doc == held)  # its PATCH, live
        zip_code = {"address": {"zip": "12345"}}
        assert (await http.patch(f"/customers/{ids[0]}", json=zip_code)).is_success
        assert (await holder.expect(RemoteUpdate, lambda m: m.doc == held)).author == "alex"


async def test_snapshot_rhythm_survives_eviction(server_factory: Any) -> None:
    """300 updates in R log rows, eviction, 500 - R more: the snapshot due every 500
    updates is written at the last (the count since the last snapshot is not reset by a
    reload, which counts the R rows it read)."""
    server = server_factory(*FAST_EVICTION)
    doc_id = new_doc_id()
    alex = await rep(server, "alex")
    replica = await join(alex, doc_id)
    await send_all(alex, doc_id, [replica.set(name=f"v{i}") for i in range(300)], 1)
    mark = len(server.output)
    await alex.send(Unsubscribe((doc_id,)))
    await evicted_down_to(server, mark, 0)
    with sqlite3.connect(server.db_path) as conn:
        rows = conn.execute("SELECT COUNT(*) FROM updates WHERE doc_id = ?",
                            (doc_id,)).fetchone()[0]
    await join(alex, doc_id, replica)
    more = [replica.set(name=f"w{i}") for i in range(500 - rows)]
    last = await send_all(alex, doc_id, more, 301)

    def snapshot_seq() -> int | None:
        with sqlite3.connect(server.db_path) as conn:
            row = conn.execute("SELECT seq FROM snapshots WHERE doc_id = ?",
                               (doc_id,)).fetchone()
        return None if row is None else int(row[0])

    assert await eventually(snapshot_seq) == last
    await asyncio.sleep(0)
