"""Decisions of the restricted-users watcher (``flows/watch_restricted.py``).

The watcher checks each tenant profile's Restricted users list every ``interval_seconds``. All
of it is pure (the time comes in as an argument, nothing does I/O), so it is tested without
Prefect and without a network; ``playbook.watcher`` runs the loop around it.

What the watcher remembers per tenant is a map "address -> creation time" (``Seen``):

- at start it comes from the last successful sweep's state (``seen_from_state``), so entries
  listed since that sweep are new, also when the watcher was down meanwhile;
- a tenant never swept has no state: its first listing becomes the baseline and nothing on it
  is new (the sweep's "first seen" rule: onboarding a tenant must not reset many passwords);
- an entry is new when its address is not in the map, or is there with another creation time
  (Microsoft restricted the account again); entries that leave the list leave the map.

A new entry of a ``contain`` tenant gets the same unblock-user run the sweep would start: the
same idempotency key (``playbook.sweep.containment.idempotency_key``), so the server keeps one
run per entry whoever asks first, the sweep or the watcher, and whatever the watcher forgot in a
restart.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Self

from pydantic import Field, ValidationError, model_validator

from m365.identifiers import is_address
from m365.models import RestrictedSender

from .frozen import Frozen
from .params import TenantName, UnblockRequest
from .sweep.containment import ContainmentOrder, idempotency_key, sweep_ticket
from .sweep.params import Policy, SweepRequest
from .sweep.state import TenantState, entry_key
from .sweep.verdicts import dedupe, same_restriction, summarize_reason

DETECTED_EVENT = "m365.restricted-user.detected"
TENANT_RESOURCE = "m365.tenant."
ENTRY_RESOURCE = "m365.restricted-user."
WATCH_REQUESTER = "restricted-watch"
WATCH_TAG = "restricted-watch"
# The sweep's default ticket prefix: a run gets the same ticket whoever starts it.
TICKET_PREFIX = SweepRequest().ticket_prefix
# Event ids are derived from the entry, so the event store keeps one event per entry even when a
# restarted watcher reports it again (the server skips an event id it already has).
_EVENT_NAMESPACE = uuid.UUID("5f0c1d2e-8a7b-4c3d-9e1f-2a3b4c5d6e7f")

Seen = dict[str, datetime | None]
WatchContainment = Literal["report", "started", "existing", "skipped", "failed"]


class WatchRequest(Frozen):
    """Watch the Restricted users list of some or all tenant profiles, until stopped."""

    tenants: Literal["all"] | list[TenantName] = Field(
        default="all",
        description="'all' (every M365 Tenant block, re-listed every profile_refresh_seconds) "
        "or a list of tenant profile names.",
    )
    interval_seconds: float = Field(
        default=30.0,
        ge=5,
        le=3600,
        description="Seconds between two checks of one tenant (one Exchange call each).",
    )
    shard: int = Field(
        default=0,
        ge=0,
        le=63,
        description="Watch only the tenants of this shard (0 .. shards-1): one watcher "
        "deployment per shard spreads many tenants over several workers.",
    )
    shards: int = Field(default=1, ge=1, le=64, description="Number of shards (1: all tenants).")
    profile_refresh_seconds: float = Field(
        default=300.0,
        ge=30,
        le=86400,
        description="Seconds between two listings of the tenant profiles (added, removed or "
        "edited blocks are picked up then).",
    )
    max_new_runs_per_tenant: int = Field(
        default=20,
        ge=0,
        le=500,
        description="At most this many unblock-user runs per tenant within "
        "run_window_minutes; further entries are left to the sweep (a guard against mass "
        "resets on an anomaly).",
    )
    run_window_minutes: int = Field(default=15, ge=1, le=1440)
    workers: int = Field(
        default=8, ge=1, le=32, description="Tenants checked at the same time (threads)."
    )
    summary_every_minutes: float = Field(
        default=60.0,
        ge=1,
        le=1440,
        description="How often an idle watcher writes one summary line to the run log.",
    )

    @model_validator(mode="after")
    def _shard_in_range(self) -> Self:
        if self.shard >= self.shards:
            raise ValueError(f"shard must be below shards ({self.shards})")
        return self


class ProfileInfo(Frozen):
    """The non-secret part of a tenant profile block, as listed (no secret is read)."""

    name: str
    tenant_id: str
    policy: Policy
    version: str  # changes whenever the block is saved again


def profile_info(name: str, data: Mapping[str, Any], version: str) -> ProfileInfo | None:
    """A listed block document's settings, or None when it is not a usable profile."""
    tenant_id = data.get("tenant_id")
    if not isinstance(tenant_id, str) or not tenant_id:
        return None
    policy: Policy = "contain" if data.get("policy") == "contain" else "report"
    return ProfileInfo(name=name, tenant_id=tenant_id, policy=policy, version=version)


