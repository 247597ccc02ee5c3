"""Per-field write rules by role on every route, and one rule for customer ids (issue 11).

A ``customer`` account may change only ``schema.writable_by("customer")`` (its contact and
address fields), never ``tier``, notes, tasks or comments: HTTP PATCH answers 403
``write_forbidden`` naming the field, ``/ws`` answers an Error with that code for the
update (nothing kept, the connection stays usable), ``/yjs`` undoes the field for everyone
and refuses other parts. Ids: the seed's upper-case spelling names the same customer on
HTTP, ``/ws`` and ``/yjs``.
"""

from __future__ import annotations

import httpx
from pycrdt import Text

from sync.protocol import document, schema, yjs
from sync.protocol.errors import ErrorCode
from sync.protocol.messages import (
    Ack,
    Error,
    Subscribe,
    Subscribed,
    SyncStep1,
    Update,
    customer_doc_id,
)
from sync.protocol.yjs import YjsCloseCode

from .conftest import ServerHandle, both_engines, scaled
from .test_server_sync import join
from .test_yjs_endpoint import YClient
from .wire import WireClient, eventually

#: The customer id as seed 000 writes it.
SEED_ID = "46E216CA-9413-4E7E-B5C7-DFAA5AEADF9E"


def _setup(server: ServerHandle) -> tuple[httpx.Client, httpx.Client, str]:
    """A rep's and a customer's HTTP clients and the customer's id (created by the rep)."""
    server.add_user("rep")
    rep = httpx.Client(base_url=server.http_url, timeout=scaled(10),
                       headers={"Authorization": f"Bearer {server.token('rep')}"})
    created = rep.post("/customers", json={"name": "Ada", "tier": "basic",
                                           "address": {"city": "Oslo"}})
    cid = str(created.json()["id"])
    server.add_user("ada", role="customer", customer_id=cid)
    me = httpx.Client(base_url=server.http_url, timeout=scaled(10),
                      headers={"Authorization": f"Bearer {server.token('ada')}"})
    return rep, me, cid


def test_the_customer_role_may_write_exactly_its_fields() -> None:
    """The table gives customers their contact and address fields, not name or tier."""
    assert schema.writable_by("customer") == {
        "email", "phone", "street1", "street2", "city", "state", "zip"}
    assert schema.writable_roots("customer") == frozenset()
    assert schema.writable_by("rep") == set(schema.field_names())


@both_engines
def test_http_patch_of_a_forbidden_field_is_403_and_keeps_nothing(server: ServerHandle) -> None:
    """PATCH {city, tier} by a customer: 403 write_forbidden naming tier; city unchanged."""
    rep, me, cid = _setup(server)
    refused = me.patch(f"/customers/{cid}", json={"tier": "premium",
                                                   "address": {"city": "Bergen"}})
    assert refused.status_code == 403
    assert refused.json()["error"] == "write_forbidden"
    assert refused.json()["fields"] == ["tier"] and "tier" in refused.json()["message"]
    kept = rep.get(f"/customers/{cid}").json()
    assert kept["tier"] == "basic" and kept["address"]["city"] == "Oslo"
    allowed = me.patch(f"/customers/{cid}", json={"address": {"city": "Bergen"}})
    assert allowed.status_code == 200 and allowed.json()["address"]["city"] == "Bergen"


