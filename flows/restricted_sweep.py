"""Flow ``restricted-sweep``: find every restricted account of every tenant, and contain it.

Runbook, per tenant (tenants in parallel; one failing tenant never stops the others):

1. load the state of the last successful sweep (a Variable pointing at a table artifact);
2. list the tenant's Restricted users, every page (Exchange, capped per tenant);
3. compare: first seen / new / still restricted / cleared (``playbook.sweep.verdicts.classify``);
4. resolve entries not known yet to directory users (Graph, one token bucket for the sweep);
5. policy ``contain``: start an ``unblock-user`` run per new entry (idempotent per entry);
6. save the table artifact and, unless dry run, make it the tenant's state.

Then one summary markdown artifact for the whole sweep, with the runs in flight and the
approvals waiting. The run ends Failed (after the artifacts are written) if a tenant failed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from prefect import flow, runtime
from prefect.artifacts import create_markdown_artifact
from prefect.client.schemas.objects import State
from prefect.context import FlowRunContext
from prefect.futures import PrefectFuture
from prefect.states import Failed
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from orchestration.logs import run_logger
from orchestration.profiles import ProfileClients
from playbook.ratelimit import KeyedConcurrencyLimit, TokenBucket
from playbook.sweep.containment import (
    ContainmentOrder,
    ContainmentResult,
    apply_containment,
    plan_containment,
)
from playbook.sweep.params import Policy, SweepRequest, effective_policy, select_tenants
from playbook.sweep.report import (
    SUMMARY_ARTIFACT_KEY,
    PlaybookRun,
    SweepReport,
    TenantReport,
    describe_failure,
    render_summary,
)
from playbook.sweep.state import LoadedState, TenantDiff
from playbook.sweep.verdicts import (
    ResolvedEntry,
    TenantListing,
    addresses_to_resolve,
    apply_resolutions,
    classify,
)
from tasks.list_playbook_runs import list_playbook_runs, ui_base_url
from tasks.list_restricted_entries import list_restricted_entries
from tasks.list_tenant_profiles import list_tenant_profiles
from tasks.resolve_entries import resolve_entries
from tasks.start_containment import start_containment
from tasks.sweep_state import load_sweep_state, save_sweep_state

T = TypeVar("T")
# Tenants swept at once. Exchange is capped per tenant and Graph by the shared bucket, so this
# only bounds threads and memory (threads are started as tenants need them).
TENANT_WORKERS = 16
DEFAULT_SWEEP = SweepRequest()  # frozen: safe as a shared default
# ``flow(task_runner=...)`` is typed TaskRunner[PrefectFuture[Any]], which no concrete runner
# matches (the parameter is invariant); TaskRunner[Any] states what it is and satisfies it.
TASK_RUNNER: TaskRunner[Any] = ThreadPoolTaskRunner(max_workers=TENANT_WORKERS)


def _outcome(future: PrefectFuture[T]) -> T | BaseException:
    """The task's result, or the exception it failed with (the task run records it as Failed)."""
    future.wait()
    state = future.state
    if state.is_completed():
        result: T = future.result()
        return result
    outcome = state.result(raise_on_failure=False)
    if isinstance(outcome, BaseException):
        return outcome
    return RuntimeError(state.message or f"task ended {state.name}")


def _sweep_run_created() -> datetime | None:
    ctx = FlowRunContext.get()
    return ctx.flow_run.created if ctx and ctx.flow_run else None


@dataclass
class TenantSweep:
    """One tenant on its way through the runbook, and then its section of the report.

    ``diff`` (the verdicts) and ``policy`` are set once the tenant's state and list were read;
    when either failed, ``failure`` says why and the tenant goes no further (it keeps its state).
    """

    tenant: str
    previous: LoadedState = field(default_factory=LoadedState)
    failure: str | None = None
    policy: Policy = "report"
    diff: TenantDiff | None = None
    planned: list[ContainmentOrder] = field(default_factory=list)
    started: list[ContainmentResult] = field(default_factory=list)
    table_url: str | None = None
    warnings: list[str] = field(default_factory=list)

    def report(self, runs: Sequence[PlaybookRun]) -> TenantReport:
        own = tuple(r for r in runs if r.tenant == self.tenant)
        if self.diff is None:
            pointer = self.previous.pointer
            return TenantReport(
                tenant=self.tenant,
                failure=self.failure,
                previous_swept_at=pointer.swept_at if pointer else None,
                previous_entries=pointer.entries if pointer else None,
                runs=own,
            )
        return TenantReport(
            tenant=self.tenant,
            policy=self.policy,
            diff=self.diff,
            started=tuple(self.started),
            planned=tuple(self.planned),
            table_url=self.table_url,
            warnings=tuple(self.warnings),
            runs=own,
        )