# ---- which tenants --------------------------------------------------------------------------


def in_shard(name: str, shard: int, shards: int) -> bool:
    """Stable assignment of a profile to a shard (the same on every machine and every run)."""
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big") % shards == shard


def select_watched(
    requested: Literal["all"] | Sequence[str], available: Iterable[str], shard: int, shards: int
) -> list[str]:
    """The profiles this watcher covers, sorted.

    With a list, only names that exist as profiles (a missing one is reported by the caller);
    with ``all``, every profile. Either way only this shard's share.
    """
    present = set(available)
    names = present if requested == "all" else present & set(requested)
    return sorted(n for n in names if in_shard(n, shard, shards))


# ---- new or seen ----------------------------------------------------------------------------


def seen_from_state(state: TenantState | None) -> Seen | None:
    """The watcher's starting memory of a tenant: what the last successful sweep listed."""
    if state is None:
        return None
    return {key: e.created for key, e in state.entries.items()}


@dataclass(frozen=True)
class Detection:
    """One check of one tenant compared with what was seen before."""

    new: tuple[RestrictedSender, ...]
    seen: Seen  # what to remember after this check
    cleared: tuple[str, ...]  # keys no longer listed
    baseline: bool  # the tenant had no memory: this listing became it, nothing is new


def detect(
    seen: Mapping[str, datetime | None] | None, listed: Sequence[RestrictedSender]
) -> Detection:
    """Which listed entries are new (see the module docstring for the rules)."""
    current = dedupe(listed)
    now_seen: Seen = {entry_key(e.sender_address): e.created for e in current}
    if seen is None:
        return Detection(new=(), seen=now_seen, cleared=(), baseline=True)
    new = tuple(
        e
        for e in current
        if (key := entry_key(e.sender_address)) not in seen
        or not same_restriction(seen[key], e.created)
    )
    cleared = tuple(sorted(k for k in seen if k not in now_seen))
    return Detection(new=new, seen=now_seen, cleared=cleared, baseline=False)


def forget(seen: Seen, keys: Iterable[str]) -> Seen:
    """``seen`` without ``keys``: entries whose handling must be tried again at the next check."""
    drop = set(keys)
    return {k: v for k, v in seen.items() if k not in drop}


# ---- what to do with a new entry ------------------------------------------------------------


@dataclass(frozen=True)
class EntryPlan:
    """``report``: event only (policy); ``skip``: event only, left to the sweep; ``resolve``:
    look the user up, then start unblock-user."""

    action: Literal["report", "skip", "resolve"]
    note: str | None = None


def plan_entry(policy: Policy, entry: RestrictedSender, runs_left: int) -> EntryPlan:
    """Whether a new entry is contained now, or only reported (and why)."""
    if policy != "contain":
        return EntryPlan("report")
    if not is_address(entry.sender_address.strip()):
        return EntryPlan("skip", "not an e-mail address")
    if entry.created is None:
        # The run's idempotency key needs Microsoft's creation time to match the sweep's.
        return EntryPlan("skip", "no creation time: left to the sweep")
    if runs_left <= 0:
        return EntryPlan("skip", "run budget of the tenant spent: left to the sweep")
    return EntryPlan("resolve")


def entry_idempotency_key(tenant: str, entry: RestrictedSender) -> str | None:
    """The sweep's key of the one run this entry may get (None without a creation time)."""
    if entry.created is None:
        return None
    return idempotency_key(tenant, entry.sender_address, entry.created, entry.created)


