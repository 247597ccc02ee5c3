"""Fixtures for the Customer App's browser tests: Debian's Chromium driven by Playwright.

Playwright for Python drives the OS's ``/usr/bin/chromium`` (``executable_path``; it never
downloads a browser). One browser per test module (a module-scoped event loop), a fresh
context per test. The server is the real one on 127.0.0.1 port 0
(``tests/integration/conftest.py``). axe-core is pinned in ``package.json`` /
``package-lock.json`` here (integrity hashes, no registry address) and installed with
``npm ci`` by :func:`axe_script` when missing or when the lockfile changed.
``LIVEEDIT_TIMEOUT_SCALE`` scales every wait.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from tests.integration.conftest import DEFAULT_PASSWORD, ServerHandle, _memory_keyring, scaled
from tests.npm_ci import npm_ci

__all__ = [
    "DEFAULT_PASSWORD",
    "Account",
    "ServerHandle",
    "_memory_keyring",
    "account",
    "axe_script",
    "browser",
    "context",
    "rest",
    "scaled",
    "server",
    "sign_in",
]

HERE = Path(__file__).resolve().parent
LOCKFILE = HERE / "package-lock.json"
NODE_MODULES = HERE / "node_modules"
STAMP = NODE_MODULES / ".liveedit-lock-sha256"
NPM_CI = ["ci", "--omit-lockfile-registry-resolved", "--no-audit", "--no-fund",
          "--ignore-scripts"]
CHROMIUM = os.environ.get("LIVEEDIT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
#: Playwright's own waits (milliseconds), scaled on a slow machine.
WAIT_MS = scaled(10) * 1000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    """One real server for the module (each test makes its own customer and login)."""
    handle = ServerHandle(tmp_path_factory.mktemp("browser") / "server.db")
    handle.start()
    yield handle
    handle.kill()


def _require_chromium() -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"the browser tests need Chromium at {CHROMIUM} (Debian: apt-get install "
                    "chromium chromium-driver; .ci/run does it)", pytrace=False)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless, one per test module."""
    _require_chromium()
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        await chromium.close()


@pytest_asyncio.fixture(loop_scope="module")
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    """A fresh browser profile for one test (no cookies, no storage)."""
    ctx = await browser.new_context(viewport={"width": 1100, "height": 900})
    ctx.set_default_timeout(WAIT_MS)
    yield ctx
    await ctx.close()


@dataclass
class Account:
    """A customer with a customer login, and a rep's access token."""

    server: ServerHandle
    customer_id: str
    customer_user: str
    rep_token: str

    def rest(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> Any:
        """One HTTP API call (as the rep by default); returns the response."""
        return rest(self.server, method, path, token or self.rep_token, **kwargs)

    def patch(self, values: dict[str, Any], token: str | None = None) -> httpx.Response:
        """A JSON Merge Patch of the customer (as the rep by default)."""
        response: httpx.Response = self.rest(
            "PATCH", f"/customers/{self.customer_id}", token, json=values
        )
        return response

    def customer(self) -> dict[str, Any]:
        """The customer as the server has it now (read by the rep)."""
        response = self.rest("GET", f"/customers/{self.customer_id}")
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    @property
    def url(self) -> str:
        """The Customer App's address on this server."""
        return f"{self.server.http_url}/app/"


def rest(server: ServerHandle, method: str, path: str, token: str, **kwargs: Any) -> Any:
    """One HTTP request with a bearer token (``headers`` add to it)."""
    headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
    return httpx.request(method, f"{server.http_url}{path}", timeout=scaled(10),
                         headers=headers, **kwargs)


_logins = itertools.count(1)


def make_account(server: ServerHandle, name: str = "Carol Diaz", **values: Any) -> Account:
    """A rep ``rep`` (created once), a customer ``name`` and a new customer login for it."""
    from sync.server.auth import AuthService

    with AuthService(server.db_path) as auth:
        if auth.get_user("rep") is None:
            auth.add_user("rep", DEFAULT_PASSWORD, "rep")
    rep_token = server.token("rep")
    cid = str(uuid.uuid4())
    body = {"id": cid, "name": name, "email": "carol@example.com", "phone": "555-0100",
            "tier": "basic", "address": {"street1": "1 Oak Street", "city": "Springfield",
                                         "state": "IL", "zip": "62701"}}
    body.update(values)
    rest(server, "POST", "/customers", rep_token, json=body).raise_for_status()
    username = f"customer{next(_logins)}"
    server.add_user(username, role="customer", customer_id=cid)
    return Account(server, cid, username, rep_token)


@pytest.fixture
def account(server: ServerHandle) -> Account:
    """A new customer "Carol Diaz" with its own customer login."""
    return make_account(server)


async def sign_in(page: Page, acct: Account, username: str | None = None,
                  password: str = DEFAULT_PASSWORD) -> None:
    """Open the Customer App, sign in, and wait until the account is shown live."""
    await page.goto(acct.url)
    await page.get_by_label("Username").fill(username or acct.customer_user)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_selector("#account-view:not([hidden])")
    await page.wait_for_selector('#status[data-state="live"]')


def _lock_digest() -> str:
    digest = hashlib.sha256(LOCKFILE.read_bytes())
    digest.update((HERE / "package.json").read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="session")
def axe_script() -> Path:
    """axe-core's browser build, installed from the lockfile (``npm ci``) if not current."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("the accessibility test needs npm (Node.js 18+) to install axe-core",
                    pytrace=False)
    npm_ci(HERE, npm, NPM_CI, _lock_digest(), STAMP)
    return NODE_MODULES / "axe-core" / "axe.min.js"