Tenants = dict[str, TenantSweep]


@flow(
    name="restricted-sweep",
    task_runner=TASK_RUNNER,
    validate_parameters=True,
    persist_result=False,  # the report names accounts; it lives in the artifacts, not in files
)
def restricted_sweep(sweep: SweepRequest = DEFAULT_SWEEP) -> SweepReport | State[Any]:
    """Sweep the Restricted users list of each tenant profile; report, and contain per policy."""
    request = sweep
    logger = run_logger()
    swept_at = datetime.now(UTC)
    available = list_tenant_profiles() if request.tenants == "all" else []
    tenants = {name: TenantSweep(name) for name in select_tenants(request.tenants, available)}
    total = len(tenants)
    logger.info("Sweeping %d tenant(s)%s", total, " (dry run)" if request.dry_run else "")
    graph_bucket = TokenBucket(request.graph_requests_per_second, request.graph_burst)
    exchange_limit = KeyedConcurrencyLimit(request.exchange_concurrency_per_tenant)
    profiles = ProfileClients()  # each tenant's block is read once, by list_restricted_entries

    _list_and_compare(tenants, request, swept_at, exchange_limit, profiles)  # 1-3
    _resolve(tenants, request, graph_bucket, profiles)  # 4
    _contain(tenants, request)  # 5
    _save(tenants, request)  # 6
    report = _report(tenants, request, swept_at)
    create_markdown_artifact(
        key=SUMMARY_ARTIFACT_KEY,
        markdown=render_summary(report),
        description=f"Restricted users sweep of {total} tenant(s)",
    )
    if report.failed:
        names = ", ".join(f"{t.tenant} ({t.failure})" for t in report.failed)
        message = f"{len(report.failed)} of {total} tenant(s) not swept: {names}"
        logger.error(message)
        return Failed(message=message[:1000], data=report)
    logger.info("Sweep done: %d tenant(s)", total)
    return report


def _swept(tenants: Tenants) -> list[tuple[TenantSweep, TenantDiff]]:
    """The tenants whose state and list were read, with their verdicts so far."""
    return [(t, t.diff) for t in tenants.values() if t.diff is not None]


def _list_and_compare(
    tenants: Tenants,
    request: SweepRequest,
    swept_at: datetime,
    exchange_limit: KeyedConcurrencyLimit,
    profiles: ProfileClients,
) -> None:
    """1-3. Previous state and current list, all tenants at once; then the verdicts. A tenant
    whose state or listing failed gets none and keeps its state."""
    logger = run_logger()
    loading = {name: load_sweep_state.submit(name) for name in tenants}
    listing = {
        name: list_restricted_entries.submit(name, exchange_limit, profiles) for name in tenants
    }
    total = len(tenants)
    for k, t in enumerate(tenants.values(), 1):
        loaded = _outcome(loading[t.tenant])
        listed = _outcome(listing[t.tenant])
        if isinstance(loaded, LoadedState):
            t.previous = loaded
        failure = listed if isinstance(listed, BaseException) else None
        if failure is None and isinstance(loaded, BaseException):
            failure = loaded
        if failure is not None or not isinstance(listed, TenantListing):
            t.failure = describe_failure(failure or RuntimeError("no listing"))
            logger.error("Tenant %d of %d (%s) failed: %s", k, total, t.tenant, t.failure)
            continue
        t.policy = effective_policy(t.tenant, listed.policy, request)
        if t.previous.problem:
            t.warnings.append(f"previous state not usable ({t.previous.problem})")
        t.diff = classify(t.tenant, t.previous.state, listed.entries, swept_at)
        c = t.diff.counts()
        logger.info(
            "Tenant %d of %d (%s, policy %s): %d listed: %d new, %d first seen, "
            "%d still restricted, %d cleared",
            k,
            total,
            t.tenant,
            t.policy,
            len(t.diff.current),
            c["new"],
            c["first-seen"],
            c["restricted"],
            c["cleared"],
        )


