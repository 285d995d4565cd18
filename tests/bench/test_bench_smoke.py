"""The benchmark's pure helpers (percentiles, the sweep's bound, table rendering).

Nothing here is timed: performance is measured by ``python -m bench.run``, not by tests.
"""

from __future__ import annotations

import math

import pytest

from bench.idle import IdleResult, per_day
from bench.run import runs_for_poll
from bench.stats import (
    TenantCalls,
    api_bound,
    graph_tenant_rate,
    percentile,
    ratio,
    render_table,
    summarize,
    uniform_wait_plus,
)
from bench.tenants import SweepCase, WatchTenants, pages


def test_percentile_interpolates_like_numpy() -> None:
    data = [5.0, 1.0, 3.0, 2.0, 4.0]
    assert percentile(data, 50) == 3.0
    assert percentile(data, 0) == 1.0
    assert percentile(data, 100) == 5.0
    assert percentile(data, 95) == pytest.approx(4.8)
    assert percentile([1.0, 2.0], 50) == 1.5
    assert percentile([7.0], 95) == 7.0


@pytest.mark.parametrize("bad", [-1, 101])
def test_percentile_rejects_bad_input(bad: float) -> None:
    with pytest.raises(ValueError):
        percentile([1.0], bad)
    with pytest.raises(ValueError):
        percentile([], 50)


def test_summary() -> None:
    s = summarize([float(x) for x in range(1, 21)])
    assert (s.n, s.median, s.minimum, s.maximum) == (20, 10.5, 1.0, 20.0)
    assert s.p95 == pytest.approx(19.05)


def test_graph_quota_follows_tenant_size() -> None:
    # 3,500 / 5,000 / 8,000 resource units per 10 s for under 50, 50-500, above 500 users.
    assert [graph_tenant_rate(n) for n in (10, 49, 50, 500, 501)] == [350, 350, 500, 500, 800]


def test_bound_one_big_tenant_is_its_graph_quota() -> None:
    # 1,000 lookups in a tenant of 1,000 users at 800/s: 1.25 s; 13 sequential calls + 1: 0.7 s.
    bound = api_bound([TenantCalls(exchange=13, graph=1000, users=1000)], 0.05)
    assert bound.graph_tenant == pytest.approx(1.25)
    assert bound.exchange_chain == pytest.approx(0.7)
    assert bound.graph_app == pytest.approx(1000 / 7500)
    assert bound.seconds == pytest.approx(1.25)
    assert bound.binding == "graph quota per tenant"


def test_bound_many_small_tenants_is_the_exchange_chain() -> None:
    tenants = [TenantCalls(exchange=4, graph=10, users=10)] * 100
    bound = api_bound(tenants, 0.05)
    assert bound.seconds == pytest.approx(5 * 0.05)  # auth + one page + one lookup round trip
    assert bound.binding == "exchange chain"
    assert bound.graph_tenant == pytest.approx(10 / 350)


def test_bound_rejects_negative_latency() -> None:
    with pytest.raises(ValueError):
        api_bound([TenantCalls(1, 1)], -0.1)


def test_uniform_wait_plus_run_time() -> None:
    # A run of exactly 10 s after a wait uniform over 0-900 s: median 460 s, p95 865 s.
    assert uniform_wait_plus([10.0], 900, 50) == pytest.approx(460, abs=0.01)
    assert uniform_wait_plus([10.0], 900, 95) == pytest.approx(865, abs=0.01)
    # Two run times: the median sits between, the mixture of two uniforms.
    assert uniform_wait_plus([0.0, 100.0], 900, 50) == pytest.approx(500, abs=0.01)
    assert uniform_wait_plus([3.0, 5.0], 0, 50) == 4.0
    with pytest.raises(ValueError):
        uniform_wait_plus([], 900, 50)


def test_watch_tenants_names_and_accounts() -> None:
    group = WatchTenants("x", 3, users=2)
    assert group.names() == ["x3-0", "x3-1", "x3-2"]
    assert WatchTenants.account("x3-1", 4) == "e4@x3-1.onmicrosoft.com"


def test_idle_per_day_scales_the_sped_up_phase_back_to_the_defaults() -> None:
    fast = IdleResult(
        phase="sped up",
        tenants=1,
        interval=5,
        window=600,
        exchange_calls=120,
        token_calls=1,
        cpu_seconds=1.0,
        server_cpu_seconds=2.0,
        rows={"events": 20, "event_resources": 60, "log": 10, "task_run": 0},
    )
    day = per_day(fast)
    # 20 heartbeats in 10 min at 30 s = 480/day at 180 s; 10 summary lines at 1/min = 24/day.
    assert day["events"] == pytest.approx(480)
    assert day["event_resources"] == pytest.approx(1440)
    assert day["log"] == pytest.approx(24)
    assert day["task_run"] == 0
    assert fast.calls_per_tenant_hour == pytest.approx(720)
    assert fast.cpu_share == pytest.approx(1 / 600)


def test_ratio() -> None:
    assert ratio(3.0, 2.0) == 1.5
    assert math.isinf(ratio(1.0, 0.0))


def test_render_table_aligns_numbers_right() -> None:
    text = render_table(["name", "s"], [["serve", "1.50"], ["bare script", "-"]])
    lines = text.splitlines()
    assert lines[0] == "| name        |    s |"
    assert lines[1] == "|-------------|-----:|"
    assert lines[2] == "| serve       | 1.50 |"
    assert lines[3] == "| bare script |    - |"


def test_render_table_rejects_ragged_rows() -> None:
    with pytest.raises(ValueError):
        render_table(["a", "b"], [["1"]])


def test_sweep_case_spreads_entries_over_tenants() -> None:
    case = SweepCase(entries=1000, tenants=10)
    assert case.per_tenant() == [100] * 10
    assert len(set(case.tenant_names())) == 10
    assert SweepCase(10, 3).per_tenant() == [4, 3, 3]
    assert SweepCase(100, 1).tenant_names() == ["b-n100-t1"]


def test_pages() -> None:
    assert [pages(0), pages(1), pages(100), pages(101), pages(1000)] == [1, 1, 1, 2, 10]


def test_fewer_runs_for_slow_polling() -> None:
    assert [runs_for_poll(p, 20) for p in (1, 2, 5, 10)] == [20, 10, 6, 5]
