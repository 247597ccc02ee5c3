"""Reconnect and timer policy of the client connection: pure functions, no I/O, no asyncio.

Kept apart from :mod:`sync.client.connection` so that the policy is tested without a
server or an event loop, as ``websockets`` keeps ``backoff()`` and ``process_exception()``
apart from its client.

* :func:`backoff` yields the delays between reconnection attempts (capped exponential
  growth with full jitter, so that many clients dropped at once by a server restart do not
  all come back at the same instant).
* :func:`classify` decides from a close code and/or an ``Error`` code whether to retry,
  retry with a fresh access token, or stop for good (docs/protocol.md §7, §8).
* :func:`retry_floor` is the least time to wait before the next attempt when the server
  asked for patience (1013 / ``server_busy`` / ``rate_limited`` with ``retry_after``).
* :func:`renew_delay` says when to renew an access token in-band.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from enum import Enum, auto

from sync.protocol.errors import CloseCode, ErrorCode

__all__ = [
    "BUSY_FLOOR",
    "Disposition",
    "backoff",
    "classify",
    "renew_delay",
    "retry_floor",
]

#: Seconds to wait at least after "try again later" when the server gave no retry_after.
BUSY_FLOOR = 5.0


class Disposition(Enum):
    """What to do after a connection attempt failed or a live connection dropped."""

    #: Transient (network, server restart, server busy, our own bug): retry with backoff.
    RETRY = auto()
    #: The access token expired: ask the token provider for a fresh one and reconnect.
    RENEW_TOKEN = auto()
    #: Retrying cannot help (bad credentials, access revoked, no common protocol version,
    #: session taken over): stop and tell the user.
    FATAL = auto()


_FATAL_CLOSE = frozenset({
    CloseCode.AUTH_FAILED,
    CloseCode.UNSUPPORTED_VERSION,
    CloseCode.ACCESS_REVOKED,
    # Another connection now owns this session id; reconnecting would take it back and the
    # two clients would evict each other forever.
    CloseCode.SESSION_REPLACED,
})
_FATAL_ERROR = frozenset({
    ErrorCode.AUTH_FAILED,
    ErrorCode.ACCESS_REVOKED,
    ErrorCode.UNSUPPORTED_VERSION,
})
_BUSY_CLOSE = frozenset({CloseCode.TRY_AGAIN_LATER, CloseCode.RATE_LIMITED})
_BUSY_ERROR = frozenset({ErrorCode.SERVER_BUSY, ErrorCode.RATE_LIMITED})


def backoff(
    initial: float = 0.5,
    factor: float = 2.0,
    maximum: float = 30.0,
    rng: Callable[[], float] = random.random,
) -> Iterator[float]:
    """Yield delays (seconds) before successive reconnection attempts, forever.

    The n-th delay (from 0) is ``rng() * min(maximum, initial * factor**n)``: "full jitter".
    ``rng`` returns a float in [0, 1); tests pass a fixed one. Start a new generator when
    the link has been online again, so that the next outage starts from short delays.
    """
    if initial <= 0 or maximum < initial or factor < 1:
        raise ValueError("backoff needs 0 < initial <= maximum and factor >= 1")
    ceiling = initial
    while True:
        yield rng() * ceiling
        ceiling = min(ceiling * factor, maximum)


def classify(close_code: int | None, error_code: ErrorCode | None) -> Disposition:
    """Decide what to do after a drop, from the close code and/or the server's Error code.

    Either may be None (a network failure has neither). When both are given the more
    severe disposition wins (FATAL > RENEW_TOKEN > RETRY), so that a generic close code
    never hides a specific ``Error``. Unknown codes are retried.
    """
    if close_code in _FATAL_CLOSE or error_code in _FATAL_ERROR:
        return Disposition.FATAL
    if close_code == CloseCode.TOKEN_EXPIRED or error_code is ErrorCode.TOKEN_EXPIRED:
        return Disposition.RENEW_TOKEN
    return Disposition.RETRY


def retry_floor(
    close_code: int | None, error_code: ErrorCode | None, retry_after: float | None = None,
) -> float:
    """The least number of seconds to wait before reconnecting.

    ``retry_after`` (from an ``Error``) is honoured whenever the server sent one. Without it,
    "try again later" (close 1013 or 4008, ``server_busy``, ``rate_limited``) waits
    :data:`BUSY_FLOOR`; anything else has no floor (the backoff delay alone applies).
    """
    if retry_after is not None and retry_after > 0:
        return retry_after
    if close_code in _BUSY_CLOSE or error_code in _BUSY_ERROR:
        return BUSY_FLOOR
    return 0.0


def renew_delay(remaining: float, margin: float) -> float:
    """Seconds from now until an access token valid ``remaining`` more seconds is renewed.

    Renew ``margin`` seconds before expiry, but never before 80% of the remaining lifetime
    has passed, so that a token shorter-lived than the margin is not renewed in a tight
    loop. Never negative.
    """
    if remaining <= 0:
        return 0.0
    return max(remaining - margin, 0.8 * remaining)