@both_engines
async def test_ws_update_of_a_forbidden_field_is_refused_and_the_connection_goes_on(
    server: ServerHandle,
) -> None:
    """/ws: Error(write_forbidden) for that ref, no Ack, nothing kept; the next update acks."""
    rep, _, cid = _setup(server)
    doc_id = customer_doc_id(cid)
    client = await WireClient.connect(server.ws_url, server.token("ada"))
    replica = await join(client, doc_id)
    await client.send(Update(doc_id, 1, replica.set(tier="premium", city="Bergen")))
    error = await client.expect(Error, lambda e: e.ref == 1)
    assert error.code is ErrorCode.WRITE_FORBIDDEN and "tier" in error.message
    replica = await join(client, doc_id)  # the resync a client does after a refusal
    with replica.doc.transaction():
        document.roots(replica.doc).notes.insert(0, "mine now")
    await client.send(Update(doc_id, 2, replica.updates[-1]))
    error = await client.expect(Error, lambda e: e.ref == 2)
    assert error.code is ErrorCode.WRITE_FORBIDDEN and "notes" in error.message
    replica = await join(client, doc_id)
    await client.send(Update(doc_id, 3, replica.set(city="Bergen")))
    await client.expect(Ack, lambda a: a.ref == 3)
    assert not client.received(Ack)
    data = rep.get(f"/customers/{cid}").json()
    assert data["tier"] == "basic" and data["address"]["city"] == "Bergen"
    assert rep.get(f"/customers/{cid}/versions/{data['version']}").json()["notes"] == ""
    await client.close()


@both_engines
async def test_yjs_update_of_a_forbidden_field_is_undone_for_everyone(
    server: ServerHandle,
) -> None:
    """/yjs: tier goes back (the writer gets the repair too), city stays; notes close 4403."""
    rep, _, cid = _setup(server)
    client = await YClient.connect(server, cid, server.token("ada"))
    await client.expect(yjs.SyncStep1)
    await client.sync()
    before = client.doc.get_state()
    document.set_fields(client.doc, {"tier": "premium", "city": "Bergen"})
    await client.ws.send(yjs.sync_update(client.doc.get_update(before)))
    await eventually(lambda: document.read_fields(client.doc)["tier"] == "basic")
    data = rep.get(f"/customers/{cid}").json()
    assert data["tier"] == "basic" and data["address"]["city"] == "Bergen"
    before = client.doc.get_state()
    with client.doc.transaction():
        client.doc.get("notes", type=Text).insert(0, "mine now")
    await client.ws.send(yjs.sync_update(client.doc.get_update(before)))
    assert await client.wait_closed() == YjsCloseCode.FORBIDDEN
    version = rep.get(f"/customers/{cid}").json()["version"]
    assert rep.get(f"/customers/{cid}/versions/{version}").json()["notes"] == ""


def _create_and_patch_by_the_seed_id(server: ServerHandle, token: str) -> None:
    with httpx.Client(base_url=server.http_url, timeout=scaled(10),
                      headers={"Authorization": f"Bearer {token}"}) as http:
        created = http.post("/customers", json={"id": SEED_ID, "name": "John Smith"})
        assert created.status_code == 201 and created.json()["id"] == SEED_ID.lower()
        assert http.get(f"/customers/{SEED_ID}").json()["name"] == "John Smith"
        patched = http.patch(f"/customers/{SEED_ID}", json={"phone": "555-0100"})
        assert patched.status_code == 200 and patched.json()["id"] == SEED_ID.lower()


async def test_the_seeds_upper_case_id_names_the_customer_on_every_route(
    server: ServerHandle,
) -> None:
    """HTTP, /ws and /yjs accept 46E216CA-… and mean the canonical lower-case customer."""
    server.add_user("rep")
    token = server.token("rep")
    _create_and_patch_by_the_seed_id(server, token)
    client = await WireClient.connect(server.ws_url, token)
    await client.send(Subscribe((f"customer:{SEED_ID}",)))
    subscribed = await client.expect(Subscribed)
    assert subscribed.docs == (customer_doc_id(SEED_ID.lower()),)
    await client.expect(SyncStep1, lambda m: m.doc == customer_doc_id(SEED_ID.lower()))
    await client.close()
    ydoc = await YClient.connect(server, SEED_ID, token)
    await ydoc.expect(yjs.SyncStep1)
    await ydoc.sync()
    assert document.read_fields(ydoc.doc)["phone"] == "555-0100"
    await ydoc.close()
