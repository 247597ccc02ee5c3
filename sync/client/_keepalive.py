"""What keeps one open link alive: Heartbeats, and renewing the access token in-band.

Both run as tasks of one :class:`~sync.client._link.Link` while it is online (started by
:class:`~sync.client.connection.ClientConnection` after the Welcome) and end with it.
docs/protocol.md §8: the server closes a link silent for 45 s (4009) and answers each
Heartbeat with a HeartbeatAck, which the connection's ``dead_after`` watchdog counts;
§3: a RenewToken before expiry is answered by TokenRenewed (``link.renewed``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from sync.protocol.errors import CloseCode, ErrorCode
from sync.protocol.messages import Error, Heartbeat, RenewToken

from ._link import Link
from .backoff import renew_delay
from .errors import ConnectionClosedFatal

__all__ = ["heartbeats", "renewals"]

#: How long past the token's expiry to wait for TokenRenewed before reconnecting.
RENEW_ANSWER_GRACE = 5.0
#: Longest pause between retries of a failing token provider during in-band renewal.
PROVIDER_RETRY = 5.0


async def heartbeats(link: Link, interval: float) -> None:
    """Send a Heartbeat every ``interval`` s: keeps the server's idle timer and ours fed."""
    nonce = 0
    while True:
        await asyncio.sleep(interval)
        nonce += 1
        await link.send(Heartbeat(nonce))


async def renewals(link: Link, provider: Callable[[bool], Awaitable[str]], margin: float,
                   log: logging.LoggerAdapter[logging.Logger]) -> None:
    """Renew the access token in-band ``margin`` s before it expires, while the link lives.

    A fatal answer of ``provider`` ends the link (``link.fatal``); an unanswered renewal
    ends it as expired, so the connection reconnects with a fresh token.
    """
    while True:
        await asyncio.sleep(renew_delay(link.remaining(), margin))
        try:
            token = await _fresh_token(link, provider, log)
        except ConnectionClosedFatal as exc:
            link.fatal = exc
            await link.close(CloseCode.NORMAL, "no access token")
            return
        if token is None:
            return  # expired: the server closes with 4005 and we reconnect afresh
        link.renewed.clear()
        await link.send(RenewToken(token))
        try:
            await asyncio.wait_for(
                link.renewed.wait(), max(link.remaining(), 0.0) + RENEW_ANSWER_GRACE,
            )
        except TimeoutError:
            log.warning("the server did not confirm the token renewal")
            link.error = Error(ErrorCode.TOKEN_EXPIRED, "token renewal unanswered")
            await link.close(CloseCode.NORMAL, "token renewal unanswered")
            return


async def _fresh_token(link: Link, provider: Callable[[bool], Awaitable[str]],
                       log: logging.LoggerAdapter[logging.Logger]) -> str | None:
    """A new token from the provider, retrying transient failures until expiry."""
    while True:
        try:
            return await provider(True)
        except ConnectionClosedFatal:
            raise
        except Exception as exc:  # transient by contract
            log.warning("could not renew the access token: %r", exc, exc_info=True)
            left = link.remaining()
            if left <= 0:
                return None
            await asyncio.sleep(max(0.2, min(PROVIDER_RETRY, left / 2)))
