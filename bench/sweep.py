"""Part 2: the restricted-sweep flow against a bare sequential script and the lower bound."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emulator import Emulator
from emulator.recording import RecordedRequest

from .infra import PrefectEnv, Processes, log, run_child
from .stats import LowerBound, SweepLimits, TenantCalls, lower_bound
from .tenants import SweepCase, config_payload

# The sweep's defaults (playbook.sweep.SweepRequest); "unthrottled" lifts only the project's own
# Graph token bucket, keeping Microsoft's per-tenant Exchange cap and the thread count.
DEFAULT_SETTINGS: dict[str, Any] = {}
UNTHROTTLED_SETTINGS: dict[str, Any] = {"graph_requests_per_second": 1000.0, "graph_burst": 1000}


def limits_for(settings: dict[str, Any]) -> SweepLimits:
    from playbook.sweep import SweepRequest

    req = SweepRequest.model_validate(settings)
    return SweepLimits(
        exchange_per_tenant=req.exchange_concurrency_per_tenant,
        graph_workers_per_tenant=req.resolve_workers,
        graph_rate=req.graph_requests_per_second,
        graph_burst=req.graph_burst,
    )


@dataclass
class Profile:
    """Where the time of one run went, from the emulator's log (seconds)."""

    before_first_call: float  # flow/task start-up, block loading, MSAL
    listing: float  # first request -> last Exchange page
    resolving: float  # first -> last Graph /users lookup
    after_last_call: float  # artifacts, summary, flow-run finish
    graph_rate: float  # achieved Graph lookups per second while resolving


@dataclass
class SweepRun:
    case: SweepCase
    variant: str  # "prefect" | "prefect-unthrottled" | "bare"
    wall: float  # flow call (or script loop) start -> end
    process_wall: float  # process start -> exit, incl. imports
    calls: int
    maxrss_kib: int
    bound: LowerBound
    profile: Profile
    endpoints: dict[str, int] = field(default_factory=dict)

    @property
    def calls_per_entry(self) -> float:
        return self.calls / self.case.entries


def _window(emu: Emulator, t0: float, t1: float) -> list[RecordedRequest]:
    return [r for r in emu.requests if t0 <= r.monotonic <= t1]


def tenant_calls(records: list[RecordedRequest], tenants: list[str]) -> list[TenantCalls]:
    """Per tenant: sequential calls (discovery, tokens, Exchange) and Graph lookups."""
    seq: Counter[str] = Counter()
    graph: Counter[str] = Counter()
    unattributed = 0
    for r in records:
        if r.endpoint.startswith("graph."):
            graph[r.tenant or "?"] += 1
        elif r.tenant in tenants:
            seq[r.tenant] += 1
        else:
            unattributed += 1  # OIDC discovery carries no tenant: one per MSAL app
    share = unattributed / max(1, len(tenants))
    return [TenantCalls(exchange=round(seq[t] + share), graph=graph[t]) for t in tenants]


def _profile(records: list[RecordedRequest], t0: float, t1: float) -> Profile:
    if not records:
        return Profile(t1 - t0, 0.0, 0.0, 0.0, 0.0)
    times = [r.monotonic for r in records]
    exo = [r.monotonic for r in records if r.endpoint.startswith("exo.")]
    users = [r.monotonic for r in records if r.endpoint == "graph.get_user"]
    span = (max(users) - min(users)) if len(users) > 1 else 0.0
    return Profile(
        before_first_call=min(times) - t0,
        listing=(max(exo) - min(times)) if exo else 0.0,
        resolving=span,
        after_last_call=t1 - max(times),
        graph_rate=(len(users) - 1) / span if span > 0 else 0.0,
    )


def run_case(
    emu: Emulator,
    procs: Processes,
    penv: PrefectEnv,
    logs: Path,
    case: SweepCase,
    variant: str,
    latency: float,
) -> SweepRun:
    names = case.tenant_names()
    timeout = 120 + case.entries * 0.5
    tag = f"sweep-{variant}-n{case.entries}-t{case.tenants}"
    if variant == "bare":
        spec: dict[str, Any] = {"configs": [config_payload(emu.tenant_config(n)) for n in names]}
        child = run_child(procs, "bare-sweep", spec, penv.environ(), logs, timeout=timeout, tag=tag)
        settings: dict[str, Any] = {"exchange_concurrency_per_tenant": 1, "resolve_workers": 1}
        limits = SweepLimits(exchange_per_tenant=1, graph_workers_per_tenant=1, graph_rate=None)
    else:
        settings = UNTHROTTLED_SETTINGS if variant == "prefect-unthrottled" else DEFAULT_SETTINGS
        spec = {"tenants": names, "settings": settings}
        child = run_child(
            procs, "prefect-sweep", spec, penv.environ(), logs, timeout=timeout, tag=tag
        )
        if child.result.get("state") != "COMPLETED":
            log(f"sweep {tag}: flow ended {child.result.get('state')} (see {tag}.log)")
        limits = limits_for(settings)
    t0, t1 = float(str(child.result["t0"])), float(str(child.result["t1"]))
    records = _window(emu, t0, t1)
    per_tenant = tenant_calls(records, names)
    if variant == "bare":
        # One call at a time over every tenant: the bare script's own bound is the plain sum.
        total = sum(t.exchange + t.graph for t in per_tenant)
        per_tenant = [TenantCalls(exchange=total, graph=0)]
    run = SweepRun(
        case=case,
        variant=variant,
        wall=t1 - t0,
        process_wall=child.wall,
        calls=len(records),
        maxrss_kib=child.maxrss_kib,
        bound=lower_bound(per_tenant, latency, limits),
        profile=_profile(records, t0, t1),
        endpoints=dict(Counter(r.endpoint for r in records)),
    )
    log(
        f"sweep {case.label} {variant}: {run.wall:.2f} s, {run.calls} calls, "
        f"bound {run.bound.seconds:.2f} s ({run.bound.binding}), "
        f"peak RSS {run.maxrss_kib / 1024:.0f} MiB"
    )
    return run
