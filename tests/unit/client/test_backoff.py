"""The client's reconnect policy: backoff delays, drop classification, floors, renewal."""

from __future__ import annotations

from itertools import islice

import pytest

from sync.client.backoff import (
    BUSY_FLOOR,
    Disposition,
    backoff,
    classify,
    renew_delay,
    retry_floor,
)
from sync.protocol.errors import CloseCode, ErrorCode


def _take(n: int, **kwargs: float) -> list[float]:
    return list(islice(backoff(rng=lambda: 1.0, **kwargs), n))


def test_backoff_grows_geometrically_from_initial() -> None:
    """With rng at its top, the delays are initial * factor**n."""
    assert _take(5, initial=0.5, factor=2.0, maximum=100.0) == [0.5, 1.0, 2.0, 4.0, 8.0]


def test_backoff_is_capped_at_maximum_forever() -> None:
    """Once the ceiling reaches maximum it stays there."""
    delays = _take(12, initial=1.0, factor=3.0, maximum=30.0)
    assert delays[:4] == [1.0, 3.0, 9.0, 27.0]
    assert delays[4:] == [30.0] * 8


def test_backoff_full_jitter_scales_the_ceiling() -> None:
    """Each delay is rng() times the current ceiling (full jitter)."""
    values = iter([0.0, 0.25, 0.5, 0.999])
    delays = list(islice(backoff(1.0, 2.0, 100.0, rng=lambda: next(values)), 4))
    assert delays == [0.0, 0.5, 2.0, pytest.approx(7.992)]


def test_backoff_with_real_rng_stays_within_bounds() -> None:
    """Random delays are never negative and never above the ceiling of their step."""
    ceilings = [0.5, 1.0, 2.0, 4.0] + [5.0] * 100
    for delay, ceiling in zip(backoff(0.5, 2.0, 5.0), ceilings, strict=False):
        assert 0.0 <= delay <= ceiling


@pytest.mark.parametrize(
    ("initial", "factor", "maximum"), [(0.0, 2.0, 1.0), (2.0, 2.0, 1.0), (1.0, 0.5, 5.0)],
)
def test_backoff_rejects_nonsense_parameters(initial: float, factor: float, maximum: float) -> None:
    """A zero initial delay, a cap below it or a shrinking factor is a ValueError."""
    with pytest.raises(ValueError, match="backoff"):
        next(backoff(initial, factor, maximum))


@pytest.mark.parametrize(
    ("close_code", "error_code", "expected"),
    [
        (None, None, Disposition.RETRY),  # network failure
        (1000, None, Disposition.RETRY),
        (1001, None, Disposition.RETRY),
        (1006, None, Disposition.RETRY),
        (CloseCode.INTERNAL_ERROR, None, Disposition.RETRY),
        (CloseCode.TRY_AGAIN_LATER, None, Disposition.RETRY),
        (CloseCode.BAD_MESSAGE, None, Disposition.RETRY),
        (CloseCode.AUTH_TIMEOUT, None, Disposition.RETRY),
        (CloseCode.PROTOCOL_VIOLATION, None, Disposition.RETRY),
        (CloseCode.RATE_LIMITED, None, Disposition.RETRY),
        (CloseCode.HEARTBEAT_TIMEOUT, None, Disposition.RETRY),
        (CloseCode.MESSAGE_TOO_BIG, None, Disposition.RETRY),
        (4999, None, Disposition.RETRY),  # unknown codes are retried
        (CloseCode.TOKEN_EXPIRED, None, Disposition.RENEW_TOKEN),
        (None, ErrorCode.TOKEN_EXPIRED, Disposition.RENEW_TOKEN),
        (CloseCode.AUTH_FAILED, None, Disposition.FATAL),
        (CloseCode.UNSUPPORTED_VERSION, None, Disposition.FATAL),
        (CloseCode.ACCESS_REVOKED, None, Disposition.FATAL),
        (CloseCode.SESSION_REPLACED, None, Disposition.FATAL),
        (None, ErrorCode.AUTH_FAILED, Disposition.FATAL),
        (None, ErrorCode.ACCESS_REVOKED, Disposition.FATAL),
        (None, ErrorCode.UNSUPPORTED_VERSION, Disposition.FATAL),
        (None, ErrorCode.SERVER_BUSY, Disposition.RETRY),
        (None, ErrorCode.RATE_LIMITED, Disposition.RETRY),
        (None, ErrorCode.AUTH_TIMEOUT, Disposition.RETRY),
        (None, ErrorCode.INTERNAL_ERROR, Disposition.RETRY),
        # The more severe of the two wins.
        (1000, ErrorCode.AUTH_FAILED, Disposition.FATAL),
        (CloseCode.TOKEN_EXPIRED, ErrorCode.ACCESS_REVOKED, Disposition.FATAL),
        (1000, ErrorCode.TOKEN_EXPIRED, Disposition.RENEW_TOKEN),
        (CloseCode.TOKEN_EXPIRED, ErrorCode.SERVER_BUSY, Disposition.RENEW_TOKEN),
    ],
)
def test_classify_table(
    close_code: int | None, error_code: ErrorCode | None, expected: Disposition,
) -> None:
    """Every documented close code and error code maps to its disposition."""
    assert classify(close_code, error_code) is expected


@pytest.mark.parametrize(
    ("close_code", "error_code", "retry_after", "expected"),
    [
        (None, None, None, 0.0),
        (1006, None, None, 0.0),
        (CloseCode.TRY_AGAIN_LATER, None, None, BUSY_FLOOR),
        (CloseCode.RATE_LIMITED, None, None, BUSY_FLOOR),
        (None, ErrorCode.SERVER_BUSY, None, BUSY_FLOOR),
        (None, ErrorCode.RATE_LIMITED, None, BUSY_FLOOR),
        (None, ErrorCode.SERVER_BUSY, 12.5, 12.5),
        (CloseCode.TRY_AGAIN_LATER, ErrorCode.RATE_LIMITED, 1.0, 1.0),
        (CloseCode.TRY_AGAIN_LATER, None, 0.0, BUSY_FLOOR),
    ],
)
def test_retry_floor(
    close_code: int | None, error_code: ErrorCode | None, retry_after: float | None,
    expected: float,
) -> None:
    """retry_after is honoured; "try again later" without it waits BUSY_FLOOR; else 0."""
    assert retry_floor(close_code, error_code, retry_after) == expected


@pytest.mark.parametrize(
    ("remaining", "margin", "expected"),
    [
        (900.0, 60.0, 840.0),  # long-lived: margin before expiry
        (3.0, 60.0, 2.4),  # shorter than the margin: at 80%
        (100.0, 60.0, 80.0),  # margin would be earlier than 80%: 80%
        (0.0, 60.0, 0.0),
        (-5.0, 60.0, 0.0),  # already expired: now
    ],
)
def test_renew_delay(remaining: float, margin: float, expected: float) -> None:
    """Renewal is margin seconds before expiry, never before 80% of the lifetime, never < 0."""
    assert renew_delay(remaining, margin) == pytest.approx(expected)
