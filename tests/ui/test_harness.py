"""The UI harness itself: Qt widgets and asyncio sockets share one loop."""

from __future__ import annotations

import asyncio

import httpx
from PySide6.QtWidgets import QLabel

from tests.integration.conftest import ServerHandle
from tests.integration.wire import eventually

from .conftest import UiLoop


def test_widget_updates_from_a_network_call(ui_loop: UiLoop, server: ServerHandle,
                                            qtbot: object) -> None:
    """An HTTP call awaited on the qasync loop can update a widget."""
    label = QLabel("waiting")

    async def body() -> None:
        async with httpx.AsyncClient() as http:
            response = await http.get(f"{server.http_url}/healthz")
        asyncio.get_running_loop().call_soon(label.setText, response.json()["status"])
        await eventually(lambda: label.text() == "ok")

    ui_loop.run(body())
    assert label.text() == "ok"
