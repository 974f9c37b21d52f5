"""parse_retry_after and RetryPolicy: the server's word when it gives one, else bounded backoff."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from importer.send.retry import RetryPolicy, parse_retry_after

NOW = datetime(2026, 11, 27, 10, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("1.5", 1.5),
        ("2.128", 2.128),
        (" 3 ", 3.0),
        ("0", 0.0),
        ("0.0", 0.0),
        ("-3", 0.0),
        ("-0.5", 0.0),
        ("120", 120.0),
        ("abc", None),
        ("", None),
        ("   ", None),
        (None, None),
        ("nan", None),
        ("inf", None),
        ("Fri, 27 Nov 2026 10:00:05 GMT", 5.0),
        ("Fri, 27 Nov 2026 10:02:00 GMT", 120.0),
        ("Fri, 27 Nov 2026 12:00:05 +0200", 5.0),
        ("Fri, 27 Nov 2026 10:00:05 -0000", 5.0),
        ("Fri, 27 Nov 2026 10:00:00 GMT", 0.0),
        ("Fri, 27 Nov 2026 09:59:00 GMT", 0.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
        ("Fri, 32 Nov 2026 10:00:05 GMT", None),
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, now=NOW) == seconds


def test_parse_retry_after_http_date_uses_the_current_time_by_default() -> None:
    soon = datetime.now(UTC) + timedelta(seconds=30)
    value = parse_retry_after(soon.strftime("%a, %d %b %Y %H:%M:%S GMT"))
    assert value is not None
    assert 25.0 <= value <= 30.0


class _LowestRandom(random.Random):
    """A generator that always draws the lowest value of a range."""

    def uniform(self, a: float, b: float) -> float:
        return a


class _HighestRandom(random.Random):
    """A generator that always draws the highest value of a range."""

    def uniform(self, a: float, b: float) -> float:
        return b


@pytest.mark.parametrize(
    ("retry_after", "wait"),
    [(1.5, 1.5), (0.001, 0.001), (2.128, 2.128), (30.0, 30.0), (600.0, 600.0)],
)
@pytest.mark.parametrize("attempt", [1, 2, 7])
def test_wait_for_uses_retry_after_when_positive(
    attempt: int, retry_after: float, wait: float
) -> None:
    policy = RetryPolicy(rng=_HighestRandom())
    assert policy.wait_for(attempt, retry_after) == wait


@pytest.mark.parametrize("retry_after", [None, 0.0])
@pytest.mark.parametrize(
    ("attempt", "lowest", "highest"),
    [(1, 0.25, 1.0), (2, 0.25, 2.0), (3, 0.25, 4.0), (6, 0.25, 32.0), (7, 0.25, 60.0),
     (50, 0.25, 60.0), (1000, 0.25, 60.0)],
)  # fmt: skip
def test_wait_for_falls_back_to_backoff_never_zero_never_above_cap(
    retry_after: float | None, attempt: int, lowest: float, highest: float
) -> None:
    assert RetryPolicy(rng=_LowestRandom()).wait_for(attempt, retry_after) == lowest
    assert RetryPolicy(rng=_HighestRandom()).wait_for(attempt, retry_after) == highest


@pytest.mark.parametrize(
    ("base", "cap"),
    [
        (1.0, 60.0),
        (0.5, 10.0),
        (0.01, 0.05),
        (1.0, 0.2),
    ],
)
def test_backoff_stays_within_floor_and_cap(base: float, cap: float) -> None:
    policy = RetryPolicy(backoff_base=base, backoff_cap=cap, rng=random.Random(42))
    waits = [policy.wait_for(attempt, None) for attempt in range(1, 60) for _ in range(20)]
    assert min(waits) > 0
    assert max(waits) <= cap


def test_backoff_grows_with_attempts_on_average() -> None:
    policy = RetryPolicy(rng=random.Random(7))
    first = sum(policy.backoff(1) for _ in range(500)) / 500
    fifth = sum(policy.backoff(5) for _ in range(500)) / 500
    assert first < 1.0 < 4.0 < fifth <= 16.0


def test_policy_repr_is_readable() -> None:
    assert repr(RetryPolicy()) == (
        "RetryPolicy(max_attempts=8, deadline=600.0, max_retry_after=300.0, "
        "backoff_base=1.0, backoff_cap=60.0)"
    )
