"""Benchmark: time from a rep's edit to the Customer App's page, in Debian's Chromium.

Runs the real server (a subprocess on 127.0.0.1, temp SQLite file), signs a customer in to
the page (Playwright driving /usr/bin/chromium), then times N rep edits until the page's
input shows the new value: over the HTTP API (PATCH) and from a desktop client core (/ws).
Prints figures (never asserts). Target (issue 13): under 500 ms on loopback.

Usage: .venv/bin/python bench/customer_app_latency.py [--edits 50]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.async_api import Page, async_playwright  # noqa: E402

from app.core import ClientCore  # noqa: E402
from tests.browser.conftest import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    DEFAULT_PASSWORD,
    ServerHandle,
    make_account,
    sign_in,
)
from tests.memory_keyring import memory_keyring  # noqa: E402


async def shows(page: Page, field: str, value: str) -> None:
    """Wait until the page's input shows ``value``."""
    await page.wait_for_function(
        "([id, v]) => document.getElementById(id)?.value === v",
        arg=[f"field-{field}", value], timeout=10_000, polling="raf",
    )


async def time_edits(page: Page, field: str, values: list[str],
                     edit: Callable[[str], Awaitable[Any]]) -> list[float]:
    """Milliseconds from each ``edit(value)`` until the page shows ``value`` in ``field``."""
    samples = []
    for value in values:
        started = time.perf_counter()
        await edit(value)
        await shows(page, field, value)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def report(what: str, samples: list[float]) -> None:
    """Print median, p95 and max in milliseconds."""
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    print(f"{what:<28} n={len(samples):<4} median {statistics.median(samples):6.1f} ms  "
          f"p95 {p95:6.1f} ms  max {max(samples):6.1f} ms")


async def main(edits: int) -> None:
    """Run both measurements and print them."""
    with tempfile.TemporaryDirectory() as folder, memory_keyring():
        server = ServerHandle(Path(folder) / "server.db", ["--log-level", "warning"])
        server.start()
        core = ClientCore.open(Path(folder) / "core")
        try:
            account = make_account(server)
            await core.login(server.http_url, "rep", DEFAULT_PASSWORD)
            await core.sync(30)
            await core.open_customer(account.customer_id)
            await core.sync(30)
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(
                    executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
                page = await (await browser.new_context()).new_page()
                await sign_in(page, account)
                http = await time_edits(
                    page, "phone", [f"555-{i:04d}" for i in range(edits)],
                    lambda value: asyncio.to_thread(account.patch, {"phone": value}))
                desktop = await time_edits(
                    page, "city", [f"City {i}" for i in range(edits)],
                    lambda value: core.set_fields(account.customer_id, {"city": value}))
                await browser.close()
        finally:
            await core.close()
            server.kill()
    print("rep edit -> Customer App page (loopback, Chromium headless):")
    report("HTTP PATCH -> page", http)
    report("desktop core (/ws) -> page", desktop)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=50, help="edits per route (50)")
    asyncio.run(main(parser.parse_args().edits))
