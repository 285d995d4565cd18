"""Decisions of the restricted-users sweep: parameters, verdicts, containment plan, report.

Everything here is a pure function of its inputs (no Prefect, no network), so it is tested
without a server. The flow ``flows/restricted_sweep.py`` feeds it what the tasks fetched.

Verdicts for an entry of one tenant's Restricted users list:

- ``first-seen``: there was no usable state (first sweep of the tenant, or the state was lost);
  the entry may be old, so it is never called "new" and by default never contained.
- ``new``: absent from the last successful sweep, or listed again with another creation time
  (Microsoft restricted the account again).
- ``restricted``: listed in the last successful sweep as well.
- ``cleared``: listed in the last successful sweep, absent now.

A tenant whose listing failed gets no verdicts at all and keeps its previous state.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from markupsafe import Markup
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.config import JsonDict

from m365.errors import AuthError, M365Error, ThrottledError
from m365.models import RestrictedSender, RestrictionReason

from .params import NO_NEWLINE, PROFILE_PATTERN, TICKET_PATTERN, TenantName, UnblockRequest
from .rendering import ENV, md_link

Policy = Literal["report", "contain"]
Verdict = Literal["first-seen", "new", "restricted", "cleared"]
Resolution = Literal["pending", "user", "no-user", "error"]
Containment = Literal["none", "pending", "started", "skipped"]

STATE_VERSION = 1
SWEEP_REQUESTER = "restricted-sweep"
UNBLOCK_DEPLOYMENT = "unblock-user/unblock-user"
SUMMARY_ARTIFACT_KEY = "restricted-sweep-summary"
# How many entries of one section the markdown summary lists; the table artifact has them all.
SUMMARY_ROWS_PER_SECTION = 50


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _strict_tenant_keys(schema: JsonDict) -> None:
    """pydantic puts the key pattern in ``patternProperties``, which refuses no other key; the
    server must refuse a key that is not a profile name, as pydantic does."""
    names = schema.setdefault("propertyNames", {})
    if isinstance(names, dict):
        names["pattern"] = PROFILE_PATTERN
    schema["additionalProperties"] = False


class SweepRequest(_Frozen):
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


class EntryState(BaseModel):
    """One entry of a tenant's list as the sweep remembers it (one row of the table artifact)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    address: str
    verdict: Verdict
    created: datetime | None = None
    first_seen: datetime
    baseline: bool = False  # listed on the tenant's first sweep
    temporary_block: bool | None = None
    reason_kind: str | None = None
    reason_summary: str = ""
    reason: str = ""
    resolution: Resolution = "pending"
    user_id: str | None = None
    user_upn: str | None = None
    resolution_error: str | None = None
    containment: Containment = "none"
    run_id: str | None = None
    note: str | None = None

    @property
    def key(self) -> str:
        return entry_key(self.address)


class TenantState(_Frozen):
    """What the last successful sweep of a tenant saw."""

    tenant: str
    swept_at: datetime
    entries: dict[str, EntryState]


class StatePointer(_Frozen):
    """The value of a tenant's Variable: where its last successful state lives.

    The state itself (one row per entry) is the tenant's table artifact; a Variable holds at
    most 5,000 characters, too little for a tenant with hundreds of restricted entries.
    """

    version: int = STATE_VERSION
    tenant: str
    swept_at: datetime
    artifact_id: str
    entries: int = Field(ge=0)
    flow_run_id: str | None = None


class LoadedState(_Frozen):
    """A tenant's stored state as loaded before the sweep.

    ``state`` is None on the first sweep, or when the stored state is gone (``problem`` says
    why); either way the entries are then "first seen", never "new".
    """

    pointer: StatePointer | None = None
    state: TenantState | None = None
    problem: str | None = None


class TenantListing(_Frozen):
    """What ``list_restricted_entries`` returns for one tenant."""

    tenant: str
    tenant_id: str
    policy: Policy
    entries: tuple[RestrictedSender, ...]
    listed_at: datetime


class ResolvedEntry(_Frozen):
    """The directory user behind one listed address (or why there is none)."""

    address: str
    resolution: Resolution
    user_id: str | None = None
    user_upn: str | None = None
    error: str | None = None


