"""In-process limits for sweeps: a token bucket for Graph, a per-tenant cap for Exchange.

Prefect's own ``rate_limit`` asks the server for every slot and its ``Retry-After`` grows with
the number of denied slots (gaps of 2-5 s for a nominal 0.5 s), far too coarse for thousands of
small Graph reads. These limits live in the sweep's process and are shared by all its threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class RateLimitTimeout(TimeoutError):
    """A caller would have waited longer than its ``timeout`` for a token or a slot."""


class TokenBucket:
    """A thread-safe token bucket: ``rate`` tokens per second, at most ``capacity`` saved up.

    ``acquire`` reserves its tokens at once (the balance may go below zero) and then sleeps
    outside the lock until its reservation is covered, so waiting callers are served in
    arrival order and never spin.
    """

    def __init__(
        self,
        rate: float,
        capacity: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        self.capacity = float(capacity if capacity is not None else max(1.0, rate))
        if self.capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = self.capacity
        self._stamp = clock()
        self.acquired = 0
        self.waited_seconds = 0.0

    def _refill(self, now: float) -> None:
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def acquire(self, tokens: float = 1.0, *, timeout: float | None = None) -> float:
        """Take ``tokens``, sleeping as long as needed; return the seconds waited."""
        if tokens <= 0 or tokens > self.capacity:
            raise ValueError("tokens must be positive and at most the capacity")
        with self._lock:
            self._refill(self._clock())
            wait = max(0.0, (tokens - self._tokens) / self.rate)
            if timeout is not None and wait > timeout:
                raise RateLimitTimeout(f"a token would take {wait:.2f}s (timeout {timeout}s)")
            self._tokens -= tokens
            self.acquired += int(tokens)
            self.waited_seconds += wait
        if wait > 0:
            self._sleep(wait)
        return wait


class KeyedConcurrencyLimit:
    """At most ``limit`` holders per key at once (e.g. Exchange requests per tenant)."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self._lock = threading.Lock()
        self._semaphores: dict[str, threading.BoundedSemaphore] = {}
        self._holders: dict[str, int] = {}
        self.peak: dict[str, int] = {}

    def _semaphore(self, key: str) -> threading.BoundedSemaphore:
        with self._lock:
            sem = self._semaphores.get(key)
            if sem is None:
                sem = self._semaphores[key] = threading.BoundedSemaphore(self.limit)
            return sem

    @contextmanager
    def slot(self, key: str, *, timeout: float | None = None) -> Iterator[None]:
        """Hold one of the key's slots for the duration of the ``with`` block."""
        sem = self._semaphore(key)
        if not sem.acquire(timeout=timeout):
            raise RateLimitTimeout(f"no free slot for {key!r} within {timeout}s")
        with self._lock:
            self._holders[key] = self._holders.get(key, 0) + 1
            self.peak[key] = max(self.peak.get(key, 0), self._holders[key])
        try:
            yield
        finally:
            with self._lock:
                self._holders[key] -= 1
            sem.release()
