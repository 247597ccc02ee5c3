"""A customer's history on the server, read over its HTTP API.

History lives on the server only (the update log): :class:`HistoryClient` asks for the
versions of a customer and for the customer as it was after one of them. Reverting is an
edit like any other and lives in :class:`app.core.ClientCore`. Errors: ServerUnreachable,
PermissionDenied, UnknownCustomer (app.errors), with the server's message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from .auth import Authenticator
from .errors import PermissionDenied, ServerUnreachable, UnknownCustomer

__all__ = ["HistoryClient", "Version"]


@dataclass(frozen=True, slots=True)
class Version:
    """One entry of a customer's history on the server."""

    seq: int
    time: float
    author: str
    changes: tuple[str, ...]


class HistoryClient:
    """Reads history from the server the authenticator signs in to."""

    def __init__(self, auth: Authenticator) -> None:
        self._auth = auth

    async def _get(self, path: str) -> Any:
        auth = self._auth
        token = await auth.access_token()
        try:
            async with httpx.AsyncClient(timeout=auth.timeout) as http:
                response = await http.get(f"{auth.server_url}{path}",
                                          headers={"Authorization": f"Bearer {token}"})
        except httpx.HTTPError as exc:
            raise ServerUnreachable(f"cannot reach {auth.server_url}: {exc}") from exc
        if response.status_code == 403:
            raise PermissionDenied(response.json().get("message", "not allowed"))
        if response.status_code == 404:
            raise UnknownCustomer(response.json().get("message", "not found"))
        response.raise_for_status()
        return response.json()

    async def history(self, customer_id: str, limit: int = 100) -> list[Version]:
        """A customer's versions on the server, newest first (``customer_id`` checked)."""
        data = await self._get(f"/customers/{customer_id}/history?limit={limit}")
        return [Version(v["seq"], v["time"], v["author"], tuple(v["changes"]))
                for v in data["items"]]

    async def notifications(self, since: int, limit: int = 500) -> dict[str, Any]:
        """The server's notifications after ``since`` (a rep: every customer's), as the
        HTTP API's page: ``items`` (seq, customer_id, kind, actor, time, fields, title),
        ``latest``, ``more``."""
        data: dict[str, Any] = await self._get(f"/notifications?since={since}&limit={limit}")
        return data

    async def version(self, customer_id: str, seq: int) -> dict[str, Any]:
        """The customer as it was right after change ``seq`` (JSON, with notes/tasks)."""
        data: dict[str, Any] = await self._get(f"/customers/{customer_id}/versions/{seq}")
        return data
