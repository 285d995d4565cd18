"""The sweep's report: the runs it shows, the failures it names, and the summary markdown."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from markupsafe import Markup

from m365.errors import AuthError, M365Error, ThrottledError

from ..frozen import Frozen
from ..rendering import ENV, md_link
from .containment import ContainmentOrder, ContainmentResult
from .params import Policy
from .state import EntryState, TenantDiff, Verdict, _stamp, entry_age, format_age

SUMMARY_ARTIFACT_KEY = "restricted-sweep-summary"
# How many entries of one section the markdown summary lists; the table artifact has them all.
SUMMARY_ROWS_PER_SECTION = 50
SUMMARY_SECTIONS: tuple[Verdict, ...] = ("new", "first-seen", "restricted", "cleared")


class PlaybookRun(Frozen):
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


class TenantReport(Frozen):
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


class SweepReport(Frozen):
    """The whole sweep: what the summary artifact renders and what the flow returns."""

    swept_at: datetime
    flow_run_url: str | None = None
    dry_run: bool = False
    tenants: tuple[TenantReport, ...]
    other_runs: tuple[PlaybookRun, ...] = ()

    @property
    def failed(self) -> list[TenantReport]:
        return [t for t in self.tenants if not t.ok]


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
            for verdict in SUMMARY_SECTIONS:
                entries = t.diff.with_verdict(verdict)
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
