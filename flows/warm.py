"""The warm path: a deployment's flow runs executed in this long-lived process.

Prefect's runner and workers start every flow run in a new process; importing Prefect and the
playbook there takes seconds before the password reset can begin. The warm executor claims the
deployment's scheduled runs the way a runner does (it proposes Pending, and the server lets one
claimer win) and runs each one on a thread of this process, where Prefect, the clients and their
tokens are already loaded. The run is the same unblock-user flow run, so the journal, the
hand-over, the report and the crash recovery are unchanged; its report says which path ran it.

``python -m flows.warm`` serves the unblock-user deployment (``python -m flows.serve --warm``
starts the same executor beside the runner). Stop it with SIGTERM: it stops claiming, marks the
runs it was still executing Crashed (so the next run's crash recovery takes over their hand-over
secrets, as for any crashed run), and exits.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import httpx
from prefect import Flow, get_client
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.objects import FlowRun
from prefect.exceptions import Abort, ObjectNotFound, PrefectException
from prefect.flow_engine import run_flow
from prefect.states import Crashed, Pending
from prefect.utilities.engine import propose_state_sync

from flows._execution import WARM_EXECUTOR
from flows.catalog import SERVED
from flows.watch_restricted import stop_on_sigterm

UNBLOCK_DEPLOYMENT = "unblock-user/unblock-user"
# One small query per interval while idle. Measured in bench/containment.py (docs/benchmarks.md).
DEFAULT_POLL_SECONDS = 0.2
# Long enough for a rival claim accepted at the same moment to be written before the re-read.
CLAIM_SETTLE_SECONDS = 0.15
DEFAULT_LIMIT = 16  # runs at once; a run waiting for approval holds one (a thread, not a process)
API_ERRORS = (httpx.HTTPError, PrefectException)

log = logging.getLogger("unblock.warm")


@dataclass
class WarmExecutor:
    """Claims and runs the scheduled runs of ``flows`` (deployment id -> flow) on its threads."""

    flows: dict[UUID, Flow[..., Any]]
    limit: int = DEFAULT_LIMIT
    poll_seconds: float = DEFAULT_POLL_SECONDS
    label: str = ""
    _running: dict[UUID, threading.Thread] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if not self.label:
            self.label = f"the warm executor (process {os.getpid()} on {socket.gethostname()})"

    def run(self, stop: threading.Event) -> None:
        """Claim and start runs until ``stop`` is set; then mark the unfinished ones Crashed."""
        log.info("warm executor: serving %d deployment(s), %d at once", len(self.flows), self.limit)
        try:
            with get_client(sync_client=True) as client:  # one connection for every poll
                self._loop(client, stop)
        finally:
            self._crash_unfinished()

    def _loop(self, client: SyncPrefectClient, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.poll_once(client)
            except API_ERRORS as exc:  # the server restarting: keep polling
                log.warning("warm executor: cannot reach the Prefect API: %s", exc)
                stop.wait(max(self.poll_seconds, 2.0))
                continue
            stop.wait(self.poll_seconds)

    def poll_once(self, client: SyncPrefectClient) -> list[UUID]:
        """Claim what is due now (up to the free slots) and start it; the ids started."""
        free = self.limit - self.active()
        if free <= 0:
            return []
        due = client.get_scheduled_flow_runs_for_deployments(
            list(self.flows), scheduled_before=datetime.now(UTC), limit=free
        )
        claimed = {r.id: state_id for r in due if (state_id := self._claim(client, r.id))}
        if not claimed:
            return []
        # On SQLite the server can accept two claims of one run (its state row cannot be locked,
        # Prefect PR #9590): the later claim is the run's state once both are written, so each
        # claimer waits a moment and starts the run only if its own Pending is still current.
        time.sleep(CLAIM_SETTLE_SECONDS)
        started = []
        for run_id, state_id in claimed.items():
            run = client.read_flow_run(run_id)
            if run.state is None or run.state.id != state_id:
                log.info("warm executor: run %s was claimed by another executor", run_id)
                continue
            self._start(run)
            started.append(run.id)
        return started

    def active(self) -> int:
        with self._lock:
            return len(self._running)

    def _claim(self, client: SyncPrefectClient, run_id: UUID) -> UUID | None:
        """The id of the Pending state this executor set, or None when another was first."""
        try:
            state = propose_state_sync(client, Pending(), flow_run_id=run_id)
        except Abort:  # another runner, worker or executor was first
            return None
        except ObjectNotFound:  # deleted meanwhile
            return None
        return state.id if state.is_pending() else None

    def _start(self, run: FlowRun) -> None:
        # Only runs of these deployments were asked for: a claimed run always has its flow here.
        assert run.deployment_id is not None
        flow = self.flows[run.deployment_id]
        thread = threading.Thread(
            target=self._execute, args=(flow, run), name=f"warm-{run.name}", daemon=True
        )
        with self._lock:
            self._running[run.id] = thread
        thread.start()

    def _execute(self, flow: Flow[..., Any], run: FlowRun) -> None:
        token = WARM_EXECUTOR.set(self.label)
        try:
            # The flow's own errors end in its state; only the engine's API errors reach here.
            run_flow(flow, flow_run=run, return_type="state")
        except API_ERRORS as exc:
            log.error("warm executor: run %s ended without a final state: %s", run.id, exc)
        finally:
            WARM_EXECUTOR.reset(token)
            with self._lock:
                self._running.pop(run.id, None)

    def _crash_unfinished(self) -> None:
        with self._lock:
            unfinished = list(self._running)
        if not unfinished:
            return
        with get_client(sync_client=True) as client:
            for run_id in unfinished:
                try:
                    client.set_flow_run_state(
                        run_id,
                        Crashed(message="The warm executor stopped while this run was executing."),
                        force=True,
                    )
                except API_ERRORS as exc:
                    log.error("warm executor: could not mark run %s Crashed: %s", run_id, exc)
        log.info("warm executor: marked %d unfinished run(s) Crashed", len(unfinished))


def executor_for(deployments: Sequence[str], **options: Any) -> WarmExecutor:
    """An executor for deployments named ``flow/deployment``, whose flows this process imports."""
    flows: dict[UUID, Flow[..., Any]] = {}
    with get_client(sync_client=True) as client:
        for name in deployments:
            deployment = client.read_deployment_by_name(name)
            flow_name = client.read_flow(deployment.flow_id).name
            entry = next((s for s in SERVED if s.name == flow_name), None)
            if entry is None:
                raise SystemExit(f"flows.warm: {name} is not a deployment of a playbook flow")
            module = importlib.import_module(entry.module)
            flows[deployment.id] = getattr(module, entry.function)
    return WarmExecutor(flows=flows, **options)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m flows.warm", description=__doc__)
    parser.add_argument("--deployment", nargs="*", default=[UNBLOCK_DEPLOYMENT])
    parser.add_argument("--limit", type=int, default=DEFAULT_LIMIT)
    parser.add_argument("--poll-seconds", type=float, default=DEFAULT_POLL_SECONDS)
    args = parser.parse_args(argv)
    # Prefect owns the root logger's configuration; this one only needs the console.
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    log.addHandler(console)
    log.setLevel(logging.INFO)
    log.propagate = False
    executor = executor_for(args.deployment, limit=args.limit, poll_seconds=args.poll_seconds)
    print(f"warm executor: serving {', '.join(args.deployment)}", flush=True)
    with stop_on_sigterm() as stop:
        executor.run(stop)
    print("warm executor: stopped", flush=True)


if __name__ == "__main__":
    main()
