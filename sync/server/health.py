"""Readiness of a server node: ``GET /readyz`` (liveness is ``GET /healthz``, http_api.py).

A load balancer sends new connections only to nodes whose ``/readyz`` answers 200
(docs/deploy/haproxy.cfg checks it every second). A node is ready while every check
passes: its database is reachable and its bus listens (a node whose bus is deaf would serve
stale documents). Otherwise 503 with the failing checks and a ``Retry-After`` header; the
node keeps trying to recover by itself and becomes ready again without a restart.

A check is a coroutine function returning ``None`` (fine) or a short reason for an
operator (never a secret or a stack trace); each has :data:`CHECK_TIMEOUT` seconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

from fastapi import FastAPI
from fastapi.responses import JSONResponse

__all__ = ["CHECK_TIMEOUT", "Check", "install_readiness", "readiness"]

log = logging.getLogger(__name__)

#: Seconds one check may take before it counts as failed.
CHECK_TIMEOUT = 2.0
#: What a not-ready node tells callers to wait, seconds.
RETRY_AFTER = 2

Check = Callable[[], Awaitable[str | None]]


async def readiness(checks: Mapping[str, Check]) -> dict[str, str]:
    """Run every check concurrently: name → ``"ok"`` or the reason it failed."""

    async def run(name: str, check: Check) -> tuple[str, str]:
        try:
            reason = await asyncio.wait_for(check(), CHECK_TIMEOUT)
        except TimeoutError:
            reason = f"no answer within {CHECK_TIMEOUT:g} s"
        return name, "ok" if reason is None else reason

    results = await asyncio.gather(*(run(n, c) for n, c in checks.items()))
    return dict(results)


def install_readiness(app: FastAPI, checks: Mapping[str, Check]) -> None:
    """Add ``GET /readyz`` to the app, answering from ``checks``."""
    not_ready: set[str] = set()

    async def readyz() -> JSONResponse:
        """Readiness: 200 while the database is reachable and the bus listens, else 503."""
        results = await readiness(checks)
        failing = {name for name, result in results.items() if result != "ok"}
        if failing != not_ready:  # log changes only, not every probe
            if failing:
                log.warning("not ready: %s",
                            "; ".join(f"{n}: {results[n]}" for n in sorted(failing)))
            else:
                log.info("ready again")
            not_ready.clear()
            not_ready.update(failing)
        if failing:
            return JSONResponse(
                {"status": "not ready", "checks": results, "retry_after": RETRY_AFTER},
                status_code=503, headers={"Retry-After": str(RETRY_AFTER)},
            )
        return JSONResponse({"status": "ready", "checks": results})

    app.add_api_route("/readyz", readyz, methods=["GET"], tags=["server"],
                      response_class=JSONResponse)