def _resolve(
    tenants: Tenants,
    request: SweepRequest,
    graph_bucket: TokenBucket,
    profiles: ProfileClients,
) -> None:
    """4. Directory users, only for entries not resolved by an earlier sweep."""
    logger = run_logger()
    workers = request.resolve_workers
    resolving = [
        (t, diff, resolve_entries.submit(t.tenant, todo, graph_bucket, workers, profiles))
        for t, diff in _swept(tenants)
        if (todo := addresses_to_resolve(diff))
    ]
    for k, (t, diff, future) in enumerate(resolving, 1):
        resolved = _outcome(future)
        if isinstance(resolved, BaseException):
            t.warnings.append(f"user lookup failed: {describe_failure(resolved)}")
            continue
        t.diff = apply_resolutions(diff, resolved)
        logger.info("Resolved users of %d of %d tenant(s) (%s)", k, len(resolving), t.tenant)
        _warn_resolution(t.warnings, resolved)


def _contain(tenants: Tenants, request: SweepRequest) -> None:
    """5. Containment per policy: plan it for every tenant; unless dry run, start the runs."""
    for t, diff in _swept(tenants):
        t.diff, t.planned = plan_containment(diff, t.policy, request)
    if request.dry_run:
        return
    created = _sweep_run_created()
    starting = [
        (t, diff, start_containment.submit(t.tenant, t.planned, created))
        for t, diff in _swept(tenants)
        if t.planned
    ]
    for t, diff, future in starting:
        results = _outcome(future)
        if isinstance(results, BaseException):
            t.warnings.append(f"containment failed: {describe_failure(results)}")
            continue
        t.started = results
        t.diff = apply_containment(diff, results)
        if errors := [r.error for r in results if r.error]:
            t.warnings.append(f"{len(errors)} run(s) not started: {errors[0]}")


def _save(tenants: Tenants, request: SweepRequest) -> None:
    """6. Table artifact per tenant; it becomes the state unless this is a dry run."""
    saving = [
        (t, save_sweep_state.submit(diff, not request.dry_run)) for t, diff in _swept(tenants)
    ]
    for t, future in saving:
        saved = _outcome(future)
        if isinstance(saved, BaseException):
            t.warnings.append(f"state not saved: {describe_failure(saved)}")
        else:
            t.table_url = f"{ui_base_url()}/artifacts/artifact/{saved}"


def _report(tenants: Tenants, request: SweepRequest, swept_at: datetime) -> SweepReport:
    """The summary: every tenant's section, with the runs in flight and the approvals waiting."""
    run_ids = [e.run_id for _, diff in _swept(tenants) for e in diff.current if e.run_id]
    runs = _outcome(list_playbook_runs.submit(run_ids))
    all_runs: list[PlaybookRun] = [] if isinstance(runs, BaseException) else runs
    if isinstance(runs, BaseException):
        run_logger().warning("Could not list unblock-user runs: %s", describe_failure(runs))
    return SweepReport(
        swept_at=swept_at,
        flow_run_url=runtime.flow_run.ui_url,
        dry_run=request.dry_run,
        tenants=tuple(t.report(all_runs) for t in tenants.values()),
        other_runs=tuple(r for r in all_runs if r.in_flight and r.tenant not in tenants),
    )


def _warn_resolution(warnings: list[str], resolved: list[ResolvedEntry]) -> None:
    errors = [r for r in resolved if r.resolution == "error"]
    if errors:
        warnings.append(
            f"{len(errors)} of {len(resolved)} user lookup(s) failed (retried next sweep): "
            f"{errors[0].error}"
        )
