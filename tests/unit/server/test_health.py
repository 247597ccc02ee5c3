"""/readyz: 200 while every check passes, 503 with the reasons and Retry-After otherwise."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from sync.server.health import install_readiness


def _app(state: dict[str, str | None]) -> FastAPI:
    app = FastAPI()

    async def database() -> str | None:
        return state["database"]

    async def bus() -> str | None:
        return state["bus"]

    install_readiness(app, {"database": database, "bus": bus})
    return app


async def test_readiness_follows_its_checks() -> None:
    """Ready with both checks passing; 503 naming the failing one; ready again after."""
    state: dict[str, str | None] = {"database": None, "bus": None}
    transport = httpx.ASGITransport(app=_app(state))
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as http:
        ready = await http.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready", "checks": {"database": "ok", "bus": "ok"}}
        state["bus"] = "the bus is not listening"
        down = await http.get("/readyz")
        assert down.status_code == 503
        assert down.headers["Retry-After"] == "2"
        assert down.json()["checks"] == {"database": "ok", "bus": "the bus is not listening"}
        state["bus"] = None
        assert (await http.get("/readyz")).status_code == 200
