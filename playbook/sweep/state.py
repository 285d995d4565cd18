"""What the sweep remembers of a tenant: entries, the diff, and the table artifact that stores them.

The state of a tenant is its last successful sweep's table artifact (one row per entry); a
Variable points at it (``StatePointer``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..frozen import Frozen

Verdict = Literal["first-seen", "new", "restricted", "cleared"]
Resolution = Literal["pending", "user", "no-user", "error"]
Containment = Literal["none", "pending", "started", "skipped"]

STATE_VERSION = 1


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


class TenantState(Frozen):
    """What the last successful sweep of a tenant saw."""

    tenant: str
    swept_at: datetime
    entries: dict[str, EntryState]


class StatePointer(Frozen):
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


class LoadedState(Frozen):
    """A tenant's stored state as loaded before the sweep.

    ``state`` is None on the first sweep, or when the stored state is gone (``problem`` says
    why); either way the entries are then "first seen", never "new".
    """

    pointer: StatePointer | None = None
    state: TenantState | None = None
    problem: str | None = None


class TenantDiff(Frozen):
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

    def updated(self, changes: Mapping[str, Mapping[str, Any]]) -> TenantDiff:
        """This diff with the current entries named in ``changes`` (by key) changed so; the
        stages after ``classify`` (resolution, containment) record their outcome this way."""
        current = tuple(
            e.model_copy(update=changes[e.key]) if e.key in changes else e for e in self.current
        )
        return self.model_copy(update={"current": current})


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
