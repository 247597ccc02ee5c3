"""Take the Customer App's screenshots for docs/ (desktop and 360 px phone width).

Run from the repository root: ``.venv/bin/python -m tests.browser.screenshots``. It starts
the real server on a free port with a temporary database, a customer with some history, a
rep's desktop core looking at the account (so the page shows the support banner), then
photographs the page in Debian's Chromium. Not a test.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from playwright.async_api import async_playwright

from app.core import ClientCore
from tests.browser.conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DEFAULT_PASSWORD,
    ServerHandle,
    make_account,
    sign_in,
)
from tests.memory_keyring import memory_keyring

DOCS = Path(__file__).resolve().parents[2] / "docs"


async def main() -> int:
    """Start everything, take the pictures, stop everything."""
    with tempfile.TemporaryDirectory() as folder, memory_keyring():
        server = ServerHandle(Path(folder) / "server.db")
        server.start()
        core = ClientCore.open(Path(folder) / "core")
        try:
            account = make_account(server)
            account.patch({"phone": "555-0199"}).raise_for_status()
            await core.login(server.http_url, "rep", DEFAULT_PASSWORD)
            await core.sync(20)
            await core.open_customer(account.customer_id)
            await core.sync(20)
            await core.set_presence(account.customer_id, {"name": "rep"})
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(
                    executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
                for name, width, height, scheme in (
                    ("customer-app-desktop.png", 1100, 980, "light"),
                    ("customer-app-phone.png", 360, 1500, "dark"),
                ):
                    context = await browser.new_context(
                        viewport={"width": width, "height": height}, color_scheme=scheme)
                    page = await context.new_page()
                    await sign_in(page, account)
                    await page.wait_for_selector("#presence:not([hidden])")
                    await core.set_fields(account.customer_id, {"city": "Shelbyville"})
                    await page.wait_for_selector(".field.flash")
                    await page.get_by_label("Street (line 2)").fill("Apt 4")
                    await page.screenshot(path=str(DOCS / name), full_page=True)
                    await context.close()
                    await core.set_fields(account.customer_id, {"city": "Springfield"})
                await browser.close()
        finally:
            await core.close()
            server.kill()
    print(f"wrote {DOCS / 'customer-app-desktop.png'} and {DOCS / 'customer-app-phone.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
