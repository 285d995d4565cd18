"""Pure helpers: percentiles, summaries, the sweep's lower bound, table rendering.

No I/O and no Prefect here, so ``tests/bench`` can check them quickly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


def percentile(values: Iterable[float], q: float) -> float:
    """The ``q``-th percentile (0-100), linear interpolation between closest ranks (numpy's
    default). Raises ``ValueError`` on an empty input or a ``q`` outside 0-100."""
    data = sorted(values)
    if not data:
        raise ValueError("percentile of an empty sequence")
    if not 0 <= q <= 100:
        raise ValueError("q must be between 0 and 100")
    pos = (len(data) - 1) * q / 100
    lo = math.floor(pos)
    hi = math.ceil(pos)
    if lo == hi:
        return data[lo]
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


@dataclass(frozen=True)
class Summary:
    n: int
    median: float
    p95: float
    minimum: float
    maximum: float


def summarize(values: Sequence[float]) -> Summary:
    return Summary(
        n=len(values),
        median=percentile(values, 50),
        p95=percentile(values, 95),
        minimum=min(values),
        maximum=max(values),
    )


# Microsoft Graph's identity and access (directory) quotas, per app and tenant by tenant size, and
# per app across all tenants; a user lookup with $select costs 1 resource unit
# (https://learn.microsoft.com/graph/throttling-limits, "Identity and access service limits").
GRAPH_SMALL, GRAPH_MEDIUM, GRAPH_LARGE = 3500 / 10, 5000 / 10, 8000 / 10  # per app and tenant
GRAPH_APP_RATE = 150_000 / 20  # per app across all tenants


def graph_tenant_rate(users: int) -> float:
    """Sustained Graph directory requests per second Microsoft allows one app in one tenant:
    S under 50 users, M 50-500, L above 500."""
    if users < 50:
        return GRAPH_SMALL
    return GRAPH_MEDIUM if users <= 500 else GRAPH_LARGE


@dataclass(frozen=True)
class TenantCalls:
    """Calls one tenant's sweep needs: sequential ones (auth + Exchange pages) and Graph reads."""

    exchange: int  # OIDC discovery + tokens + Get-BlockedSenderAddress pages
    graph: int  # /users lookups
    users: int = 0  # directory size: sets the tenant's Graph quota


@dataclass(frozen=True)
class ApiBound:
    """The fastest a sweep could be under Microsoft's limits alone, at the injected latency."""

    seconds: float
    exchange_chain: float  # longest per-tenant chain: auth, then pages one after the other
    graph_tenant: float  # longest per-tenant share of lookups at the tenant's Graph quota
    graph_app: float  # every lookup at the per-app quota across tenants

    @property
    def binding(self) -> str:
        parts = {
            "exchange chain": self.exchange_chain,
            "graph quota per tenant": self.graph_tenant,
            "graph quota per app": self.graph_app,
        }
        return max(parts, key=lambda k: parts[k])


def api_bound(tenants: Sequence[TenantCalls], latency: float) -> ApiBound:
    """The sweep is no faster than the slowest of Microsoft's limits.

    - Exchange: a tenant's list is paged by ``@odata.nextLink``, so its pages (after discovery
      and the tokens) come one after the other; the last page's lookups need one more round
      trip. Tenants are independent.
    - Graph: no concurrency cap is published for directory reads, only quotas: each tenant's
      lookups at its per-tenant rate, all lookups at the per-app rate (sustained rates; the
      10-20 s windows would even allow a burst).
    """
    if latency < 0:
        raise ValueError("latency must be >= 0")
    exchange = max(((t.exchange + (1 if t.graph else 0)) * latency for t in tenants), default=0.0)
    graph_tenant = max((t.graph / graph_tenant_rate(t.users) for t in tenants), default=0.0)
    graph_app = sum(t.graph for t in tenants) / GRAPH_APP_RATE
    return ApiBound(
        seconds=max(exchange, graph_tenant, graph_app),
        exchange_chain=exchange,
        graph_tenant=graph_tenant,
        graph_app=graph_app,
    )


def uniform_wait_plus(samples: Sequence[float], period: float, q: float) -> float:
    """The ``q``-th percentile of W + T, W uniform over [0, period) (the wait for the next
    scheduled run) and T drawn from ``samples`` (the run's own time), independent."""
    if not samples:
        raise ValueError("no samples")
    if period <= 0:
        return percentile(samples, q)
    target = q / 100

    def cdf(x: float) -> float:
        return sum(min(1.0, max(0.0, (x - t) / period)) for t in samples) / len(samples)

    lo, hi = min(samples), max(samples) + period
    for _ in range(100):
        mid = (lo + hi) / 2
        if cdf(mid) < target:
            lo = mid
        else:
            hi = mid
    return hi


def ratio(value: float, reference: float) -> float:
    """value / reference; inf when the reference is 0."""
    return value / reference if reference > 0 else math.inf


def fmt_seconds(value: float | None, digits: int = 2) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.{digits}f}"


def fmt_mib(kib: float | None) -> str:
    return "-" if kib is None else f"{kib / 1024:.0f}"


def render_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table; numbers right-aligned, text left-aligned."""
    if any(len(r) != len(headers) for r in rows):
        raise ValueError("every row needs one cell per header")
    cells = [[str(c) for c in r] for r in rows]
    numeric = [
        all(_looks_numeric(r[i]) for r in cells) and bool(cells) for i in range(len(headers))
    ]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        padded = [
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return "| " + " | ".join(padded) + " |"

    sep = (
        "|"
        + "|".join(
            ("-" * (w + 1) + ":") if num else ("-" * (w + 2))
            for w, num in zip(widths, numeric, strict=True)
        )
        + "|"
    )
    return "\n".join([line(list(headers)), sep, *(line(r) for r in cells)])


def _looks_numeric(text: str) -> bool:
    stripped = text.replace(",", "").replace("%", "").strip()
    if stripped == "-":
        return True
    try:
        float(stripped)
    except ValueError:
        return False
    return True
