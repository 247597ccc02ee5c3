"""Hostile frames over a real WebSocket to the real server (docs/protocol.md §2, §5, §7, §8).

Hypothesis draws frames that an authenticated, subscribed client sends: random bytes,
mutated valid encodings, valid messages in the wrong state or with hostile values (garbage
and hostile CRDT updates, bogus state vectors, deep nesting, invalid UTF-8, presence maps
at their limits, oversized frames). After every example:

- the attacker got only documented Error codes (never ``internal_error``) and either
  answered a Heartbeat (not stuck) or was closed with a documented close code;
- the server process is alive and a second, healthy client (subscribed to the shared
  document and the directory feed) decodes everything it is sent and syncs afresh;
- the shared document is unchanged unless the attacker's update was acked (or a part of
  an invalid one was integrated, logged and fanned out), and what the server serves from
  memory equals what its log rebuilds (``/customers/{id}/versions/{seq}``).

The examples run on one module-scoped server and one event loop (``asyncio.Runner``), so
connections survive between examples; the counts are printed at the end.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgpack
import pytest
import websockets
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pycrdt import Array, Doc, Map, Text

from sync.protocol import document, schema
from sync.protocol.errors import CloseCode, ErrorCode, MalformedMessage
from sync.protocol.messages import (
    DIRECTORY_FEED,
    PROTOCOL_VERSION,
    Ack,
    Authenticate,
    DirectorySubscribe,
    Error,
    Heartbeat,
    HeartbeatAck,
    Message,
    Presence,
    ReadNotifications,
    RemoteUpdate,
    RenewToken,
    Subscribe,
    Subscribed,
    SyncStep1,
    SyncStep2,
    Unsubscribe,
    Update,
    Welcome,
    customer_doc_id,
    decode,
    encode,
)
from tests.integration.conftest import ServerHandle, scaled
from tests.integration.wire import WireClient
from tests.unit.protocol.strategies import MESSAGES, presence_states

from .conftest import examples

SHARED_ID = "6d1f0f0e-3b1a-4c55-9d2e-0a1b2c3d4e5f"
SHARED = customer_doc_id(SHARED_ID)
NOT_SUBSCRIBED = customer_doc_id("0b0e5a57-1c2d-4e3f-8a9b-0c1d2e3f4a5b")
FRAME_LIMIT = 65536
INT64 = 2**63 - 1
#: Close codes a hostile client may earn (§8); 1011 and 1013 would mean a server fault.
ALLOWED_CLOSE = {
    CloseCode.MESSAGE_TOO_BIG, CloseCode.BAD_MESSAGE, CloseCode.AUTH_FAILED,
    CloseCode.TOKEN_EXPIRED, CloseCode.ACCESS_REVOKED, CloseCode.PROTOCOL_VIOLATION,
    CloseCode.RATE_LIMITED,
}

Frame = bytes | str


# --- strategies ---------------------------------------------------------------------------


def _varuint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


@st.composite
def crdt_updates(draw: st.DrawFn) -> bytes:
    """Valid pycrdt updates from a fresh client, many with values the schema forbids."""
    client_id = draw(st.integers(1, 2**32))  # fixed ids: hypothesis replays exact bytes
    doc: Doc[Any] = Doc(client_id=client_id)
    r = document.roots(doc)
    kind = draw(st.sampled_from([
        "field", "huge_field", "non_text", "notes", "task", "comment", "tombstone",
        "foreign_root", "fields_as_array", "nested_map",
    ]))
    with doc.transaction():
        if kind == "field":
            name = draw(st.sampled_from(list(schema.field_names())))
            r.fields[name] = draw(st.text(max_size=40))
        elif kind == "huge_field":
            r.fields[draw(st.sampled_from(["name", "city", "email"]))] = "Z" * draw(
                st.integers(513, 20_000))
        elif kind == "non_text":
            r.fields["city"] = draw(st.one_of(st.integers(-INT64, INT64), st.booleans(),
                                              st.floats(allow_nan=False)))
        elif kind == "notes":
            r.notes.insert(0, draw(st.text(min_size=1, max_size=200)))
        elif kind == "task":
            r.tasks[draw(st.text(max_size=20))] = Map({"title": draw(st.text(max_size=30)),
                                                      "order": draw(st.floats())})
        elif kind == "comment":
            r.comments.append(Map({"text": draw(st.text(max_size=50)), "time": "later"}))
        elif kind == "tombstone":
            r.meta["deleted"] = draw(st.one_of(st.booleans(), st.text(max_size=5)))
        elif kind == "foreign_root":
            doc.get("evil", type=Text).insert(0, "x")
        elif kind == "nested_map":
            r.fields["name"] = Map({"a": Map({"b": Array([1, 2, 3])})})
    if kind == "fields_as_array":
        other: Doc[Any] = Doc(client_id=client_id)
        other.get("fields", type=Array).append("not a map")
        return other.get_update()
    return doc.get_update()


@st.composite
def mutated(draw: st.DrawFn, base: bytes) -> bytes:
    """``base`` with 1-4 byte flips, insertions, deletions or a truncation."""
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif op == "delete" and data:
            del data[at]
        elif op == "truncate":
            del data[at:]
    return bytes(data)


bogus_state_vectors = st.one_of(
    st.binary(max_size=64),
    st.tuples(st.integers(0, 2**53), st.integers(0, INT64)).map(
        lambda t: b"\x01" + _varuint(t[0]) + _varuint(t[1])),
    st.just(b"\xff" * 20),
)
refs = st.integers(0, INT64)

#: Client messages aimed at the shared document, with hostile contents.
hostile_messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(Update, st.just(SHARED), refs, st.binary(max_size=512)),
    st.builds(Update, st.just(SHARED), refs, crdt_updates()),
    crdt_updates().flatmap(mutated).map(lambda u: Update(SHARED, 1, u)),
    st.builds(Update, st.just(NOT_SUBSCRIBED), refs, crdt_updates()),
    st.builds(SyncStep1, st.just(SHARED), bogus_state_vectors),
    st.builds(SyncStep1, st.just(NOT_SUBSCRIBED), bogus_state_vectors),
    st.builds(Presence, st.just(SHARED), st.none() | presence_states),
    st.builds(Presence, st.just(SHARED), st.just(
        {f"k{i:02d}" + "x" * 61: "v" * 256 for i in range(16)})),
    st.builds(Presence, st.just(NOT_SUBSCRIBED), presence_states),
    st.builds(Subscribe, st.lists(st.uuids().map(lambda u: customer_doc_id(str(u))),
                                  max_size=30).map(tuple)),
    st.just(Subscribe((DIRECTORY_FEED, SHARED))),
    st.just(Unsubscribe((SHARED,))),
    st.builds(ReadNotifications, refs, st.integers(1, 5000)),
    st.builds(DirectorySubscribe, refs),
    st.builds(RenewToken, st.text(max_size=300)),
    st.builds(Heartbeat, refs),
    st.builds(HeartbeatAck, refs),
)
#: Every message kind, valid in shape, most of them wrong for a client or for the state.
any_kind: st.SearchStrategy[Message] = st.one_of(*MESSAGES.values())


def _nested(depth: int) -> bytes:
    return b"\x91" * depth + b"\x01"


raw_frames: st.SearchStrategy[Frame] = st.one_of(
    st.binary(max_size=2048),
    st.text(max_size=100),  # a text frame
    st.integers(1, 200_000).map(_nested),
    st.integers(1, 5000).map(lambda d: msgpack.packb([22, SHARED, 1, None]) + _nested(d)),
    st.just(b"\x93\x16\xd9\x2d" + b"customer:\xff\xfe" + b"0" * 34 + b"\x01\xc4\x00"),
    st.just(b"\x92\x46\xd9\x03\xed\xa0\x80"),  # a surrogate in a str: invalid UTF-8
    st.integers(FRAME_LIMIT + 1, 2 * FRAME_LIMIT - 100).map(
        lambda n: encode(Update(SHARED, 1, b"\x00" * n))),
    st.just(msgpack.packb([70, 2**64 - 1])),
    st.just(msgpack.packb([70, -1])),
    st.just(msgpack.packb([True, 1])),
    st.just(msgpack.packb([30, SHARED, {1: 2}], strict_types=False)),
    st.just(msgpack.packb([30, SHARED, {"k": float("nan")}])),
    st.just(msgpack.ExtType(1, b"x")).map(lambda e: msgpack.packb([70, e])),
)

frames: st.SearchStrategy[Frame] = st.one_of(
    hostile_messages.map(encode),  # listed twice: most frames decode and reach a handler
    hostile_messages.map(encode),
    hostile_messages.map(encode).flatmap(mutated),
    any_kind.map(encode),
    any_kind.map(encode).flatmap(mutated),
    raw_frames,
)


# --- the arena: one server, one loop, an attacker and an observer ---------------------------


def _shared_update_refs(sent: list[Frame]) -> set[int]:
    """The refs of the decodable Updates to the shared document among ``sent``."""
    refs: set[int] = set()
    for frame in sent:
        try:
            message = decode(frame, FRAME_LIMIT) if isinstance(frame, bytes) else None
        except MalformedMessage:
            return refs  # the connection closes here: later frames are not processed
        if message is None:
            return refs
        if isinstance(message, Update) and message.doc == SHARED:
            refs.add(message.ref)
    return refs


def snapshot(update: bytes) -> dict[str, Any]:
    """The shared document as the versions endpoint shows it (fields, notes, tasks, …)."""
    doc = document.new_document()
    doc.apply_update(update)
    data = document.to_json(SHARED_ID, doc)
    data["notes"] = document.read_notes(doc)
    data["tasks"] = [{"id": t.id, "title": t.title, "done": t.done, "order": t.order}
                     for t in document.read_tasks(doc)]
    data["comments"] = [{"id": c.id, "author": c.author, "time": c.time, "text": c.text}
                        for c in document.read_comments(doc)]
    return data


@dataclass
class Arena:
    """The connections and the running tally of one fuzz module."""

    server: ServerHandle
    http: httpx.AsyncClient
    observer: WireClient | None = None
    attacker: WireClient | None = None
    baseline: dict[str, Any] = field(default_factory=dict)
    tally: Counter[str] = field(default_factory=Counter)
    nonces: Iterator[int] = field(default_factory=lambda: itertools.count(10**12))
    tokens: dict[str, str] = field(default_factory=dict)

    def token(self, name: str) -> str:
        """An access token for ``name``, logged in once (argon2 is slow on purpose)."""
        if name not in self.tokens:
            self.tokens[name] = self.server.token(name)
        return self.tokens[name]

    async def start(self) -> None:
        """Create the accounts and the shared document; connect the observer."""
        self.server.add_user("olivia")
        self.server.add_user("mallory")
        token = self.token("olivia")
        created = await self.http.post(
            "/customers", json={"id": SHARED_ID, "name": "Shared Account"},
            headers={"Authorization": f"Bearer {token}"})
        assert created.status_code == 201, created.text
        self.observer = await WireClient.connect(self.server.ws_url, token)
        await self.observer.send(Subscribe((SHARED,)))
        await self.observer.expect(Subscribed)
        await self.observer.send(DirectorySubscribe(0))
        self.baseline, _ = await self.fresh_sync()

    async def connect_attacker(self) -> WireClient:
        """The attacker's connection: authenticated and subscribed to the shared document."""
        if self.attacker is not None and not self.attacker.closed.done():
            return self.attacker
        self.attacker = await WireClient.connect(self.server.ws_url, self.token("mallory"))
        await self.attacker.send(Subscribe((SHARED,)))
        await self.attacker.expect(Subscribed)
        await self.attacker.expect(SyncStep1)
        self.tally["attacker connections"] += 1
        return self.attacker

    async def fresh_sync(self) -> tuple[dict[str, Any], int]:
        """The observer's fresh sync of the shared document (empty state vector)."""
        assert self.observer is not None
        await self.observer.send(SyncStep1(SHARED, b"\x00"))
        step2 = await self.observer.expect(SyncStep2, lambda m: m.doc == SHARED)
        return snapshot(step2.update), step2.seq

    async def logged(self, seq: int) -> dict[str, Any]:
        """The shared document as the server's log rebuilds it at ``seq``."""
        token = self.token("olivia")
        response = await self.http.get(f"/customers/{SHARED_ID}/versions/{seq}",
                                       headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        data.pop("version")
        return data

    async def close(self) -> None:
        """Close both connections and the HTTP client."""
        for client in (self.attacker, self.observer):
            if client is not None:
                await client.close()
        await self.http.aclose()

    async def play(self, sent: list[Frame]) -> None:
        """Send one example's frames and check every rule of the module docstring."""
        attacker = await self.connect_attacker()
        attacker.inbox.clear()
        assert self.observer is not None
        self.observer.inbox.clear()
        for frame in sent:
            try:
                await attacker.send_raw(frame)
            except websockets.ConnectionClosed:
                break
        self.tally["frames"] += len(sent)
        nonce = next(self.nonces)
        try:
            await attacker.send(Heartbeat(nonce))
            await attacker.expect(HeartbeatAck, lambda m: m.nonce == nonce, timeout=10)
            self.tally["answered, still open"] += 1
        except (AssertionError, websockets.ConnectionClosed):
            code, reason = await attacker.wait_closed(timeout=10)  # TimeoutError: stuck
            assert code in ALLOWED_CLOSE, (code, reason, sent)
            self.tally[f"closed {code}"] += 1
        errors = attacker.received(Error)
        assert all(e.code is not ErrorCode.INTERNAL_ERROR for e in errors), (errors, sent)
        self.tally.update(f"error {e.code}" for e in errors)
        assert self.server.process is not None and self.server.process.poll() is None
        acked = False
        unanswered = _shared_update_refs(sent) - {
            e.ref for e in errors if e.code is not ErrorCode.INVALID_UPDATE}
        if not attacker.closed.done():
            # Every update to the shared document that got no Error must be acked (the Ack
            # follows the durable commit, so it may come after the HeartbeatAck).
            for ref in unanswered - {e.ref for e in errors}:
                await attacker.expect(Ack, lambda m, ref=ref: m.ref == ref and m.doc == SHARED)
                acked = True
        now, seq = await self.fresh_sync()
        fanned_out = any(m.doc == SHARED for m in self.observer.received(RemoteUpdate))
        # Fanned out without an Ack: a valid update before a closing frame (no Ack on a
        # closed connection), or a partly integrated invalid one. Both were logged.
        partial = fanned_out and bool(unanswered)
        if not (acked or partial):
            assert now == self.baseline, ("document changed without an ack", sent, errors)
        elif now != self.baseline:
            self.tally["document changed (acked)" if acked else "changed, fanned out, no ack"] += 1
        self.baseline = now
        deadline = asyncio.get_running_loop().time() + scaled(5)
        while (logged := await self.logged(seq)) != now:  # the commit may still be in flight
            assert asyncio.get_running_loop().time() < deadline, (now, logged, sent)
            await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
def arena(fuzz_server: ServerHandle) -> Iterator[tuple[asyncio.Runner, Arena]]:
    """The arena on its own event loop, shared by every example of the module."""
    with asyncio.Runner() as runner:
        async def build() -> Arena:
            return Arena(fuzz_server, httpx.AsyncClient(base_url=fuzz_server.http_url,
                                                        timeout=scaled(10)))
        state = runner.run(build())
        runner.run(state.start())
        yield runner, state
        runner.run(state.close())
        print("\nserver fuzz tally:", dict(sorted(state.tally.items())))


# No shrinking: examples share one server and document, so a smaller replay of a failing
# example runs against a different state and says little. The failure shows the example.
FUZZ = settings(max_examples=examples(300), deadline=None,
                phases=[Phase.explicit, Phase.reuse, Phase.generate],
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large])


