"""The live channel over plain HTTP (Server-Sent Events) against the real server: resume with
Last-Event-ID, echo suppression by X-Session-Id, the directory stream, permissions, and the
description in /openapi.json. The Customer App's use of it is tested in tests/browser."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from .conftest import ServerHandle, both_engines, scaled

Event = tuple[str, str | None, Any]


@asynccontextmanager
async def events(server: ServerHandle, path: str, token: str,
                 **headers: str) -> AsyncIterator[AsyncIterator[Event]]:
    """Open an event stream; yields an iterator of (event, id, data) as they arrive."""
    async with (
        httpx.AsyncClient(base_url=server.http_url, timeout=scaled(10)) as http,
        http.stream("GET", path, headers={"Authorization": f"Bearer {token}", **headers})
        as response,
    ):
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")

        async def parse() -> AsyncIterator[Event]:
            kind, event_id, data = "message", None, []
            async for line in response.aiter_lines():
                if line.startswith((":", "retry:")):
                    continue
                if line == "":
                    if data:
                        yield kind, event_id, json.loads("\n".join(data))
                    kind, event_id, data = "message", None, []
                elif line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("id: "):
                    event_id = line[4:]
                elif line.startswith("data: "):
                    data.append(line[6:])

        yield parse()


async def next_of(stream: AsyncIterator[Event], kind: str) -> Event:
    """The next event of ``kind`` (others are skipped)."""
    async for event in stream:
        if event[0] == kind:
            return event
    raise AssertionError(f"the stream ended before a {kind!r} event")


def new_customer(server: ServerHandle, rep: str, name: str) -> str:
    """Create a customer as the rep; returns its id."""
    cid = str(uuid.uuid4())
    httpx.post(f"{server.http_url}/customers", json={"id": cid, "name": name},
               headers={"Authorization": f"Bearer {rep}"}, timeout=scaled(10)
               ).raise_for_status()
    return cid


def setup(server: ServerHandle) -> tuple[str, str, str]:
    """A rep token, a customer "Ada" and that customer's own token."""
    server.add_user("rep")
    rep = server.token("rep")
    cid = new_customer(server, rep, "Ada")
    server.add_user("ada", role="customer", customer_id=cid)
    return rep, cid, server.token("ada")


def patch(server: ServerHandle, token: str, cid: str, values: dict[str, Any],
          session: str | None = None) -> int:
    """PATCH a customer; returns its new version (sequence number)."""
    headers = {"Authorization": f"Bearer {token}"}
    if session:
        headers["X-Session-Id"] = session
    response = httpx.patch(f"{server.http_url}/customers/{cid}", json=values,
                           headers=headers, timeout=scaled(10))
    response.raise_for_status()
    return int(response.json()["version"])


def value(state: dict[str, Any], name: str) -> Any:
    """One field's value in a state event."""
    return next(f["value"] for f in state["fields"] if f["name"] == name)


@both_engines
async def test_customer_stream_resumes_from_last_event_id_and_suppresses_echo(
    server: ServerHandle,
) -> None:
    """A change arrives as a durable-id event; a resume from that id reports what was
    missed; the writer's own session gets no echo of its HTTP write."""
    rep, cid, ada = setup(server)
    path = f"/customers/{cid}/events"
    async with events(server, path, ada, **{"X-Session-Id": "page-session-1"}) as stream:
        _, first_id, state = await next_of(stream, "state")
        assert value(state, "name") == "Ada"
        assert {"email", "street1"} <= {f["name"] for f in state["fields"] if f["writable"]}
        assert "notes" not in state  # the case notes are support's
        patch(server, ada, cid, {"phone": "555-0001"}, session="page-session-1")  # own
        seq = patch(server, rep, cid, {"address": {"city": "Oslo"}})
        _, event_id, change = await next_of(stream, "change")
        assert event_id == str(seq) and int(event_id) > int(first_id or 0)
        assert (value(change, "city"), change["by"]) == ("Oslo", ["support"])
    patch(server, rep, cid, {"email": "ada@example.com"})
    async with events(server, path, ada, **{"Last-Event-ID": str(seq)}) as stream:
        _, _, state = await next_of(stream, "state")
        assert state["missed"] == ["email"]
        assert value(state, "email") == "ada@example.com"


@both_engines
async def test_directory_stream_catches_up_then_follows_and_customers_see_only_theirs(
    server: ServerHandle,
) -> None:
    """A rep's directory stream sends rows after the cursor, then live rows; a customer's
    carries its own row only; another customer's account stream is refused."""
    rep, cid, ada = setup(server)
    async with events(server, "/directory/events", rep) as stream:
        _, cursor, page = await next_of(stream, "directory")
        assert [e["name"] for e in page["entries"]] == ["Ada"]
        await next_of(stream, "ready")
        other = new_customer(server, rep, "Bob")
        _, live_cursor, live = await next_of(stream, "directory")
        assert [e["id"] for e in live["entries"]] == [other]
        assert int(live_cursor or 0) > int(cursor or 0)
    async with events(server, "/directory/events", ada) as stream:
        _, _, page = await next_of(stream, "directory")
        assert [e["id"] for e in page["entries"]] == [cid]
    async with httpx.AsyncClient(base_url=server.http_url, timeout=scaled(10)) as http:
        refused = await http.get(f"/customers/{other}/events",
                                 headers={"Authorization": f"Bearer {ada}"})
        assert refused.status_code == 403
        assert refused.json()["error"] == "forbidden"
        anonymous = await http.get(f"/customers/{cid}/events")
        assert anonymous.status_code == 401


async def test_event_streams_are_in_the_openapi_description(server: ServerHandle) -> None:
    """Both streams are described as text/event-stream in /openapi.json."""
    async with httpx.AsyncClient(base_url=server.http_url, timeout=scaled(10)) as http:
        spec = (await http.get("/openapi.json")).json()
    for path in ("/customers/{customer_id}/events", "/directory/events"):
        content = spec["paths"][path]["get"]["responses"]["200"]["content"]
        assert "text/event-stream" in content, path