class TenantDiff(_Frozen):
    """One tenant's sweep: current entries with their verdicts, and entries cleared since."""

    tenant: str
    swept_at: datetime
    previous_swept_at: datetime | None
    current: tuple[EntryState, ...]
    cleared: tuple[EntryState, ...]

    @property
    def first_sweep(self) -> bool:
        return self.previous_swept_at is None

    def with_verdict(self, verdict: Verdict) -> list[EntryState]:
        source = self.cleared if verdict == "cleared" else self.current
        return [e for e in source if e.verdict == verdict]

    def counts(self) -> dict[str, int]:
        out = {v: 0 for v in ("first-seen", "new", "restricted", "cleared")}
        for e in (*self.current, *self.cleared):
            out[e.verdict] += 1
        return out


class ContainmentOrder(_Frozen):
    """One unblock-user run to start."""

    tenant: str
    address: str
    account: str
    idempotency_key: str
    parameters: dict[str, Any]


class ContainmentResult(_Frozen):
    """What came of one order: the run (new or already existing), or the error."""

    address: str
    idempotency_key: str
    run_id: str | None = None
    run_name: str | None = None
    preexisting: bool = False
    error: str | None = None


class PlaybookRun(_Frozen):
    """An unblock-user flow run as the summary shows it."""

    id: str
    name: str
    tenant: str | None = None
    account: str | None = None
    state_type: str
    state_name: str
    url: str
    started_by_sweep: bool = False
    expected_start: datetime | None = None

    @property
    def in_flight(self) -> bool:
        return self.state_type in {"SCHEDULED", "PENDING", "RUNNING", "PAUSED"}

    @property
    def awaiting_approval(self) -> bool:
        return self.state_type == "PAUSED"


class TenantReport(_Frozen):
    """One tenant's section of the summary."""

    tenant: str
    policy: Policy | None = None
    diff: TenantDiff | None = None
    failure: str | None = None
    previous_swept_at: datetime | None = None
    previous_entries: int | None = None
    started: tuple[ContainmentResult, ...] = ()
    planned: tuple[ContainmentOrder, ...] = ()
    runs: tuple[PlaybookRun, ...] = ()
    table_url: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.failure is None and self.diff is not None


class SweepReport(_Frozen):
    """The whole sweep: what the summary artifact renders and what the flow returns."""

    swept_at: datetime
    flow_run_url: str | None = None
    dry_run: bool = False
    tenants: tuple[TenantReport, ...]
    other_runs: tuple[PlaybookRun, ...] = ()

    @property
    def failed(self) -> list[TenantReport]:
        return [t for t in self.tenants if not t.ok]


# ---- keys, names, ages --------------------------------------------------------------------


def entry_key(address: str) -> str:
    """The identity of an entry within a tenant: its address, case-folded."""
    return address.strip().lower()


def variable_name(tenant: str) -> str:
    """Name of the Prefect Variable holding a tenant's state pointer."""
    return f"restricted-sweep-{tenant}"


def table_artifact_key(tenant: str) -> str:
    """Key of a tenant's table artifact (artifact keys allow lower-case, digits and dashes)."""
    return f"restricted-sweep-{tenant}"


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _stamp(value: datetime) -> str:
    return _utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def idempotency_key(
    tenant: str, address: str, created: datetime | None, first_seen: datetime
) -> str:
    """The key of the one unblock-user run an entry may get.

    Built from the tenant, the address and Microsoft's creation time of the entry, so a second
    sweep (or a retried one) maps to the same run, while a later restriction of the same
    account (new creation time) gets its own. Without a creation time the first sighting
    stands in for it.
    """
    when = _stamp(created) if created is not None else "seen-" + _stamp(first_seen)
    return f"restricted-sweep:{tenant}:{entry_key(address)}:{when}"


def entry_age(entry: EntryState, now: datetime) -> timedelta:
    """How long the account has been restricted (creation time, else first sighting)."""
    since = entry.created or entry.first_seen
    return max(timedelta(0), _utc(now) - _utc(since))


