"""The Customer App in Debian's Chromium against the real server (issue 13's six tests, plus
lost changes and the session cookie). One browser for the module, a fresh context each."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import BrowserContext, Page, Request, Route, expect

from app.core import ClientCore
from sync.protocol import document, yjs
from sync.protocol.messages import Error, Update, customer_doc_id
from tests.integration.test_server_sync import join
from tests.integration.wire import WireClient, eventually

from .conftest import (
    DEFAULT_PASSWORD,
    Account,
    ServerHandle,
    make_account,
    rest,
    scaled,
    sign_in,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

#: The issue's bound for a rep's change to reach the page on loopback (and ours: 500 ms).
WITHIN_MS = scaled(1.0) * 1000
HOSTILE = ('<img src=x onerror="window.__pwned=1;fetch(\'/pwned\')">'
           '</script><script>window.__pwned=2</script>')

CoreFactory = Callable[..., Awaitable[ClientCore]]


@pytest_asyncio.fixture(loop_scope="module")
async def make_core(server: ServerHandle, tmp_path: Path) -> AsyncIterator[CoreFactory]:
    """Signed-in desktop cores (the rep's app without its windows); closed at the end."""
    cores: list[ClientCore] = []

    async def make(username: str = "rep") -> ClientCore:
        core = ClientCore.open(tmp_path / f"core-{username}")
        await core.login(server.http_url, username, DEFAULT_PASSWORD)
        cores.append(core)
        return core

    yield make
    for core in cores:
        await core.close()


async def held_by(core: ClientCore, customer_id: str) -> None:
    """The core holds the customer and is in sync."""
    await core.sync(scaled(20))
    await core.open_customer(customer_id)
    await core.sync(scaled(20))


async def field_shows(page: Page, name: str, value: str, timeout_ms: float) -> None:
    """Wait until the page's input for ``name`` shows ``value``."""
    await page.wait_for_function(
        "([id, v]) => document.getElementById(id)?.value === v",
        arg=[f"field-{name}", value], timeout=timeout_ms, polling=20,
    )


async def test_customer_sees_account_and_changes_flow_live_both_ways(
    context: BrowserContext, account: Account, make_core: CoreFactory,
) -> None:
    """Sign in shows the account; rep HTTP and desktop edits reach the page within 1 s; the
    customer's address edit reaches the rep's core; presence shows on both sides."""
    page = await context.new_page()
    await sign_in(page, account)
    await expect(page.get_by_label("Name", exact=True)).to_have_value("Carol Diaz")
    await expect(page.get_by_label("Street", exact=True)).to_have_value("1 Oak Street")
    await expect(page.locator("#activity")).to_contain_text("Your account was opened by support")

    latencies = []
    for i in range(7):
        phone = f"555-01{i:02d}"
        started = time.perf_counter()
        account.patch({"phone": phone}).raise_for_status()
        await field_shows(page, "phone", phone, WITHIN_MS)
        latencies.append((time.perf_counter() - started) * 1000)
    print(f"\nrep HTTP PATCH -> page: median {statistics.median(latencies):.0f} ms, "
          f"max {max(latencies):.0f} ms over {len(latencies)} edits")
    await expect(page.locator("#activity")).to_contain_text("Your phone was updated by support")

    core = await make_core("rep")
    await held_by(core, account.customer_id)
    await core.set_presence(account.customer_id, {"name": "rep"})
    await expect(page.locator("#presence")).to_have_text(
        "A support agent is looking at your account now.")
    await eventually(lambda: any(
        state.get("name") == "Carol Diaz (customer, web)"
        for _user, state in core.presence(account.customer_id).values()
    ))
    started = time.perf_counter()
    await core.set_fields(account.customer_id, {"city": "Shelbyville"})
    await field_shows(page, "city", "Shelbyville", WITHIN_MS)
    print(f"desktop core edit -> page: {(time.perf_counter() - started) * 1000:.0f} ms")

    street = page.get_by_label("Street", exact=True)
    await street.fill("742 Evergreen Terrace")
    await eventually(lambda: any(  # the desktop sees which field the customer edits
        state.get("field") == "street1"
        for _user, state in core.presence(account.customer_id).values()
    ))
    await street.press("Enter")  # keyboard only: Enter in a field saves the form
    await expect(page.locator("#save-result")).to_have_text("Saved: Street.")
    await eventually(lambda: core.customer(account.customer_id).fields["street1"]
                     == "742 Evergreen Terrace")
    await core.set_presence(account.customer_id, None)
    await expect(page.locator("#presence")).to_be_hidden()


async def test_forbidden_fields_are_read_only_and_refused_on_every_route(
    context: BrowserContext, account: Account,
) -> None:
    """Tier and name cannot be changed from the page, nor by hand-made requests with the
    customer's token over HTTP, /ws and /yjs: refused, and the account is unchanged."""
    page = await context.new_page()
    await sign_in(page, account)
    await expect(page.get_by_label("Tier", exact=True)).to_be_disabled()
    name = page.get_by_label("Name", exact=True)
    await expect(name).not_to_be_editable()
    await name.focus()
    await page.keyboard.type("Mallory")
    await expect(name).to_have_value("Carol Diaz")
    await expect(page.get_by_role("button", name="Save changes")).to_be_disabled()

    token = account.server.token(account.customer_user)
    cid = account.customer_id
    page_write = account.rest("POST", f"/app/api/customers/{cid}/fields", token,
                              json={"values": {"tier": "premium"}},
                              headers={"X-LiveEdit-Request": "1"})
    assert page_write.status_code == 403, page_write.text
    assert page_write.json()["error"] == "write_forbidden"
    assert page_write.json()["fields"] == ["tier"]

    http_write = account.patch({"tier": "premium"}, token)
    assert http_write.status_code == 403, http_write.text
    assert http_write.json()["error"] == "write_forbidden"

    ws = await WireClient.connect(account.server.ws_url, token)
    try:
        replica = await join(ws, customer_doc_id(cid))
        before = replica.doc.get_state()
        document.set_fields(replica.doc, {"tier": "premium"}, author=account.customer_user)
        await ws.send(Update(customer_doc_id(cid), 1, replica.doc.get_update(before)))
        refused = await ws.expect(Error, lambda e: e.ref == 1)
        assert refused.code == "write_forbidden", refused
    finally:
        await ws.close()

    await _yjs_write_tier(account, token)
    assert account.customer()["tier"] == "basic"
    await expect(page.get_by_label("Tier", exact=True)).to_have_value("basic")


async def _yjs_write_tier(account: Account, token: str) -> None:
    """Over /yjs (token in the auth message, not the URL): set tier; wait until processed."""
    import websockets

    async with websockets.connect(
        f"ws://127.0.0.1:{account.server.port}/yjs/{account.customer_id}", max_size=None
    ) as ws:
        await ws.send(yjs.auth_token(token))
        local = document.new_document()
        await ws.send(yjs.sync_step1(local.get_state()))
        while True:
            message = yjs.parse(await asyncio.wait_for(ws.recv(), scaled(10)))  # type: ignore[arg-type]
            if isinstance(message, yjs.SyncStep2):
                local.apply_update(message.update)
                break
        before = local.get_state()
        document.set_fields(local, {"tier": "premium"}, author=account.customer_user)
        await ws.send(yjs.sync_update(local.get_update(before)))
        await ws.send(yjs.sync_step1(local.get_state()))  # answered after the update
        try:
            while True:
                message = yjs.parse(await asyncio.wait_for(ws.recv(), scaled(10)))  # type: ignore[arg-type]
                if isinstance(message, yjs.SyncStep2):
                    break
        except websockets.ConnectionClosed:
            pass  # refusing by closing is fine too


async def test_another_customers_id_is_refused_and_shows_nothing(
    context: BrowserContext, account: Account,
) -> None:
    """Another customer's id in the address bar or the API: a clear refusal, no data."""
    other = make_account(account.server, "Dave Secret", email="dave@example.com")
    page = await context.new_page()
    await sign_in(page, account)
    await page.goto(f"{account.url}#/customers/{other.customer_id}")
    await expect(page.locator("#refused-message")).to_have_text(
        "You can only see your own account.")
    await expect(page.locator("#account-view")).to_be_hidden()
    body = await page.locator("body").inner_text()
    assert "Dave" not in body and "dave@example.com" not in body
    assert "Dave" not in await page.content()

    token = account.server.token(account.customer_user)
    for method, path in [("GET", f"/customers/{other.customer_id}"),
                         ("GET", f"/customers/{other.customer_id}/events"),
                         ("GET", f"/customers/{other.customer_id.upper()}/events?poll=true"),
                         ("POST", f"/app/api/customers/{other.customer_id}/fields")]:
        response = rest(account.server, method, path, token,
                        json={"values": {"city": "X"}} if method == "POST" else None,
                        headers={"X-LiveEdit-Request": "1"})
        assert response.status_code == 403, (path, response.text)
        assert "Dave" not in response.text
    await page.get_by_role("link", name="Go to your account").click()
    await expect(page.get_by_label("Name", exact=True)).to_have_value("Carol Diaz")


async def test_hostile_names_and_notes_render_as_text_and_run_nothing(
    context: BrowserContext, server: ServerHandle, make_core: CoreFactory,
) -> None:
    """A name, street and case note holding <img onerror> and </script> show as text; no
    dialog opens, no script runs, no request leaves for them."""
    account = make_account(server, HOSTILE, address={"street1": HOSTILE, "city": "Paris"})
    core = await make_core("rep")
    await held_by(core, account.customer_id)
    await core.notes_append(account.customer_id, f"note: {HOSTILE}")
    await core.sync(scaled(20))
    dialogs: list[str] = []
    requests: list[str] = []

    def watch(page: Page) -> None:
        page.on("dialog", lambda d: dialogs.append(d.message))
        page.on("request", lambda r: requests.append(r.url))

    page = await context.new_page()
    watch(page)
    await sign_in(page, account)
    await expect(page.get_by_label("Name", exact=True)).to_have_value(HOSTILE)
    await expect(page.get_by_label("Street", exact=True)).to_have_value(HOSTILE)

    rep_context = await context.browser.new_context()  # type: ignore[union-attr]
    try:
        rep_page = await rep_context.new_page()
        watch(rep_page)
        await rep_page.goto(f"{account.url}#/customers/{account.customer_id}")
        await rep_page.get_by_label("Username").fill("rep")
        await rep_page.get_by_label("Password").fill(DEFAULT_PASSWORD)
        await rep_page.get_by_role("button", name="Sign in").click()
        await expect(rep_page.locator("#notes")).to_have_text(f"note: {HOSTILE}")
        await expect(rep_page.get_by_label("Name", exact=True)).to_have_value(HOSTILE)
        for p in (page, rep_page):
            assert await p.evaluate("window.__pwned === undefined")
            assert await p.locator("#main img, #main script").count() == 0
    finally:
        await rep_context.close()
    assert dialogs == []
    assert not [u for u in requests if "pwned" in u or u.endswith("/x")], requests


async def test_page_reconnects_after_a_server_restart_and_catches_up(
    context: BrowserContext, account: Account,
) -> None:
    """Server killed and restarted: the page says "Reconnecting…", keeps what the customer
    typed, and then shows the change made while it was away, without a reload."""
    page = await context.new_page()
    blocked = False

    async def gate(route: Route, _request: Request) -> None:
        if blocked:
            await route.abort()
        else:
            await route.continue_()

    await page.route("**/customers/*/events*", gate)
    await sign_in(page, account)
    loaded = await page.evaluate("performance.timeOrigin")
    await page.get_by_label("Street (line 2)").fill("Apt 4")

    blocked = True  # hold the page back until the change below is made
    account.server.kill()
    await expect(page.locator("#status")).to_have_text("Reconnecting…")
    account.server.restart()
    account.patch({"phone": "555-0199"}).raise_for_status()
    await expect(page.get_by_label("Phone", exact=True)).to_have_value("555-0100")

    blocked = False
    await expect(page.locator("#status")).to_have_attribute(
        "data-state", "live", timeout=scaled(30) * 1000)
    await expect(page.get_by_label("Phone", exact=True)).to_have_value("555-0199")
    await expect(page.locator("#save-result")).to_have_text(
        "While you were away: Phone changed.")
    await expect(page.get_by_label("Street (line 2)")).to_have_value("Apt 4")
    assert await page.evaluate("performance.timeOrigin") == loaded  # no reload


async def test_accessibility_scan_finds_no_serious_or_critical_violation(
    context: BrowserContext, account: Account, axe_script: Path,
) -> None:
    """axe-core on the sign-in form and the account (light desktop, dark phone width):
    no serious or critical violation."""
    scan_context = await context.browser.new_context(bypass_csp=True)  # type: ignore[union-attr]
    try:
        page = await scan_context.new_page()
        await page.goto(account.url)
        await page.wait_for_selector("#sign-in-view:not([hidden])")
        problems = await _axe(page, axe_script)
        await sign_in(page, account)
        await page.get_by_label("Street", exact=True).fill("2 Elm Street")
        problems += await _axe(page, axe_script)
        await page.set_viewport_size({"width": 360, "height": 800})
        await page.emulate_media(color_scheme="dark")
        problems += await _axe(page, axe_script)
    finally:
        await scan_context.close()
    assert problems == [], problems


async def _axe(page: Page, script: Path) -> list[str]:
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.add_script_tag(path=str(script))
    result: dict[str, Any] = await page.evaluate(
        "axe.run(document, {resultTypes: ['violations']})")
    return [f"{v['id']} ({v['impact']}): {v['help']} at "
            f"{[n['target'] for n in v['nodes']][:3]}"
            for v in result["violations"] if v["impact"] in {"serious", "critical"}]


async def test_a_change_that_lost_to_a_concurrent_rep_change_is_reported(
    context: BrowserContext, account: Account,
) -> None:
    """The customer edits the street while a rep changes it: saving says in plain words that
    theirs was not saved, with both values; "Use mine" then saves it."""
    page = await context.new_page()
    await sign_in(page, account)
    await page.get_by_label("Street", exact=True).fill("2 Elm Street")
    account.patch({"address": {"street1": "3 Pine Road"}}).raise_for_status()
    await expect(page.locator("#field-street1-note")).to_contain_text(
        "Support changed this to “3 Pine Road” while you were editing")
    await expect(page.get_by_label("Street", exact=True)).to_have_value("2 Elm Street")
    await page.get_by_role("button", name="Save changes").click()
    conflict = page.locator(".conflict")
    await expect(conflict).to_contain_text(
        "Your change to Street was not saved: A support agent changed it at the same time.")
    await expect(conflict).to_contain_text("Yours: “2 Elm Street”")
    await expect(conflict).to_contain_text("Now: “3 Pine Road”")
    assert account.customer()["address"]["street1"] == "3 Pine Road"
    await page.get_by_role("button", name="Use mine for Street").click()
    await expect(page.get_by_label("Street", exact=True)).to_have_value("2 Elm Street")
    assert account.customer()["address"]["street1"] == "2 Elm Street"


async def test_session_cookie_is_locked_down_csrf_checked_and_revoked_on_sign_out(
    context: BrowserContext, account: Account,
) -> None:
    """The refresh token is an HttpOnly, Secure, SameSite=Strict cookie on /app/session only;
    no token in storage or URLs; cross-site refreshes are refused; sign-out revokes it."""
    page = await context.new_page()
    urls: list[str] = []
    page.on("request", lambda r: urls.append(r.url))
    await sign_in(page, account)
    (cookie,) = await context.cookies()
    assert (cookie["name"], cookie["path"], cookie["httpOnly"], cookie["secure"],
            cookie["sameSite"]) == ("liveedit_refresh", "/app/session", True, True, "Strict")
    assert await page.evaluate("localStorage.length + sessionStorage.length") == 0
    assert not [u for u in urls if "token" in u.lower() or cookie["value"] in u]
    await page.reload()  # the cookie signs the page in again
    await page.wait_for_selector('#status[data-state="live"]')

    base = account.server.http_url
    jar = {"liveedit_refresh": (await context.cookies())[0]["value"]}
    async with httpx.AsyncClient(base_url=base, timeout=scaled(10), cookies=jar) as http:
        assert (await http.post("/app/session/refresh")).status_code == 403  # no header
        evil = await http.post("/app/session/refresh", headers={
            "X-LiveEdit-Request": "1", "Origin": "https://evil.example"})
        assert evil.status_code == 403
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.locator("#sign-in-error")).to_have_text("You are signed out.")
    assert await context.cookies() == []
    async with httpx.AsyncClient(base_url=base, timeout=scaled(10), cookies=jar) as http:
        stale = await http.post("/app/session/refresh", headers={"X-LiveEdit-Request": "1"})
        assert stale.status_code == 401, stale.text


async def test_page_falls_back_to_polling_when_streaming_is_blocked(
    context: BrowserContext, account: Account,
) -> None:
    """A network that blocks streaming responses: the page says it polls, and a rep's
    change still reaches it."""
    page = await context.new_page()

    async def no_streams(route: Route, request: Request) -> None:
        if "poll=1" in request.url:
            await route.continue_()
        else:
            await route.abort()

    await page.route("**/customers/*/events*", no_streams)
    await page.goto(account.url)
    await page.get_by_label("Username").fill(account.customer_user)
    await page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#status")).to_have_text(
        "Live updates are not available on this network; checking for changes every few "
        "seconds")
    await expect(page.get_by_label("Name", exact=True)).to_have_value("Carol Diaz")
    account.patch({"phone": "555-0142"}).raise_for_status()
    await expect(page.get_by_label("Phone", exact=True)).to_have_value("555-0142")
