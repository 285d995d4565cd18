"""Part 2: the restricted-sweep flow against a bare sequential script and the bound set by
Microsoft's limits (``stats.api_bound``)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emulator import Emulator
from emulator.recording import RecordedRequest

from .infra import PrefectEnv, Processes, log, run_child
from .stats import ApiBound, TenantCalls, api_bound
from .tenants import SweepCase, config_payload

# The sweep runs with the defaults of the code it runs (SweepRequest, TENANT_WORKERS).
DEFAULT_SETTINGS: dict[str, Any] = {}
BLOCK_LOADED = "prefect.block.m365-tenant.loaded"


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
    variant: str  # "prefect" | "bare"
    wall: float  # flow call (or script loop) start -> end
    process_wall: float  # process start -> exit, incl. imports
    calls: int
    maxrss_kib: int
    bound: ApiBound
    profile: Profile
    endpoints: dict[str, int] = field(default_factory=dict)
    block_loads: int | None = None  # M365Tenant blocks loaded by the run (events), flow only

    @property
    def api_phase(self) -> float:
        """First request to last request of the run."""
        return self.wall - self.profile.before_first_call - self.profile.after_last_call

    @property
    def calls_per_entry(self) -> float:
        return self.calls / self.case.entries


def _window(emu: Emulator, t0: float, t1: float) -> list[RecordedRequest]:
    return [r for r in emu.requests if t0 <= r.monotonic <= t1]


def tenant_calls(
    records: list[RecordedRequest], tenants: list[str], users: list[int] | None = None
) -> list[TenantCalls]:
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
    sizes = users or [0] * len(tenants)
    return [
        TenantCalls(exchange=round(seq[t] + share), graph=graph[t], users=n)
        for t, n in zip(tenants, sizes, strict=True)
    ]


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


def _block_loads(t0_wall: str, t1_wall: str) -> int | None:
    """``prefect.block.m365-tenant.loaded`` events the server stored for the run's window."""
    from datetime import datetime, timedelta

    from prefect.client.orchestration import get_client

    since = datetime.fromisoformat(t0_wall) - timedelta(seconds=0.5)
    until = datetime.fromisoformat(t1_wall) + timedelta(seconds=0.5)
    body = {
        "filter": {
            "event": {"name": [BLOCK_LOADED]},
            "occurred": {"since": since.isoformat(), "until": until.isoformat()},
        },
        "limit": 50,
    }
    time.sleep(6)  # the server's event persister writes in batches every few seconds
    with get_client(sync_client=True) as client:
        page = client.request("POST", "/events/filter", json=body).json()
    return int(page.get("total", len(page.get("events", []))))


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
    else:
        spec = {"tenants": names, "settings": DEFAULT_SETTINGS}
        child = run_child(
            procs, "prefect-sweep", spec, penv.environ(), logs, timeout=timeout, tag=tag
        )
        if child.result.get("state") != "COMPLETED":
            log(f"sweep {tag}: flow ended {child.result.get('state')} (see {tag}.log)")
    t0, t1 = float(str(child.result["t0"])), float(str(child.result["t1"]))
    records = _window(emu, t0, t1)
    per_tenant = tenant_calls(records, names, case.per_tenant())
    run = SweepRun(
        case=case,
        variant=variant,
        wall=t1 - t0,
        process_wall=child.wall,
        calls=len(records),
        maxrss_kib=child.maxrss_kib,
        bound=api_bound(per_tenant, latency),
        profile=_profile(records, t0, t1),
        endpoints=dict(Counter(r.endpoint for r in records)),
        block_loads=(
            _block_loads(str(child.result["t0_wall"]), str(child.result["t1_wall"]))
            if variant != "bare"
            else None
        ),
    )
    log(
        f"sweep {case.label} {variant}: {run.wall:.2f} s (API phase {run.api_phase:.2f} s), "
        f"{run.calls} calls, bound {run.bound.seconds:.2f} s ({run.bound.binding}), "
        f"{run.profile.graph_rate:.0f} lookups/s, block loads {run.block_loads}, "
        f"peak RSS {run.maxrss_kib / 1024:.0f} MiB"
    )
    return run
