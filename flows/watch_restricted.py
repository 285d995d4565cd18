"""Flow ``watch-restricted``: notice a newly restricted account within seconds, contain it at once.

Runbook, for each tenant profile, every ``interval_seconds`` (default 30), a few tenants at once:

1. list the tenant's Restricted users (one Exchange call; a tenant Microsoft throttles waits its
   ``Retry-After`` alone, the others are checked on time);
2. compare with what was seen before: at start, the last successful sweep's state;
3. for each new entry, if the tenant's policy is ``contain``: look the user up and start
   unblock-user (password reset, session revocation, then approval) with the sweep's idempotency
   key, so the entry gets one run whoever asks first;
4. report the entry as the event ``m365.restricted-user.detected`` (the UI's Event Feed), with
   the tenant, the account and the run as resources.

A check that finds nothing new writes nothing to Prefect (see ``flows/_watcher.py``). The run
lasts until it is stopped: SIGTERM (or cancelling the run) ends it within about a second. The
15-minute ``restricted-sweep`` stays the safety net and the report. ``python -m flows.serve``
starts one watcher; the deployment's concurrency limit of 1 keeps it at one.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from prefect import flow, runtime
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.client.schemas.objects import (
    ConcurrencyLimitConfig,
    ConcurrencyLimitStrategy,
    State,
    StateType,
)
from prefect.states import Cancelled

from flows._watcher import PREFECT_ERRORS, Watcher
from orchestration.logs import run_logger
from orchestration.runs import in_states
from playbook.watch import WATCH_TAG, WatchRequest, WatchSummary

DEPLOYMENT = "watch-restricted/watch-restricted"
# One watcher per deployment. A second run (another serve process, a manual run) waits for the
# slot instead of watching twice: it takes over when the first one ends.
CONCURRENCY = ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE)
DEFAULT_WATCH = WatchRequest()  # frozen: safe as a shared default


class _Stop(threading.Event):
    signalled = False


@contextmanager
def stop_on_sigterm() -> Iterator[_Stop]:
    """An event set by SIGTERM while the block runs (main thread only; the previous handler,
    Prefect's own, is back afterwards)."""
    stop = _Stop()

    def _handler(signum: int, frame: FrameType | None) -> None:
        stop.signalled = True
        stop.set()

    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = signal.signal(signal.SIGTERM, _handler)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGTERM, previous)


def _cancel_requested(run_id: str | None) -> bool:
    """Did someone cancel this run (the runner sends SIGTERM after setting Cancelling)?"""
    if not run_id:
        return False
    try:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(run_id).state  # type: ignore[arg-type]
    except PREFECT_ERRORS:
        return False
    return state is not None and state.type == StateType.CANCELLING


@flow(name="watch-restricted", validate_parameters=True, persist_result=False)
def watch_restricted(watch: WatchRequest = DEFAULT_WATCH) -> WatchSummary | State[Any]:
    """Watch each tenant profile's Restricted users list; report new entries, contain per policy."""
    logger = run_logger()
    run_id = runtime.flow_run.id
    with stop_on_sigterm() as stop:
        summary = Watcher(watch, logger, run_id).run(stop)
    how = "SIGTERM" if stop.signalled else "stop requested"
    logger.info(
        "Watcher stopped (%s) after %d check(s); %d new entr%s, %d unblock-user run(s) started",
        how,
        summary.totals.checks,
        summary.totals.detected,
        "y" if summary.totals.detected == 1 else "ies",
        summary.totals.runs_started,
    )
    summary = summary.model_copy(update={"stopped_by": how})
    if stop.signalled and _cancel_requested(run_id):
        return Cancelled(message="Watcher cancelled", data=summary)
    return summary


def start_watcher(deployment: str = DEPLOYMENT) -> str:
    """Make sure a watcher run is queued for the deployment; return its id.

    A run that is waiting to start (Scheduled, or waiting for the concurrency slot) is reused, so
    restarting ``flows.serve`` does not pile up runs. A running one is not: it may be left over
    from a process that was killed; the new run takes the slot when that run's lease expires.
    """
    with get_client(sync_client=True) as client:
        found = client.read_deployment_by_name(deployment)
        waiting = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[found.id])),
            flow_run_filter=in_states([StateType.SCHEDULED, StateType.PENDING]),
            limit=1,
        )
        if waiting:
            return str(waiting[0].id)
        run = client.create_flow_run_from_deployment(found.id, tags=[WATCH_TAG])
        return str(run.id)
