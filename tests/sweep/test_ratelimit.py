"""The sweep's in-process limits (playbook.ratelimit), with a fake clock where time matters."""

from __future__ import annotations

import threading
import time

import pytest

from playbook.ratelimit import KeyedConcurrencyLimit, RateLimitTimeout, TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_bucket_allows_a_burst_then_paces_at_the_rate():
    clock = FakeClock()
    bucket = TokenBucket(rate=10, capacity=5, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        assert bucket.acquire() == 0
    assert bucket.acquire() == pytest.approx(0.1)
    assert bucket.acquire() == pytest.approx(0.1)
    # 20 more at 10/s take 2 s of simulated time
    for _ in range(20):
        bucket.acquire()
    assert clock.now == pytest.approx(2.2)
    assert bucket.acquired == 27


def test_bucket_refills_up_to_capacity_only():
    clock = FakeClock()
    bucket = TokenBucket(rate=10, capacity=3, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        bucket.acquire()
    clock.now += 60  # idle for a minute: still only 3 saved up
    waits = [bucket.acquire() for _ in range(4)]
    assert waits[:3] == [0, 0, 0] and waits[3] == pytest.approx(0.1)


def test_bucket_timeout_and_bad_arguments():
    clock = FakeClock()
    bucket = TokenBucket(rate=1, capacity=1, clock=clock, sleep=clock.sleep)
    bucket.acquire()
    with pytest.raises(RateLimitTimeout):
        bucket.acquire(timeout=0.5)
    with pytest.raises(ValueError):
        TokenBucket(rate=0)
    with pytest.raises(ValueError):
        bucket.acquire(2)


def test_bucket_is_shared_fairly_by_threads_in_real_time():
    bucket = TokenBucket(rate=200, capacity=10)
    start = time.monotonic()
    threads = [
        threading.Thread(target=lambda: [bucket.acquire() for _ in range(15)]) for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    elapsed = time.monotonic() - start
    # 60 tokens, 10 up front, 50 at 200/s: at least 0.25 s
    assert elapsed >= 0.24
    assert bucket.acquired == 60


def test_keyed_limit_caps_each_key_separately():
    limit = KeyedConcurrencyLimit(2)
    active: dict[str, int] = {"a": 0, "b": 0}
    peak: dict[str, int] = {"a": 0, "b": 0}
    lock = threading.Lock()

    def work(key: str) -> None:
        with limit.slot(key):
            with lock:
                active[key] += 1
                peak[key] = max(peak[key], active[key])
            time.sleep(0.02)
            with lock:
                active[key] -= 1

    threads = [threading.Thread(target=work, args=(k,)) for k in "ab" * 6]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert peak == {"a": 2, "b": 2}
    assert limit.peak == {"a": 2, "b": 2}


def test_keyed_limit_timeout():
    limit = KeyedConcurrencyLimit(1)
    with limit.slot("t"), pytest.raises(RateLimitTimeout), limit.slot("t", timeout=0.01):
        pass
    with limit.slot("t"):  # released after the failure
        pass
