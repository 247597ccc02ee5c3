"""The Yjs endpoint (/yjs/{customer_id}) over real sockets, from a pycrdt-based client.

The real y-websocket provider under Node is tested in tests/interop; these tests send exact
frames to check the protocol rules of docs/protocol.md §10.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
import websockets
from pycrdt import Doc, Text
from websockets.asyncio.client import ClientConnection

from sync.protocol import document, yjs
from sync.protocol.errors import CloseCode
from sync.protocol.messages import Ack, RemoteUpdate, Update, customer_doc_id
from sync.protocol.yjs import YjsCloseCode

from .conftest import ServerHandle, both_engines, scaled
from .test_server_sync import join
from .wire import WireClient, eventually

Y = TypeVar("Y", bound=yjs.YMessage)


class YClient:
    """One y-websocket connection with a parsed inbox and a local pycrdt document."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.doc: Doc[Any] = document.new_document()
        self.inbox: list[yjs.YMessage] = []
        self.close_code: int | None = None
        self.closed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, server: ServerHandle, customer_id: str,
                      token: str | None = None) -> YClient:
        query = f"?token={token}" if token else ""
        ws = await websockets.connect(
            f"ws://127.0.0.1:{server.port}/yjs/{customer_id}{query}", max_size=None
        )
        return cls(ws)

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                assert isinstance(frame, bytes)
                message = yjs.parse(frame)
                if isinstance(message, (yjs.SyncStep2, yjs.SyncUpdate)):
                    self.doc.apply_update(message.update)
                self.inbox.append(message)
        except websockets.ConnectionClosed:
            pass
        finally:
            rcvd = self.ws.protocol.close_rcvd
            self.close_code = rcvd.code if rcvd else None
            self.closed.set()

    async def expect(self, kind: type[Y], where: Callable[[Y], bool] = lambda m: True) -> Y:
        """Wait for (and take) the first message of ``kind`` matching ``where``."""
        def find() -> Y | None:
            for i, message in enumerate(self.inbox):
                if isinstance(message, kind) and where(message):
                    del self.inbox[i]
                    return message
            assert not self.closed.is_set(), f"closed ({self.close_code}): {self.inbox}"
            return None
        found: Y = await eventually(find)
        return found

    async def sync(self) -> None:
        """Sync step 1 and wait for the step 2 answer."""
        await self.ws.send(yjs.sync_step1(self.doc.get_state()))
        await self.expect(yjs.SyncStep2)

    def notes(self) -> str:
        return str(self.doc.get("notes", type=Text))

    async def insert_note(self, index: int, text: str) -> bytes:
        """Type into the notes locally and send the update; returns it."""
        before = self.doc.get_state()
        with self.doc.transaction():
            self.doc.get("notes", type=Text).insert(index, text)
        update = self.doc.get_update(before)
        await self.ws.send(yjs.sync_update(update))
        return update

    async def wait_closed(self) -> int | None:
        await asyncio.wait_for(self.closed.wait(), scaled(10))
        return self.close_code

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()


def new_customer(server: ServerHandle, token: str, name: str = "Ada Lovelace") -> str:
    response = httpx.post(f"{server.http_url}/customers", json={"name": name},
                          headers={"Authorization": f"Bearer {token}"}, timeout=scaled(10))
    response.raise_for_status()
    return str(response.json()["id"])


def rep_with_customer(server: ServerHandle, name: str = "Ada Lovelace") -> tuple[str, str]:
    """A rep's access token and a new customer of that name."""
    server.add_user("rep")
    token = server.token("rep")
    return token, new_customer(server, token, name)


async def history(server: ServerHandle, cid: str, token: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=scaled(10)) as http:
        response = await http.get(f"{server.http_url}/customers/{cid}/history",
                                  headers={"Authorization": f"Bearer {token}"})
    items: list[dict[str, Any]] = response.json()["items"]
    return items


@both_engines
async def test_yjs_client_syncs_writes_and_gets_its_echo_after_the_commit(
    server: ServerHandle,
) -> None:
    token, cid = rep_with_customer(server)
    client = await YClient.connect(server, cid, token)
    await client.expect(yjs.SyncStep1)  # the server opens with its state vector
    await client.sync()
    assert document.read_fields(client.doc)["name"] == "Ada Lovelace"

    await client.insert_note(0, "called about billing")
    echo = await client.expect(yjs.SyncUpdate)
    assert b"called about billing" in echo.update
    # The echo came after the commit: the change is in the durable history already.
    newest = (await history(server, cid, token))[0]
    assert (newest["author"], newest["changes"]) == ("rep", ["notes"])
    await client.close()


@both_engines
async def test_native_and_yjs_clients_see_each_others_updates(server: ServerHandle) -> None:
    token, cid = rep_with_customer(server)
    doc_id = customer_doc_id(cid)
    native = await WireClient.connect(server.ws_url, token)
    replica = (await join(native, doc_id)).doc

    client = await YClient.connect(server, cid, token)
    await client.sync()
    await client.insert_note(0, "from yjs")
    remote = await native.expect(RemoteUpdate)
    replica.apply_update(remote.update)
    assert document.read_notes(replica) == "from yjs"

    before = replica.get_state()
    document.set_fields(replica, {"city": "Lyon"})
    await native.send(Update(doc_id, 1, replica.get_update(before)))
    await native.expect(Ack)
    await eventually(lambda: document.read_fields(client.doc)["city"] == "Lyon")
    await client.close()
    await native.close()


