"""The request limits Microsoft states, honoured on our side before a request is sent.

Microsoft throttles some APIs far below the global Graph limits (learn.microsoft.com,
"Microsoft Graph service-specific throttling limits" and the ``Get-MessageTraceV2`` reference):

- identity and access reports (``auditLogs/signIns``, ``auditLogs/directoryAudits``) and
  authentication methods: 5 requests per 10 seconds per app per tenant;
- ``Get-MessageTraceV2``: 100 queries within a 5-minute running window.

:class:`RequestLimiter` keeps one sliding window per (tenant, app, bucket) and makes a caller wait
for a free slot, so a run stays under the limit instead of collecting 429s. The process shares one
limiter (:data:`SHARED`) because the limit is per app and tenant, not per client object. A wait
longer than the caller allows raises :class:`m365.errors.ThrottledError` (transient, with
``retry_after``) so the retry layer above decides, exactly as for a 429 from Microsoft.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .errors import ThrottledError

REPORTS = "reports"
MESSAGE_TRACE = "message_trace"


@dataclass(frozen=True)
class Limit:
    """At most ``requests`` within any ``per_seconds`` window."""

    requests: int
    per_seconds: float
    what: str

    def __post_init__(self) -> None:
        if self.requests < 1 or self.per_seconds <= 0:
            raise ValueError("a limit needs at least one request in a positive window")


MICROSOFT_LIMITS: Mapping[str, Limit] = {
    REPORTS: Limit(5, 10.0, "sign-in logs, directory audits and authentication methods"),
    MESSAGE_TRACE: Limit(100, 300.0, "Get-MessageTraceV2 queries"),
}


@dataclass(frozen=True)
class LimitKey:
    """Whose budget a request spends: one app registration in one tenant, one bucket."""

    tenant: str
    app: str
    bucket: str


class RequestLimiter:
    """Sliding-window limiter, thread-safe, first come first served.

    ``acquire`` reserves the earliest free slot under the lock and sleeps outside it, so callers
    never spin and are served in arrival order.
    """

    def __init__(
        self,
        limits: Mapping[str, Limit] = MICROSOFT_LIMITS,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.limits = dict(limits)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._slots: dict[tuple[str, str, str], deque[float]] = {}

    def acquire(self, key: LimitKey, *, max_wait: float | None = None) -> float:
        """Wait for a slot in ``key``'s bucket; return the seconds waited.

        Raises ``ThrottledError`` (nothing reserved) when the slot is more than ``max_wait``
        seconds away. An unknown bucket is a programming error (``KeyError``).
        """
        limit = self.limits[key.bucket]
        ident = (key.tenant.lower(), key.app.lower(), key.bucket)
        with self._lock:
            now = self._clock()
            slots = self._slots.setdefault(ident, deque())
            while slots and slots[0] <= now - limit.per_seconds:
                slots.popleft()
            start = now
            if len(slots) >= limit.requests:
                # The slot frees up one window after the request it replaces was sent.
                start = max(now, slots[len(slots) - limit.requests] + limit.per_seconds)
            wait = start - now
            if max_wait is not None and wait > max_wait:
                raise ThrottledError(
                    f"Microsoft allows {limit.requests} {limit.what} per "
                    f"{limit.per_seconds:g}s for this app and tenant; the next slot is "
                    f"{wait:.1f}s away, longer than this call may wait ({max_wait:g}s)",
                    status=429,
                    retry_after=wait,
                )
            slots.append(start)
        if wait > 0:
            self._sleep(wait)
        return wait

    def reset(self) -> None:
        """Forget every reservation (tests)."""
        with self._lock:
            self._slots.clear()


SHARED = RequestLimiter()
