"""The benchmark's pure helpers (percentiles, the sweep's lower bound, table rendering).

Nothing here is timed: performance is measured by ``python -m bench.run``, not by tests.
"""

from __future__ import annotations

import math

import pytest

from bench.run import runs_for_poll
from bench.stats import (
    SweepLimits,
    TenantCalls,
    lower_bound,
    percentile,
    ratio,
    render_table,
    summarize,
)
from bench.tenants import SweepCase, pages


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


def test_lower_bound_one_tenant_is_the_graph_bucket() -> None:
    # 1,000 lookups at 25/s after a burst of 25: 39 s; 8 threads x 50 ms would allow 6.25 s.
    bound = lower_bound([TenantCalls(exchange=13, graph=1000)], 0.05, SweepLimits())
    assert bound.graph_rate == pytest.approx(39.0)
    assert bound.graph_concurrency == pytest.approx(6.25)
    assert bound.exchange_chain == pytest.approx(0.65)
    assert bound.seconds == pytest.approx(39.0)
    assert bound.binding == "graph rate"


def test_lower_bound_without_bucket_is_calls_times_latency_over_concurrency() -> None:
    limits = SweepLimits(graph_rate=None)
    tenants = [TenantCalls(exchange=4, graph=100)] * 10
    bound = lower_bound(tenants, 0.05, limits)
    # Tenants are independent: each needs 100 x 50 ms / 8 threads; the rate adds nothing.
    assert bound.seconds == pytest.approx(100 * 0.05 / 8)
    assert bound.graph_rate == 0.0
    assert bound.binding == "graph concurrency"


def test_lower_bound_exchange_chain_binds_with_few_lookups() -> None:
    limits = SweepLimits(exchange_per_tenant=1, graph_workers_per_tenant=8, graph_rate=None)
    bound = lower_bound([TenantCalls(exchange=12, graph=8)], 0.1, limits)
    assert bound.seconds == pytest.approx(1.2)
    assert bound.binding == "exchange chain"


def test_lower_bound_rejects_negative_latency() -> None:
    with pytest.raises(ValueError):
        lower_bound([TenantCalls(1, 1)], -0.1, SweepLimits())


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