async def test_token_by_auth_message_releases_held_messages(server: ServerHandle) -> None:
    token, cid = rep_with_customer(server, "Grace Hopper")
    client = await YClient.connect(server, cid)
    await client.ws.send(yjs.sync_step1(client.doc.get_state()))  # held until authenticated
    await client.ws.send(yjs.auth_token(token))
    await client.expect(yjs.SyncStep2)
    assert document.read_fields(client.doc)["name"] == "Grace Hopper"
    await client.close()


async def test_denied_clients_get_permission_denied_and_no_content(server: ServerHandle) -> None:
    server.add_user("rep")
    rep = server.token("rep")
    own, other = new_customer(server, rep, "Own"), new_customer(server, rep, "Secret")
    server.add_user("cust", role="customer", customer_id=own)
    customer = server.token("cust")

    allowed = await YClient.connect(server, own, customer)
    await allowed.sync()
    assert document.read_fields(allowed.doc)["name"] == "Own"
    await allowed.close()

    # 44xx: codes the stock provider takes as final (no reconnect loop).
    for cid, token, code in ((other, customer, YjsCloseCode.FORBIDDEN),
                             (own, "not-a-token", YjsCloseCode.UNAUTHORIZED),
                             (own, rep + "x", YjsCloseCode.UNAUTHORIZED)):
        client = await YClient.connect(server, cid, token)
        denied = await client.expect(yjs.PermissionDenied)
        assert denied.reason
        assert await client.wait_closed() == code
        assert not any(isinstance(m, (yjs.SyncStep1, yjs.SyncStep2)) for m in client.inbox)
        assert document.read_fields(client.doc)["name"] is None

    client = await YClient.connect(server, "not-a-uuid", rep)
    await client.expect(yjs.PermissionDenied)
    assert await client.wait_closed() == YjsCloseCode.BAD_REQUEST


async def test_malformed_frames_close_without_changing_the_document(
    server: ServerHandle,
) -> None:
    token, cid = rep_with_customer(server)
    for frame in (b"\x00\x02\x05ab", b"\x09", b"\x00\x02\x03\xff\xff\xff", "text"):
        client = await YClient.connect(server, cid, token)
        await client.sync()
        await client.ws.send(frame)
        assert await client.wait_closed() == CloseCode.BAD_MESSAGE
    assert len(await history(server, cid, token)) == 1  # only the creation


async def test_awareness_is_relayed_to_everyone_and_cleared_on_close(
    server: ServerHandle,
) -> None:
    token, cid = rep_with_customer(server)
    first = await YClient.connect(server, cid, token)
    second = await YClient.connect(server, cid, token)
    await first.sync()
    await second.sync()
    state = '{"user":{"name":"José"}}'
    await first.ws.send(yjs.awareness_update([yjs.AwarenessEntry(41, 1, state)]))
    for client in (first, second):  # the sender too: the provider counts it as life
        got = await client.expect(yjs.AwarenessUpdate)
        assert got.entries == (yjs.AwarenessEntry(41, 1, state),)
    third = await YClient.connect(server, cid, token)
    initial = await third.expect(yjs.AwarenessUpdate)
    assert initial.entries[0].state == state

    await first.close()
    gone = await second.expect(yjs.AwarenessUpdate)
    assert gone.entries == (yjs.AwarenessEntry(41, 2, None),)
    await second.close()
    await third.close()


async def test_unauthenticated_yjs_connection_is_closed_at_the_deadline(
    server_factory: Any,
) -> None:
    server = server_factory("--auth-timeout", "1")
    client = await YClient.connect(server, str(uuid.uuid4()))
    await client.expect(yjs.PermissionDenied)
    assert await client.wait_closed() == YjsCloseCode.UNAUTHORIZED


async def test_field_values_that_break_the_rules_are_undone_for_everyone(
    server: ServerHandle,
) -> None:
    token, cid = rep_with_customer(server)
    client = await YClient.connect(server, cid, token)
    await client.sync()
    native = await WireClient.connect(server.ws_url, token)
    replica = (await join(native, customer_doc_id(cid))).doc

    before = client.doc.get_state()
    fields = document.roots(client.doc).fields
    with client.doc.transaction():  # what an app that checks nothing can write
        fields["email"] = 42
        fields["zip"] = "not a zip!!"
        fields["city"] = "Lyon"
    await client.ws.send(yjs.sync_update(client.doc.get_update(before)))

    await eventually(lambda: document.read_fields(client.doc)["zip"] is None)
    assert document.read_fields(client.doc)["email"] is None
    assert document.read_fields(client.doc)["city"] == "Lyon"  # the valid part stays
    remote = await native.expect(RemoteUpdate)
    replica.apply_update(remote.update)
    assert (document.read_fields(replica)["zip"], document.read_fields(replica)["city"]) == (
        None, "Lyon")
    async with httpx.AsyncClient(timeout=scaled(10)) as http:
        shown = (await http.get(f"{server.http_url}/customers/{cid}",
                                headers={"Authorization": f"Bearer {token}"})).json()
    assert shown["email"] is None and shown["address"]["zip"] is None
    await client.close()
    await native.close()
