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


@dataclass(frozen=True)
class SweepLimits:
    """The concurrency the sweep is allowed (its ``SweepRequest`` settings)."""

    exchange_per_tenant: int = 1  # exchange_concurrency_per_tenant
    graph_workers_per_tenant: int = 8  # resolve_workers
    graph_rate: float | None = 25.0  # graph_requests_per_second, all tenants; None = no bucket
    graph_burst: int = 25  # graph_burst: requests the bucket lets through at once


@dataclass(frozen=True)
class TenantCalls:
    """Calls one tenant's sweep needs: sequential ones (auth + Exchange pages) and Graph reads."""

    exchange: int  # OIDC discovery + tokens + Get-BlockedSenderAddress pages
    graph: int  # /users lookups


@dataclass(frozen=True)
class LowerBound:
    seconds: float
    exchange_chain: float  # longest per-tenant sequential chain
    graph_concurrency: float  # longest per-tenant Graph share at the allowed thread count
    graph_rate: float  # all Graph calls at the bucket's rate (0 without a bucket)

    @property
    def binding(self) -> str:
        """Which limit sets the bound."""
        parts = {
            "exchange chain": self.exchange_chain,
            "graph concurrency": self.graph_concurrency,
            "graph rate": self.graph_rate,
        }
        return max(parts, key=lambda k: parts[k])


def lower_bound(tenants: Sequence[TenantCalls], latency: float, limits: SweepLimits) -> LowerBound:
    """calls x latency / allowed concurrency, per limit; the sweep is no faster than the worst.

    - Exchange: a tenant's pages follow ``@odata.nextLink`` one after the other, at most
      ``exchange_per_tenant`` requests per tenant at once; tenants are independent.
    - Graph: ``graph_workers_per_tenant`` lookups at once per tenant, and at most ``graph_rate``
      requests per second for the whole sweep after a burst of ``graph_burst``.

    Each limit alone bounds the run from below; pipelining could overlap them, so the bound is
    their maximum (not their sum).
    """
    if latency < 0:
        raise ValueError("latency must be >= 0")
    exchange = max((t.exchange * latency / limits.exchange_per_tenant for t in tenants), default=0)
    graph_conc = max(
        (t.graph * latency / limits.graph_workers_per_tenant for t in tenants), default=0
    )
    total_graph = sum(t.graph for t in tenants)
    graph_rate = (
        max(0, total_graph - limits.graph_burst) / limits.graph_rate if limits.graph_rate else 0.0
    )
    return LowerBound(
        seconds=max(exchange, graph_conc, graph_rate),
        exchange_chain=exchange,
        graph_concurrency=graph_conc,
        graph_rate=graph_rate,
    )


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