def containment_order(
    tenant: str, entry: RestrictedSender, user_upn: str
) -> ContainmentOrder | str:
    """The unblock-user run to start for a resolved entry, or why none can be."""
    key = entry_idempotency_key(tenant, entry)
    if key is None:
        return "no creation time: left to the sweep"
    try:
        params = UnblockRequest(
            account=user_upn,
            tenant=tenant,
            ticket=sweep_ticket(TICKET_PREFIX, key),
            requested_by=WATCH_REQUESTER,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        return "refused as a run parameter: " + ".".join(str(p) for p in first["loc"])
    return ContainmentOrder(
        tenant=tenant,
        address=entry.sender_address,
        account=params.account,
        idempotency_key=key,
        parameters={"request": params.model_dump(mode="json")},
    )


class EntryOutcome(Frozen):
    """What the watcher did about one new entry."""

    address: str
    containment: WatchContainment
    note: str | None = None
    run_id: str | None = None
    run_name: str | None = None
    retry: bool = False  # transient failure: not remembered, handled again at the next check


class RunBudget:
    """At most ``limit`` runs per ``window`` seconds for one tenant (a sliding window)."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._starts: deque[float] = deque()

    def left(self, now: float) -> int:
        while self._starts and self._starts[0] <= now - self.window:
            self._starts.popleft()
        return max(0, self.limit - len(self._starts))

    def spend(self, now: float) -> None:
        self._starts.append(now)


# ---- the event ------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventSpec:
    """A Prefect event, before it is sent."""

    event: str
    resource: dict[str, str]
    related: list[dict[str, str]]
    payload: dict[str, Any]
    id: uuid.UUID
    occurred: datetime


def tenant_resource_id(tenant: str) -> str:
    return f"{TENANT_RESOURCE}{tenant}"


def entry_resource_id(tenant: str, address: str) -> str:
    return f"{ENTRY_RESOURCE}{tenant}.{entry_key(address)}"


def detected_event(
    tenant: str,
    entry: RestrictedSender,
    policy: Policy,
    outcome: EntryOutcome,
    detected_at: datetime,
    watcher_run_id: str | None = None,
) -> EventSpec:
    """``m365.restricted-user.detected`` for one new entry.

    Resources: the entry (``m365.restricted-user.<profile>.<address>``), related to the tenant
    profile (``m365.tenant.<profile>``), the unblock-user run when there is one, and the
    watcher's own run. The payload holds no personal data beyond the address: the reason is
    summarised (kind and counts), never its raw text.
    """
    key = entry_key(entry.sender_address)
    identity = entry_idempotency_key(tenant, entry) or f"{tenant}:{key}:no-creation-time"
    related = [
        {
            "prefect.resource.id": tenant_resource_id(tenant),
            "prefect.resource.role": "tenant",
            "prefect.resource.name": tenant,
        }
    ]
    if outcome.run_id:
        related.append(
            {
                "prefect.resource.id": f"prefect.flow-run.{outcome.run_id}",
                "prefect.resource.role": "unblock-run",
                "prefect.resource.name": outcome.run_name or outcome.run_id,
            }
        )
    if watcher_run_id:
        related.append(
            {
                "prefect.resource.id": f"prefect.flow-run.{watcher_run_id}",
                "prefect.resource.role": "watcher",
            }
        )
    payload: dict[str, Any] = {
        "tenant": tenant,
        "address": key,
        "created": entry.created.isoformat() if entry.created else None,
        "temporary_block": entry.temporary_block,
        "reason_kind": entry.reason.kind,
        "reason": summarize_reason(entry.reason),
        "policy": policy,
        "containment": outcome.containment,
        "note": outcome.note,
    }
    return EventSpec(
        event=DETECTED_EVENT,
        resource={
            "prefect.resource.id": entry_resource_id(tenant, key),
            "prefect.resource.name": key,
        },
        related=related,
        payload=payload,
        id=uuid.uuid5(_EVENT_NAMESPACE, f"{DETECTED_EVENT}|{identity}"),
        occurred=detected_at,
    )


# ---- when to check, when to speak -----------------------------------------------------------


class CheckSchedule:
    """When each tenant is checked next (monotonic seconds); one check per tenant at a time.

    A check is due ``interval`` after the previous one *started*, so the cadence does not drift
    by the check's own duration; a tenant Microsoft throttled waits its ``Retry-After`` alone.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._due: dict[str, float] = {}
        self._started: dict[str, float] = {}

    def add(self, tenant: str, now: float) -> None:
        self._due.setdefault(tenant, now)

    def remove(self, tenant: str) -> None:
        self._due.pop(tenant, None)
        self._started.pop(tenant, None)

    def __contains__(self, tenant: object) -> bool:
        return tenant in self._due

    @property
    def tenants(self) -> list[str]:
        return sorted(self._due)

    def in_flight(self, tenant: str) -> bool:
        return tenant in self._started

    def due(self, now: float) -> list[str]:
        """Tenants to check now, longest overdue first."""
        ready = [t for t, at in self._due.items() if at <= now and t not in self._started]
        return sorted(ready, key=lambda t: (self._due[t], t))

    def started(self, tenant: str, now: float) -> None:
        self._started[tenant] = now

    def finished(self, tenant: str, now: float, retry_after: float | None = None) -> float:
        """Record the end of a check; return when the tenant is due again."""
        began = self._started.pop(tenant, now)
        due = max(began + self.interval, now if retry_after is None else now + retry_after)
        if tenant in self._due:
            self._due[tenant] = due
        return due

    def retry_at(self, tenant: str, when: float) -> None:
        """Check ``tenant`` again at ``when`` (e.g. its memory could not be loaded)."""
        if tenant in self._due:
            self._due[tenant] = when

    def next_due(self) -> float | None:
        waiting = [at for t, at in self._due.items() if t not in self._started]
        return min(waiting) if waiting else None


class FailureLog:
    """Log a failing tenant's first failure, then at most every ``every`` seconds, and its
    recovery; an idle watcher with a tenant down for a day writes a few lines, not thousands."""

    def __init__(self, every: float) -> None:
        self.every = every
        self._since: dict[str, float] = {}
        self._last: dict[str, float] = {}

    def failed(self, tenant: str, now: float) -> bool:
        self._since.setdefault(tenant, now)
        last = self._last.get(tenant)
        if last is None or now - last >= self.every:
            self._last[tenant] = now
            return True
        return False

    def recovered(self, tenant: str, now: float) -> float | None:
        """Seconds the tenant was failing, or None if it was not."""
        self._last.pop(tenant, None)
        since = self._since.pop(tenant, None)
        return None if since is None else now - since

    @property
    def failing(self) -> list[str]:
        return sorted(self._since)


class WatchCounters(Frozen):
    """Counts for the periodic summary line and the flow's result (no addresses)."""

    checks: int = 0
    failed_checks: int = 0
    throttled: int = 0
    detected: int = 0
    runs_started: int = 0
    runs_existing: int = 0

    def add(self, **deltas: int) -> WatchCounters:
        data = self.model_dump()
        for name, delta in deltas.items():
            data[name] += delta
        return WatchCounters(**data)


class WatchSummary(Frozen):
    """What the watcher returns when it stops."""

    tenants: int
    shard: str
    interval_seconds: float
    totals: WatchCounters
    stopped_by: str


def summary_line(
    tenants: int, counters: WatchCounters, minutes: float, failing: Sequence[str]
) -> str:
    """The periodic log line of the watcher (one per ``summary_every_minutes``)."""
    text = (
        f"Watching {tenants} tenant(s): {counters.checks} check(s) in the last {minutes:g} min, "
        f"{counters.detected} new entr{'y' if counters.detected == 1 else 'ies'}, "
        f"{counters.runs_started} unblock-user run(s) started, "
        f"{counters.failed_checks} failed check(s) ({counters.throttled} throttled)"
    )
    if failing:
        shown = ", ".join(failing[:5]) + (
            f" and {len(failing) - 5} more" if len(failing) > 5 else ""
        )
        text += f"; failing now: {shown}"
    return text
