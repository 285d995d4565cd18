"""The one retry policy shared by every client (Graph, Exchange, token endpoint).

Only :class:`m365.errors.TransientError` is ever retried (``m365.errors.is_retryable``); the policy
decides *how long* to wait: ``Retry-After`` when the service sent one (seconds, fractions allowed,
or an HTTP-date), otherwise exponential backoff with full jitter. Every wait is bounded by
``max_wait_seconds`` and the whole call by ``max_attempts`` and ``max_total_seconds``. When the
service asks for a wait longer than the remaining budget the policy gives up at once and re-raises
the error, whose ``retry_after`` tells a higher layer (a Prefect task retry) how long to wait; a
wait longer than ``max_wait_seconds`` is named in the error's message. Where the service gives the
wait only in its error text (Exchange: "... Retry after N seconds"), the transport reads it into
``retry_after`` so it is honoured the same way.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

from .errors import TransientError, is_retryable

T = TypeVar("T")

log = logging.getLogger("m365.retry")

RETRY_STATUSES: frozenset[int] = frozenset({408, 429, 500, 502, 503, 504})


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header value, or None when absent or unusable.

    Accepts delta-seconds (``"2"``, and the fractional ``"2.128"`` Graph sends) and an HTTP-date.
    Negative or past values mean "now" (0.0); garbage, NaN and infinities mean None.
    """
    if value is None:
        return None
    text = value.strip()
    if not text or len(text) > 64:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a transient failure.

    ``max_attempts`` counts the first try. ``backoff_initial * backoff_multiplier**(n-1)`` (capped
    by ``backoff_max``) is the ceiling of the n-th backoff; the actual wait is drawn uniformly
    from ``[ceiling * (1 - jitter), ceiling]``.
    """

    max_attempts: int = 5
    max_total_seconds: float = 60.0
    max_wait_seconds: float = 30.0
    backoff_initial: float = 0.5
    backoff_multiplier: float = 2.0
    backoff_max: float = 8.0
    jitter: float = 1.0
    retry_statuses: frozenset[int] = field(default=RETRY_STATUSES)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.max_total_seconds < 0 or self.max_wait_seconds < 0:
            raise ValueError("time budgets must not be negative")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("jitter is a fraction between 0 and 1")

    def backoff(self, attempt: int) -> float:
        """Wait before retry number ``attempt`` (1-based) when the service gave no Retry-After."""
        ceiling = min(
            self.backoff_max, self.backoff_initial * self.backoff_multiplier ** max(0, attempt - 1)
        )
        return random.uniform(ceiling * (1.0 - self.jitter), ceiling)

    def wait_for(self, exc: TransientError, attempt: int) -> float:
        """The wait the service asked for, or backoff."""
        if exc.retry_after is not None:
            return exc.retry_after
        return self.backoff(attempt)

    def run(
        self,
        call: Callable[[], T],
        *,
        operation: str = "call",
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> T:
        """Run ``call`` until it succeeds, fails for good, or the budget is spent.

        Non-transient errors propagate at once. The last transient error propagates unchanged
        when attempts or time run out, keeping its ``retry_after``.
        """
        started = clock()
        attempt = 1
        while True:
            try:
                return call()
            except TransientError as exc:
                if not is_retryable(exc) or attempt >= self.max_attempts:
                    raise
                wait = self.wait_for(exc, attempt)
                remaining = self.max_total_seconds - (clock() - started)
                if wait > self.max_wait_seconds or wait > remaining:
                    log.info(
                        "%s: giving up after %d attempt(s); service asks to wait %.2fs",
                        operation,
                        attempt,
                        wait,
                    )
                    if exc.retry_after is None:
                        exc.retry_after = wait
                    elif "longer than this call may" not in exc.message:
                        allowed = max(0.0, min(self.max_wait_seconds, remaining))
                        exc.message = (
                            f"{exc.message} (the service asks to wait {wait:g}s, longer than "
                            f"this call may still wait: {allowed:.1f}s; retry later)"
                        )
                        exc.args = (exc.message,)
                    raise
                log.info(
                    "%s: %s; retry %d in %.2fs",
                    operation,
                    type(exc).__name__,
                    attempt,
                    wait,
                )
                sleep(wait)
                attempt += 1