@FUZZ
@given(sent=st.lists(frames, min_size=1, max_size=3))
def test_hostile_frames_get_documented_answers_and_change_nothing(
    arena: tuple[asyncio.Runner, Arena], sent: list[Frame],
) -> None:
    """Any frames: documented error/close, never stuck, server alive, document intact."""
    runner, state = arena
    state.tally["examples"] += 1
    runner.run(asyncio.wait_for(state.play(sent), scaled(30)))


@pytest.mark.parametrize("depth", [10, 1000, 60_000])
def test_deeply_nested_frame_is_bad_message(
    arena: tuple[asyncio.Runner, Arena], depth: int,
) -> None:
    """A deeply nested MessagePack frame is bad_message / 4000, never a crash."""
    runner, state = arena

    async def go() -> tuple[list[Error], int | None]:
        attacker = await state.connect_attacker()
        await attacker.send_raw(_nested(depth))
        code, _ = await attacker.wait_closed()
        return attacker.received(Error), code

    errors, code = runner.run(go())
    assert code == CloseCode.BAD_MESSAGE
    assert [e.code for e in errors] == [ErrorCode.BAD_MESSAGE]


def test_second_authenticate_and_server_messages_are_violations(
    arena: tuple[asyncio.Runner, Arena],
) -> None:
    """A second Authenticate, or a server-only message, closes with 4007 (§3)."""
    runner, state = arena

    async def go(message: Message) -> int | None:
        attacker = await state.connect_attacker()
        await attacker.send(message)
        code, _ = await attacker.wait_closed()
        return code

    token = state.token("mallory")
    for message in (Authenticate((PROTOCOL_VERSION,), token, secrets.token_hex(8)),
                    Ack(SHARED, 1, 1), Welcome(1, "abcdefgh", "x", "rep", None, False, (),
                                               0.0, 1.0, 1, 1, 0.0)):
        assert runner.run(go(message)) == CloseCode.PROTOCOL_VIOLATION, message


