"""Parameters of the restricted-users sweep: the run's request, which tenants, which policy.

Pure (no Prefect, no network), like the rest of ``playbook.sweep``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

from pydantic import Field
from pydantic.config import JsonDict

from ..frozen import Frozen
from ..params import NO_NEWLINE, PROFILE_PATTERN, TenantName

Policy = Literal["report", "contain"]


def _strict_tenant_keys(schema: JsonDict) -> None:
    """pydantic puts the key pattern in ``patternProperties``, which refuses no other key; the
    server must refuse a key that is not a profile name, as pydantic does."""
    names = schema.setdefault("propertyNames", {})
    if isinstance(names, dict):
        names["pattern"] = PROFILE_PATTERN
    schema["additionalProperties"] = False


class SweepRequest(Frozen):
    """Sweep the Restricted users list of some or all tenant profiles."""

    tenants: Literal["all"] | list[TenantName] = Field(
        default="all",
        description="'all' (every M365 Tenant block) or a list of tenant profile names.",
    )
    policy: Policy | None = Field(
        default=None,
        description="Override every swept tenant's policy for this run: 'report' lists only, "
        "'contain' starts an unblock-user run (password reset, then approval) per new entry. "
        "Empty: each tenant's own policy.",
    )
    tenant_policies: dict[TenantName, Policy] = Field(
        default_factory=dict,
        description="Per-tenant overrides for this run, e.g. {'contoso': 'report'}; wins over "
        "'policy'.",
        json_schema_extra=_strict_tenant_keys,
    )
    contain_first_seen: bool = Field(
        default=False,
        description="Also contain entries found on a tenant's first sweep (they may be old). "
        "Off by default: onboarding a tenant must not reset many passwords at once.",
    )
    max_new_runs_per_tenant: int = Field(
        default=20,
        ge=0,
        le=500,
        description="At most this many unblock-user runs per tenant per sweep; the rest wait for "
        "the next sweep (a guard against mass resets on an anomaly).",
    )
    dry_run: bool = Field(
        default=False,
        description="List, resolve and report, but start no run and keep the stored state.",
    )
    ticket_prefix: str = Field(
        default="SWEEP",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,15}$",
        json_schema_extra=NO_NEWLINE,
        description="Prefix of the ticket given to runs started by the sweep.",
    )
    exchange_concurrency_per_tenant: int = Field(
        default=1,
        ge=1,
        le=3,
        description="Concurrent Exchange admin API requests per tenant (Microsoft allows few).",
    )
    # Microsoft Graph's directory (identity and access) quota for one app in one tenant is 3,500
    # requests per 10 s in tenants under 50 users (more in bigger ones), and 150,000 per 20 s
    # for one app across all tenants; a user lookup with $select costs 1. 300/s keeps one sweep
    # below the smallest per-tenant quota even when all its lookups go to one tenant.
    graph_requests_per_second: float = Field(
        default=300.0,
        gt=0,
        le=1000,
        description="Graph requests per second for the whole sweep (all tenants together).",
    )
    graph_burst: int = Field(default=100, ge=1, le=1000, description="Graph token bucket size.")
    resolve_workers: int = Field(
        default=16, ge=1, le=32, description="Threads resolving entries to users, per tenant."
    )


def effective_policy(tenant: str, block_policy: str, request: SweepRequest) -> Policy:
    """Per-run tenant override, else per-run override, else the tenant block's policy."""
    if tenant in request.tenant_policies:
        return request.tenant_policies[tenant]
    if request.policy is not None:
        return request.policy
    return "contain" if block_policy == "contain" else "report"


def select_tenants(
    requested: Literal["all"] | Sequence[str], available: Iterable[str]
) -> list[str]:
    """The tenant profiles to sweep, in a stable order, without duplicates."""
    if requested == "all":
        return sorted(set(available))
    return list(dict.fromkeys(requested))
