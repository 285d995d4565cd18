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

from datetime import UTC, datetime
from typing import Any, TypeVar

from prefect import flow, get_run_logger, runtime
from prefect.artifacts import create_markdown_artifact
from prefect.client.schemas.objects import State
from prefect.context import FlowRunContext
from prefect.futures import PrefectFuture
from prefect.states import Failed
from prefect.task_runners import ThreadPoolTaskRunner

from orchestration.profiles import ProfileClients
from playbook.ratelimit import KeyedConcurrencyLimit, TokenBucket
from playbook.sweep.containment import ContainmentResult, apply_containment, plan_containment
from playbook.sweep.params import SweepRequest, effective_policy, select_tenants
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


@flow(
    name="restricted-sweep",
    task_runner=ThreadPoolTaskRunner(max_workers=TENANT_WORKERS),  # type: ignore[arg-type]
    validate_parameters=True,
    persist_result=False,  # the report names accounts; it lives in the artifacts, not in files
)
def restricted_sweep(sweep: SweepRequest = DEFAULT_SWEEP) -> SweepReport | State[Any]:
    """Sweep the Restricted users list of each tenant profile; report, and contain per policy."""
    request = sweep
    logger = get_run_logger()
    swept_at = datetime.now(UTC)
    available = list_tenant_profiles() if request.tenants == "all" else []
    tenants = select_tenants(request.tenants, available)
    total = len(tenants)
    logger.info("Sweeping %d tenant(s)%s", total, " (dry run)" if request.dry_run else "")
    graph_bucket = TokenBucket(request.graph_requests_per_second, request.graph_burst)
    exchange_limit = KeyedConcurrencyLimit(request.exchange_concurrency_per_tenant)
    profiles = ProfileClients()  # each tenant's block is read once, by list_restricted_entries

    # 1-2. Previous state and current list, all tenants at once.
    loading = {t: load_sweep_state.submit(t) for t in tenants}
    listing = {t: list_restricted_entries.submit(t, exchange_limit, profiles) for t in tenants}

    # 3. Verdicts. A tenant whose state or listing failed gets none and keeps its state.
    reports: dict[str, TenantReport] = {}
    diffs: dict[str, TenantDiff] = {}
    policies: dict[str, str] = {}
    warnings: dict[str, list[str]] = {t: [] for t in tenants}
    for k, tenant in enumerate(tenants, 1):
        loaded = _outcome(loading[tenant])
        listed = _outcome(listing[tenant])
        previous = loaded if isinstance(loaded, LoadedState) else LoadedState()
        failure = listed if isinstance(listed, BaseException) else None
        if failure is None and isinstance(loaded, BaseException):
            failure = loaded
        if failure is not None or not isinstance(listed, TenantListing):
            cause = describe_failure(failure or RuntimeError("no listing"))
            logger.error("Tenant %d of %d (%s) failed: %s", k, total, tenant, cause)
            reports[tenant] = TenantReport(
                tenant=tenant,
                failure=cause,
                previous_swept_at=previous.pointer.swept_at if previous.pointer else None,
                previous_entries=previous.pointer.entries if previous.pointer else None,
            )
            continue
        policy = effective_policy(tenant, listed.policy, request)
        policies[tenant] = policy
        if previous.problem:
            warnings[tenant].append(f"previous state not usable ({previous.problem})")
        diff = classify(tenant, previous.state, listed.entries, swept_at)
        diffs[tenant] = diff
        c = diff.counts()
        logger.info(
            "Tenant %d of %d (%s, policy %s): %d listed: %d new, %d first seen, "
            "%d still restricted, %d cleared",
            k,
            total,
            tenant,
            policy,
            len(diff.current),
            c["new"],
            c["first-seen"],
            c["restricted"],
            c["cleared"],
        )

    # 4. Directory users, only for entries not resolved by an earlier sweep.
    resolving = {
        t: resolve_entries.submit(t, todo, graph_bucket, request.resolve_workers, profiles)
        for t, d in diffs.items()
        if (todo := addresses_to_resolve(d))
    }
    for k, (tenant, future) in enumerate(resolving.items(), 1):
        resolved = _outcome(future)
        if isinstance(resolved, BaseException):
            warnings[tenant].append(f"user lookup failed: {describe_failure(resolved)}")
            continue
        diffs[tenant] = apply_resolutions(diffs[tenant], resolved)
        logger.info("Resolved users of %d of %d tenant(s) (%s)", k, len(resolving), tenant)
        _warn_resolution(warnings[tenant], resolved)

    # 5. Containment per policy.
    planned = {}
    for tenant, diff in diffs.items():
        diffs[tenant], planned[tenant] = plan_containment(diff, policies[tenant], request)  # type: ignore[arg-type]
    started: dict[str, list[ContainmentResult]] = {}
    if not request.dry_run:
        created = _sweep_run_created()
        starting = {
            t: start_containment.submit(t, orders, created)
            for t, orders in planned.items()
            if orders
        }
        for tenant, start_future in starting.items():
            results = _outcome(start_future)
            if isinstance(results, BaseException):
                warnings[tenant].append(f"containment failed: {describe_failure(results)}")
                continue
            started[tenant] = results
            diffs[tenant] = apply_containment(diffs[tenant], results)
            if errors := [r.error for r in results if r.error]:
                warnings[tenant].append(f"{len(errors)} run(s) not started: {errors[0]}")

    # 6. Table artifact per tenant; it becomes the state unless this is a dry run.
    saving = {
        t: save_sweep_state.submit(t_diff, not request.dry_run) for t, t_diff in diffs.items()
    }
    table_urls: dict[str, str] = {}
    for tenant, save_future in saving.items():
        saved = _outcome(save_future)
        if isinstance(saved, BaseException):
            warnings[tenant].append(f"state not saved: {describe_failure(saved)}")
        else:
            table_urls[tenant] = f"{ui_base_url()}/artifacts/artifact/{saved}"

    # Summary: the runs in flight and the approvals waiting, by tenant.
    run_ids = [e.run_id for d in diffs.values() for e in d.current if e.run_id]
    runs = _outcome(list_playbook_runs.submit(run_ids))
    all_runs: list[PlaybookRun] = [] if isinstance(runs, BaseException) else runs
    if isinstance(runs, BaseException):
        logger.warning("Could not list unblock-user runs: %s", describe_failure(runs))
    for tenant, diff in diffs.items():
        reports[tenant] = TenantReport(
            tenant=tenant,
            policy=policies[tenant],  # type: ignore[arg-type]
            diff=diff,
            started=tuple(started.get(tenant, ())),
            planned=tuple(planned.get(tenant, ())),
            table_url=table_urls.get(tenant),
            warnings=tuple(warnings[tenant]),
        )
    report = SweepReport(
        swept_at=swept_at,
        flow_run_url=runtime.flow_run.ui_url,
        dry_run=request.dry_run,
        tenants=tuple(
            reports[t].model_copy(
                update={
                    "runs": tuple(r for r in all_runs if r.tenant == t),
                    "policy": reports[t].policy,
                }
            )
            for t in tenants
        ),
        other_runs=tuple(r for r in all_runs if r.in_flight and r.tenant not in reports),
    )
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


def _warn_resolution(warnings: list[str], resolved: list[ResolvedEntry]) -> None:
    errors = [r for r in resolved if r.resolution == "error"]
    if errors:
        warnings.append(
            f"{len(errors)} of {len(resolved)} user lookup(s) failed (retried next sweep): "
            f"{errors[0].error}"
        )