def test_hostile_field_values_reach_followers_within_wire_bounds(
    arena: tuple[asyncio.Runner, Arena],
) -> None:
    """A raw CRDT name of 5,000 characters is clipped in the directory feed and titles."""
    runner, state = arena

    async def go() -> None:
        attacker = await state.connect_attacker()
        doc = document.new_document()
        document.roots(doc).fields["name"] = "N" * 5000
        ref = 424242
        await attacker.send(Update(SHARED, ref, doc.get_update()))
        await attacker.expect(Ack, lambda m: m.ref == ref)
        assert state.observer is not None
        await state.fresh_sync()  # the observer decoded everything sent before this
        fresh = await WireClient.connect(state.server.ws_url, state.token("olivia"))
        await fresh.send(DirectorySubscribe(0))
        from sync.protocol.messages import DirectoryPage

        page = await fresh.expect(DirectoryPage)
        names = [e.value("name") for e in page.entries() if e.customer_id == SHARED_ID]
        assert names and all(n is not None and len(n) <= 1024 for n in names)
        await fresh.close()

    runner.run(go())


def test_unknown_document_ids_are_refused_cleanly(arena: tuple[asyncio.Runner, Arena]) -> None:
    """SyncStep1/Update/Presence on never-seen document ids: not_subscribed, still open."""
    runner, state = arena

    async def go() -> list[Error]:
        attacker = await state.connect_attacker()
        attacker.inbox.clear()
        unknown = customer_doc_id(str(uuid.uuid4()))
        await attacker.send(SyncStep1(unknown, b"\x00"))
        await attacker.send(Update(unknown, 77, b"\x00\x00"))
        await attacker.send(Presence(unknown, {"field": "name"}))
        await attacker.send(Heartbeat(5))
        await attacker.expect(HeartbeatAck, lambda m: m.nonce == 5)
        return attacker.received(Error)

    errors = runner.run(go())
    assert [e.code for e in errors] == [ErrorCode.NOT_SUBSCRIBED] * 3
    assert [e.ref for e in errors] == [None, 77, None]


