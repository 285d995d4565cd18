"""RetryPolicy on its own: which errors, which waits, which budget (no network)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from m365.errors import (
    ConnectionFailedError,
    NotFoundError,
    ServiceUnavailableError,
    ThrottledError,
    TransientError,
)
from m365.retry import RetryPolicy, parse_retry_after


class Clock:
    """A fake clock advanced only by the injected sleep."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


def failing(errors: list[Exception], result: str = "ok"):  # type: ignore[no-untyped-def]
    calls = {"n": 0}

    def call() -> str:
        calls["n"] += 1
        if errors:
            raise errors.pop(0)
        return result

    return call, calls


@pytest.mark.parametrize(
    ("value", "expected"),
    [("2", 2.0), ("0.4", 0.4), ("2.128", 2.128), (" 3 ", 3.0), ("-1", 0.0)],
)
def test_parse_retry_after_seconds(value: str, expected: float) -> None:
    assert parse_retry_after(value) == pytest.approx(expected)


def test_parse_retry_after_http_date() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    header = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(header, now=now) == pytest.approx(30.0)
    past = format_datetime(now - timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(past, now=now) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "nan", "inf", "1" * 100])
def test_parse_retry_after_garbage(value: str | None) -> None:
    assert parse_retry_after(value) is None


def test_honours_retry_after_exactly() -> None:
    clock = Clock()
    call, calls = failing(
        [ThrottledError("429", status=429, retry_after=0.4), ThrottledError("429", retry_after=2.5)]
    )
    assert RetryPolicy().run(call, sleep=clock.sleep, clock=clock) == "ok"
    assert clock.sleeps == [0.4, 2.5]
    assert calls["n"] == 3


def test_backoff_is_exponential_with_jitter_and_capped() -> None:
    policy = RetryPolicy(
        max_attempts=8, backoff_initial=0.5, backoff_max=4.0, max_total_seconds=999
    )
    clock = Clock()
    call, _ = failing([ServiceUnavailableError("503") for _ in range(7)])
    policy.run(call, sleep=clock.sleep, clock=clock)
    ceilings = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0]
    assert len(clock.sleeps) == 7
    for wait, ceiling in zip(clock.sleeps, ceilings, strict=True):
        assert 0.0 <= wait <= ceiling
    assert len(set(clock.sleeps)) > 1  # jittered, not a fixed ladder


def test_gives_up_after_max_attempts() -> None:
    clock = Clock()
    call, calls = failing([ConnectionFailedError("reset") for _ in range(10)])
    with pytest.raises(ConnectionFailedError):
        RetryPolicy(max_attempts=3).run(call, sleep=clock.sleep, clock=clock)
    assert calls["n"] == 3


def test_retry_after_beyond_budget_gives_up_at_once_with_the_wait() -> None:
    clock = Clock()
    call, calls = failing([ThrottledError("429", status=429, retry_after=120.0)])
    with pytest.raises(ThrottledError) as info:
        RetryPolicy(max_wait_seconds=30).run(call, sleep=clock.sleep, clock=clock)
    assert calls["n"] == 1
    assert clock.sleeps == []
    assert info.value.retry_after == 120.0


def test_total_budget_bounds_the_call() -> None:
    clock = Clock()
    call, calls = failing([ThrottledError("429", retry_after=4.0) for _ in range(10)])
    with pytest.raises(ThrottledError):
        RetryPolicy(max_attempts=10, max_total_seconds=10).run(call, sleep=clock.sleep, clock=clock)
    assert clock.sleeps == [4.0, 4.0]  # a third 4 s wait would pass the 10 s budget
    assert calls["n"] == 3


def test_non_transient_errors_are_not_retried() -> None:
    clock = Clock()
    call, calls = failing([NotFoundError("gone", status=404)])
    with pytest.raises(NotFoundError):
        RetryPolicy().run(call, sleep=clock.sleep, clock=clock)
    assert calls["n"] == 1


def test_policy_is_frozen_and_validated() -> None:
    policy = RetryPolicy()
    with pytest.raises(AttributeError):
        policy.max_attempts = 9  # type: ignore[misc]
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    assert isinstance(ThrottledError("x"), TransientError)