def format_age(age: timedelta) -> str:
    """A short human age: '<1m', '42m', '3h 05m', '2d 04h'."""
    minutes = int(age.total_seconds() // 60)
    if minutes < 1:
        return "<1m"
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


def sweep_ticket(prefix: str, key: str) -> str:
    """A ticket reference for a run the sweep starts; stable for one idempotency key."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    ticket = f"{prefix}-{digest}"
    assert re.fullmatch(TICKET_PATTERN, ticket)
    return ticket


# ---- reasons --------------------------------------------------------------------------------


def summarize_reason(reason: RestrictionReason) -> str:
    """One line for analysts, from the parsed ``Reason`` of an entry."""
    parts: list[str] = []
    if reason.outbound_spam_percent is not None or reason.outbound_spam_last_24h is not None:
        text = "outbound spam"
        if reason.outbound_spam_percent is not None:
            text += f" {reason.outbound_spam_percent:g}%"
        if reason.outbound_spam_last_24h is not None and reason.outbound_mail_last_24h is not None:
            text += f" ({reason.outbound_spam_last_24h}/{reason.outbound_mail_last_24h} in 24h)"
        parts.append(text)
    if reason.kind and reason.kind.lower().startswith("emailsendinglimit"):
        text = "sending limit exceeded"
        if reason.exceeding_limit_type:
            text += f" ({reason.exceeding_limit_type})"
        counts = []
        if reason.internal_recipient_count_today is not None:
            counts.append(f"{reason.internal_recipient_count_today} internal")
        if reason.external_recipient_count_today is not None:
            counts.append(f"{reason.external_recipient_count_today} external")
        if counts:
            text += ": " + ", ".join(counts) + " recipients today"
        parts.append(text)
    if not parts:
        return reason.kind or (reason.raw[:80] if reason.raw else "no reason given")
    return "; ".join(parts)


# ---- the diff -------------------------------------------------------------------------------


def same_restriction(old_created: datetime | None, new_created: datetime | None) -> bool:
    """Is a listed entry the restriction remembered, or a new one of the same account?

    A different creation time means Microsoft restricted the account again; a missing time on
    either side is taken as the same restriction (nothing says otherwise).
    """
    if old_created is None or new_created is None:
        return True
    return _utc(old_created) == _utc(new_created)


def dedupe(listed: Iterable[RestrictedSender]) -> list[RestrictedSender]:
    """One entry per address (the latest), in list order. Pages can overlap while the list moves."""
    by_key: dict[str, RestrictedSender] = {}
    for entry in listed:
        key = entry_key(entry.sender_address)
        kept = by_key.get(key)
        if kept is None or (
            entry.created is not None
            and (kept.created is None or _utc(entry.created) > _utc(kept.created))
        ):
            by_key[key] = entry
    return list(by_key.values())


def classify(
    tenant: str,
    previous: TenantState | None,
    listed: Sequence[RestrictedSender],
    now: datetime,
) -> TenantDiff:
    """Compare what is listed now with the last successful sweep's state."""
    now = _utc(now)
    prev = previous.entries if previous is not None else {}
    current: list[EntryState] = []
    for item in dedupe(listed):
        reason_fields: dict[str, Any] = {
            "address": item.sender_address,
            "created": item.created,
            "temporary_block": item.temporary_block,
            "reason_kind": item.reason.kind,
            "reason_summary": summarize_reason(item.reason),
            "reason": item.reason.raw,
        }
        old = prev.get(entry_key(item.sender_address))
        if previous is None:
            current.append(
                EntryState(verdict="first-seen", first_seen=now, baseline=True, **reason_fields)
            )
        elif old is None:
            current.append(EntryState(verdict="new", first_seen=now, **reason_fields))
        elif same_restriction(old.created, item.created):
            carried = old.model_dump(exclude={"verdict", *reason_fields})
            if item.created is None:  # keep what an earlier listing told us
                reason_fields["created"] = old.created
            current.append(EntryState(verdict="restricted", **carried, **reason_fields))
        else:  # restricted again: a new restriction of a known account; the user is still valid
            current.append(
                EntryState(
                    verdict="new",
                    first_seen=now,
                    resolution=old.resolution
                    if old.resolution in ("user", "no-user")
                    else "pending",
                    user_id=old.user_id,
                    user_upn=old.user_upn,
                    **reason_fields,
                )
            )
    listed_keys = {e.key for e in current}
    cleared = [
        old.model_copy(update={"verdict": "cleared"})
        for key, old in prev.items()
        if key not in listed_keys
    ]
    return TenantDiff(
        tenant=tenant,
        swept_at=now,
        previous_swept_at=previous.swept_at if previous is not None else None,
        current=tuple(sorted(current, key=_order)),
        cleared=tuple(sorted(cleared, key=_order)),
    )


def _order(entry: EntryState) -> tuple[datetime, str]:
    return (_utc(entry.created or entry.first_seen), entry.key)


# ---- resolution -----------------------------------------------------------------------------


def addresses_to_resolve(diff: TenantDiff) -> list[str]:
    """Addresses whose user is not known yet (earlier results are reused: fewer Graph calls)."""
    return [e.address for e in diff.current if e.resolution in ("pending", "error")]


def apply_resolutions(diff: TenantDiff, resolved: Iterable[ResolvedEntry]) -> TenantDiff:
    """Fill in the directory users found for the diff's entries."""
    by_key = {entry_key(r.address): r for r in resolved}
    current = []
    for entry in diff.current:
        r = by_key.get(entry.key)
        if r is not None:
            entry = entry.model_copy(
                update={
                    "resolution": r.resolution,
                    "user_id": r.user_id,
                    "user_upn": r.user_upn,
                    "resolution_error": r.error,
                }
            )
        current.append(entry)
    return diff.model_copy(update={"current": tuple(current)})


# ---- policy and containment -----------------------------------------------------------------


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


def plan_containment(
    diff: TenantDiff,
    policy: Policy,
    request: SweepRequest,
) -> tuple[TenantDiff, list[ContainmentOrder]]:
    """Decide which entries get an unblock-user run now, and note why the others do not.

    Eligible: entries that are ``new`` (or ``first-seen`` with ``contain_first_seen``), and
    entries left ``pending`` by an earlier sweep. An entry with a run never gets a second one.
    """
    if policy == "report":
        current = tuple(
            e.model_copy(update={"containment": "none", "note": None})
            if e.containment == "pending"
            else e
            for e in diff.current
        )
        return diff.model_copy(update={"current": current}), []

    candidates: list[EntryState] = []
    updated: dict[str, EntryState] = {}
    for entry in diff.current:
        eligible = (
            entry.verdict == "new"
            or (entry.verdict == "first-seen" and request.contain_first_seen)
            or entry.containment == "pending"
        )
        if not eligible or entry.run_id is not None:
            continue
        if entry.resolution == "no-user":
            updated[entry.key] = entry.model_copy(
                update={"containment": "skipped", "note": "no directory user (external sender)"}
            )
        elif entry.resolution != "user" or not entry.user_upn:
            updated[entry.key] = entry.model_copy(
                update={"containment": "pending", "note": "user not resolved yet"}
            )
        else:
            candidates.append(entry)

    orders: list[ContainmentOrder] = []
    for entry in candidates:  # oldest first: diff.current is ordered by creation time
        if len(orders) >= request.max_new_runs_per_tenant:
            updated[entry.key] = entry.model_copy(
                update={
                    "containment": "pending",
                    "note": f"waits: at most {request.max_new_runs_per_tenant} runs per sweep",
                }
            )
            continue
        key = idempotency_key(diff.tenant, entry.address, entry.created, entry.first_seen)
        try:
            params = UnblockRequest(
                account=entry.user_upn or "",
                tenant=diff.tenant,
                ticket=sweep_ticket(request.ticket_prefix, key),
                requested_by=SWEEP_REQUESTER,
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            updated[entry.key] = entry.model_copy(
                update={"containment": "skipped", "note": f"refused as a run parameter: {loc}"}
            )
            continue
        orders.append(
            ContainmentOrder(
                tenant=diff.tenant,
                address=entry.address,
                account=params.account,
                idempotency_key=key,
                parameters={"request": params.model_dump(mode="json")},
            )
        )
        updated[entry.key] = entry.model_copy(update={"containment": "pending", "note": None})
    current = tuple(updated.get(e.key, e) for e in diff.current)
    return diff.model_copy(update={"current": current}), orders


def apply_containment(diff: TenantDiff, results: Iterable[ContainmentResult]) -> TenantDiff:
    """Record the runs started (or found) for the diff's entries; failures stay pending."""
    by_key = {entry_key(r.address): r for r in results}
    current = []
    for entry in diff.current:
        r = by_key.get(entry.key)
        if r is not None:
            if r.run_id is not None:
                note = "run already existed" if r.preexisting else None
                entry = entry.model_copy(
                    update={"containment": "started", "run_id": r.run_id, "note": note}
                )
            else:
                entry = entry.model_copy(
                    update={"containment": "pending", "note": f"start failed: {r.error}"}
                )
        current.append(entry)
    return diff.model_copy(update={"current": tuple(current)})


# ---- state <-> table artifact ---------------------------------------------------------------

TABLE_COLUMNS = (
    "address",
    "verdict",
    "age",
    "created",
    "first_seen",
    "reason_summary",
    "user_upn",
    "resolution",
    "containment",
    "run_id",
    "note",
    "baseline",
    "temporary_block",
    "reason_kind",
    "user_id",
    "resolution_error",
    "reason",
)


def state_table(diff: TenantDiff) -> list[dict[str, Any]]:
    """The tenant's table artifact: one row per entry (cleared ones last). It is also the state."""
    rows = []
    for entry in (*diff.current, *diff.cleared):
        data = entry.model_dump(mode="json")
        data["age"] = format_age(entry_age(entry, diff.swept_at))
        rows.append({column: data.get(column) for column in TABLE_COLUMNS})
    return rows


def state_from_table(
    tenant: str, swept_at: datetime, rows: Sequence[Mapping[str, Any]]
) -> TenantState:
    """Rebuild a tenant's state from its table artifact (cleared rows are history, not state)."""
    entries: dict[str, EntryState] = {}
    for row in rows:
        entry = EntryState.model_validate(dict(row))
        if entry.verdict != "cleared":
            entries[entry.key] = entry
    return TenantState(tenant=tenant, swept_at=_utc(swept_at), entries=entries)


# ---- failures -------------------------------------------------------------------------------


def describe_failure(exc: BaseException) -> str:
    """Name a tenant's failure and its cause in one line (safe to show: no secrets in errors)."""
    name = type(exc).__name__
    text = " ".join(str(exc).split()) or name
    if isinstance(exc, AuthError):
        code = f"AADSTS{exc.aadsts_code}" if exc.aadsts_code is not None else exc.error
        return f"{name} ({code}): {text}" if code else f"{name}: {text}"
    if isinstance(exc, ThrottledError):
        after = f"; Retry-After {exc.retry_after:g}s" if exc.retry_after is not None else ""
        return f"{name} (still throttled after retries{after}): {text}"
    if isinstance(exc, M365Error):
        return f"{name}: {text}"
    return f"{name} (unexpected): {text}"


# ---- the summary ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _EntryView:
    address: str
    age: str
    reason: str
    user: str
    containment: str
    run: Markup | None


def _entry_view(entry: EntryState, now: datetime, runs: Mapping[str, PlaybookRun]) -> _EntryView:
    run = runs.get(entry.run_id) if entry.run_id else None
    user = entry.user_upn or {"no-user": "(no directory user)", "error": "(lookup failed)"}.get(
        entry.resolution, "(not resolved)"
    )
    containment: str = entry.containment if entry.containment != "none" else ""
    if entry.note:
        containment = f"{containment}: {entry.note}" if containment else entry.note
    link = None
    if run is not None:
        link = md_link(f"{run.state_name}", run.url)
    elif entry.run_id:
        link = md_link(entry.run_id[:8], None)
    return _EntryView(
        address=entry.address,
        age=format_age(entry_age(entry, now)),
        reason=entry.reason_summary,
        user=user,
        containment=containment,
        run=link,
    )


def _time_markup(value: datetime) -> Markup:
    return Markup(_stamp(value))  # noqa: S704 - digits, "-", ":", "T", "Z" only


def render_summary(report: SweepReport) -> str:
    """The summary markdown artifact of one sweep."""
    sections = []
    for t in report.tenants:
        runs = {r.id: r for r in t.runs}
        section: dict[str, Any] = {"t": t, "views": {}, "more": {}}
        if t.diff is not None:
            for verdict in ("new", "first-seen", "restricted", "cleared"):
                entries = t.diff.with_verdict(verdict)  # type: ignore[arg-type]
                shown = entries[:SUMMARY_ROWS_PER_SECTION]
                section["views"][verdict] = [_entry_view(e, report.swept_at, runs) for e in shown]
                section["more"][verdict] = len(entries) - len(shown)
            section["counts"] = t.diff.counts()
        section["in_flight"] = [r for r in t.runs if r.in_flight and not r.awaiting_approval]
        section["approvals"] = [r for r in t.runs if r.awaiting_approval]
        sections.append(section)
    template = ENV.get_template("sweep_summary.md.j2")
    return template.render(
        report=report,
        sections=sections,
        failed=report.failed,
        other_runs=report.other_runs,
        fmt_time=_time_markup,
    )