#: A valid update (client 7: name = "Partial", then a task) whose task keys name the *name
#: string* as their parent: yrs integrates the name, then fails ("block parent … must be
#: deleted or shared ref type"). Found by fuzzing; it used to escape as RuntimeError and
#: leave the server's document ahead of its log.
PARTIAL_UPDATE = bytes.fromhex(
    "010407002801066669656c6473046e616d650177075061727469616c2701057461736b7301740128"
    "000700057469746c65017701782800070104646f6e65017900"
)


def test_partly_integrated_update_is_logged_and_refused(
    arena: tuple[asyncio.Runner, Arena],
) -> None:
    """An update yrs integrates only in part: invalid_update, and memory equals the log."""
    runner, state = arena

    async def go() -> None:
        attacker = await state.connect_attacker()
        attacker.inbox.clear()
        assert state.observer is not None
        _, seq_before = await state.fresh_sync()
        state.observer.inbox.clear()
        await attacker.send(Update(SHARED, 99, PARTIAL_UPDATE))
        error = await attacker.expect(Error, lambda m: m.ref == 99)
        assert error.code == ErrorCode.INVALID_UPDATE
        await attacker.send(Heartbeat(99))
        await attacker.expect(HeartbeatAck, lambda m: m.nonce == 99)  # still open
        now, seq = await state.fresh_sync()
        fanned = [m for m in state.observer.received(RemoteUpdate) if m.doc == SHARED]
        assert [m.author for m in fanned] == ["mallory"] and fanned[0].seq == seq > seq_before
        deadline = asyncio.get_running_loop().time() + scaled(5)
        while await state.logged(seq) != now:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.05)
        state.baseline = now

    runner.run(go())
