"""Microsoft's stated per-app limits, honoured on our side (m365.limits), and the emulator's
``rate_limit`` fault that enforces them on the wire."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from emulator import Emulator
from emulator.faults import MICROSOFT_LIMITS
from m365 import M365Clients, RetryPolicy, build_clients
from m365.config import TenantConfig
from m365.errors import ThrottledError
from m365.limits import MESSAGE_TRACE, REPORTS, Limit, LimitKey, RequestLimiter

from .helpers import calls, waits


class Clock:
    """A fake monotonic clock whose sleep advances it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(round(seconds, 6))
            self.now += seconds


KEY = LimitKey("tenant", "app", REPORTS)


def test_reports_limit_is_five_per_ten_seconds() -> None:
    clock = Clock()
    limiter = RequestLimiter(clock=clock, sleep=clock.sleep)
    waits = [limiter.acquire(KEY) for _ in range(11)]
    assert waits[:5] == [0.0] * 5
    assert waits[5] == pytest.approx(10.0)  # the 6th waits for the 1st to leave the window
    assert waits[6:10] == [0.0] * 4  # the clock is now at 10 s: four more fit
    assert waits[10] == pytest.approx(10.0)
    assert clock.now == pytest.approx(20.0)


def test_message_trace_limit_is_a_hundred_per_five_minutes() -> None:
    clock = Clock()
    limiter = RequestLimiter(clock=clock, sleep=clock.sleep)
    key = LimitKey("tenant", "app", MESSAGE_TRACE)
    for _ in range(100):
        assert limiter.acquire(key) == 0.0
    assert limiter.acquire(key) == pytest.approx(300.0)


def test_buckets_are_per_tenant_app_and_bucket() -> None:
    clock = Clock()
    limiter = RequestLimiter(clock=clock, sleep=clock.sleep)
    for _ in range(5):
        limiter.acquire(KEY)
    assert limiter.acquire(LimitKey("tenant", "other-app", REPORTS)) == 0.0
    assert limiter.acquire(LimitKey("other-tenant", "app", REPORTS)) == 0.0
    assert limiter.acquire(LimitKey("TENANT", "APP", MESSAGE_TRACE)) == 0.0
    assert limiter.acquire(LimitKey("TENANT", "APP", REPORTS)) == pytest.approx(10.0)


def test_a_wait_longer_than_allowed_is_a_throttled_error_that_reserves_nothing() -> None:
    clock = Clock()
    limiter = RequestLimiter(clock=clock, sleep=clock.sleep)
    for _ in range(5):
        limiter.acquire(KEY)
    with pytest.raises(ThrottledError) as info:
        limiter.acquire(KEY, max_wait=2.0)
    assert info.value.retry_after == pytest.approx(10.0)
    assert "5 sign-in logs" in str(info.value) and "10s" in str(info.value)
    assert clock.sleeps == []
    assert limiter.acquire(KEY) == pytest.approx(10.0)  # the refused call took no slot


def test_waiting_callers_are_served_in_arrival_order() -> None:
    clock = Clock()
    limiter = RequestLimiter({REPORTS: Limit(1, 1.0, "x")}, clock=clock, sleep=lambda s: None)
    waits = [limiter.acquire(KEY) for _ in range(4)]
    assert waits == [0.0, 1.0, 2.0, 3.0]  # reservations queue up, nobody is starved


def test_clients_wait_for_a_slot_instead_of_collecting_429s(
    config: TenantConfig, emulator: Emulator
) -> None:
    """The client's limiter holds 5 per 2 s; the emulator enforces 5 per 1.5 s per app. The
    emulator counts arrivals and the limiter counts sends, so on a loaded machine a late first
    arrival would make an equal window refuse a request the client rightly sent."""
    emulator.faults.add(
        endpoint=MICROSOFT_LIMITS[0]["endpoint"], kind="rate_limit", limit=5, window=1.5
    )
    limits = {REPORTS: Limit(5, 2.0, "reports (scaled down)"), MESSAGE_TRACE: Limit(100, 300, "")}
    clients = build_clients(config, limiter=RequestLimiter(limits))
    user = clients.graph.get_user("rob@contoso.com")
    for _ in range(7):
        clients.graph.list_authentication_methods(user.id)
    records = calls(emulator, "graph.auth_methods")
    assert [r.status for r in records] == [200] * 7
    assert records[5].monotonic - records[0].monotonic >= 1.5


def test_without_our_limiter_the_emulator_throttles_and_the_retry_policy_waits(
    config: TenantConfig, emulator: Emulator
) -> None:
    emulator.faults.add(
        endpoint=MICROSOFT_LIMITS[0]["endpoint"], kind="rate_limit", limit=2, window=1.0
    )
    loose = RequestLimiter({REPORTS: Limit(1000, 1.0, ""), MESSAGE_TRACE: Limit(1000, 1.0, "")})
    clients: M365Clients = build_clients(config, limiter=loose)
    user = clients.graph.get_user("rob@contoso.com")
    for _ in range(3):
        clients.graph.list_authentication_methods(user.id)
    # the last wait is what Retry-After said: when the slot frees up
    assert waits(emulator, "graph.auth_methods", [200, 200, 429, 200])[-1] > 0.5


def test_the_reports_limit_is_shared_by_the_endpoints_it_covers(
    config: TenantConfig, emulator: Emulator
) -> None:
    """Microsoft's 5-per-10-s budget spans sign-ins, directory audits and methods alike."""
    emulator.faults.add(**MICROSOFT_LIMITS[0])
    loose = RequestLimiter({REPORTS: Limit(1000, 1.0, ""), MESSAGE_TRACE: Limit(1000, 1.0, "")})
    clients = build_clients(config, limiter=loose, retry_policy=RetryPolicy(max_attempts=1))
    user = clients.graph.get_user("rob@contoso.com")
    start = datetime.now(UTC) - timedelta(days=1)
    clients.graph.list_authentication_methods(user.id)
    clients.graph.list_authentication_methods(user.id)
    clients.graph.list_sign_ins(user.id, start)
    clients.graph.list_security_info_events(user.id, start)
    clients.graph.list_consent_events(user.id, start)
    with pytest.raises(ThrottledError) as info:
        clients.graph.list_sign_ins(user.id, start)
    assert info.value.retry_after is not None and 5 < info.value.retry_after <= 10
    # another app of the tenant has its own budget
    other = build_clients(emulator.tenant_config("contoso", app="privileged"), limiter=loose)
    other.graph.list_authentication_methods(user.id)
