"""Part 4: exposure. An account is restricted at a random moment; how long until its password
reset and its session revocation have both reached the emulator?

- watcher: ``watch-restricted`` (a child process calling the flow, default 30 s interval) over
  1, 10 or 100 tenants, ``unblock-user`` served by ``python -m flows.serve --warm`` (the warm
  executor, polling every 0.2 s). Events one after the other; before each, a random wait of up
  to one interval, so the restriction lands at a uniformly random point of the watcher's cycle.
- sweep: the 15-minute ``restricted-sweep`` is not waited out. Its exposure is the wait for the
  next quarter hour (uniform over 0-900 s) plus its measured time from the start of the sweep run
  (created through the served deployment, as the scheduler would) to the reset and revocation.

The emulator runs in this process: the restriction, the checks and the writes share one
``time.monotonic()`` clock. Each unblock-user run is cancelled once it has contained the account
(it would otherwise wait an hour for approval in a serve slot).
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from emulator import Emulator
from emulator.recording import RecordedRequest

from .containment import containment_calls
from .infra import BenchError, PrefectEnv, Processes, log
from .tenants import WatchTenants

LISTING = "exo.Get-BlockedSenderAddress"
SPAM = "OutboundSpamLast24Hours=50;OutboundMailLast24Hours=60;OutboundSpamPercent=83.3"
SWEEP_PERIOD = 900.0


@dataclass
class ExposureSample:
    exposure: float  # restricted -> reset and revocation both answered
    detected: float | None = None  # restricted -> the check that found it (next listing)
    run_created: float | None = None  # restricted -> unblock-user run created (server clock)
    running: float | None = None  # restricted -> that run Running


@dataclass
class ExposureSeries:
    route: str  # "watcher" | "sweep"
    tenants: int
    interval: float  # watcher interval, or the sweep's period
    samples: list[ExposureSample] = field(default_factory=list)

    @property
    def values(self) -> list[float]:
        return [s.exposure for s in self.samples]


def wait_served(serve: subprocess.Popen[bytes], names: list[str], timeout: float = 180) -> None:
    """Wait until ``flows.serve`` has registered (and unpaused) these deployments."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        for name in names:
            while True:
                if serve.poll() is not None:
                    raise BenchError(f"flows.serve exited with {serve.returncode}")
                if time.monotonic() > deadline:
                    raise BenchError(f"{name} was not served within {timeout:.0f} s")
                try:
                    if not client.read_deployment_by_name(f"{name}/{name}").paused:
                        break
                except ObjectNotFound:
                    pass
                time.sleep(0.5)
    time.sleep(2)  # the runner's first poll


def start_watch(
    procs: Processes, penv: PrefectEnv, logs: Path, request: dict[str, Any], tag: str, **env: str
) -> tuple[subprocess.Popen[bytes], Path]:
    """The watcher in its own process (``python -m bench.children watch``); stop it with
    ``procs.stop`` (SIGTERM: it stops cleanly and writes its result)."""
    import json

    result = logs / f"{tag}.json"
    result.unlink(missing_ok=True)
    proc = procs.start(
        [sys.executable, "-m", "bench.children", "watch", str(result)],
        penv.environ(**env),
        logs / f"{tag}.log",
        stdin=subprocess.PIPE,
    )
    assert proc.stdin is not None
    proc.stdin.write(json.dumps({"request": request}).encode())
    proc.stdin.close()
    return proc, result


def wait_rounds(
    emu: Emulator, tenants: list[str], since: float, proc: subprocess.Popen[bytes], rounds: int = 1
) -> float:
    """Wait until every tenant was listed ``rounds`` times since ``since``; return the time."""
    wanted = set(tenants)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"the watcher exited with {proc.returncode}")
        counts: dict[str, int] = {}
        for r in emu.requests:
            if r.monotonic >= since and r.endpoint == LISTING and r.tenant in wanted:
                counts[r.tenant or ""] = counts.get(r.tenant or "", 0) + 1
        if len(counts) == len(wanted) and min(counts.values()) >= rounds:
            return time.monotonic()
        time.sleep(0.5)
    raise BenchError(f"the watcher did not list {len(wanted)} tenant(s) {rounds}x within 300 s")


def _wait_contained(
    emu: Emulator, tenant: str, since: float, timeout: float, proc: subprocess.Popen[bytes] | None
) -> tuple[RecordedRequest, RecordedRequest]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = containment_calls(emu, since, tenant)
        if found:
            return found
        if proc is not None and proc.poll() is not None:
            raise BenchError(f"a process exited with {proc.returncode} before containment")
        time.sleep(0.02)
    raise BenchError(f"{tenant}: no reset + revocation within {timeout:.0f} s")


def _unblock_run(client: Any, account: str, since_wall: datetime) -> Any:
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    runs = client.read_flow_runs(
        flow_filter=FlowFilter(name=FlowFilterName(any_=["unblock-user"])),
        sort=FlowRunSort.START_TIME_DESC,
        limit=20,
    )
    for run in runs:
        if (
            run.parameters.get("request", {}).get("account") == account
            and run.created >= since_wall
        ):
            return run
    return None


def _breakdown(client: Any, run: Any, wall0: float) -> tuple[float | None, float | None]:
    if run is None:
        return None, None
    running = None
    for state in client.read_flow_run_states(run.id):
        if state.type.value == "RUNNING":
            running = state.timestamp.timestamp() - wall0
            break
    return run.created.timestamp() - wall0, running


def _cancel(client: Any, run: Any) -> None:
    from prefect.states import Cancelling

    if run is not None:
        client.set_flow_run_state(
            run.id, Cancelling(message="bench: contained, not approved"), force=True
        )


def watcher_series(
    emu: Emulator,
    procs: Processes,
    penv: PrefectEnv,
    logs: Path,
    group: WatchTenants,
    events: int,
    interval: float,
    *,
    seed: int = 11,
) -> ExposureSeries:
    from prefect.client.orchestration import get_client

    names = group.names()
    series = ExposureSeries(route="watcher", tenants=len(names), interval=interval)
    rng = random.Random(seed + len(names))
    tag = f"exposure-watch-t{len(names)}"
    started = time.monotonic()
    proc, _ = start_watch(procs, penv, logs, {"tenants": names, "interval_seconds": interval}, tag)
    try:
        wait_rounds(emu, names, started, proc)
        log(f"exposure: watcher over {len(names)} tenant(s) has listed them all; {events} events")
        with get_client(sync_client=True) as client:
            for k in range(events):
                time.sleep(rng.uniform(0, interval))
                tenant = rng.choice(names)
                account = WatchTenants.account(tenant, k)
                wall0 = time.time()
                since_wall = datetime.now(UTC)
                t0 = time.monotonic()
                emu.state.restrict(tenant, account, reason=SPAM)
                reset, revoke = _wait_contained(emu, tenant, t0, 300, proc)
                exposure = max(reset.monotonic, revoke.monotonic) - t0
                listings = [
                    r.monotonic
                    for r in emu.requests
                    if r.tenant == tenant and r.endpoint == LISTING and r.monotonic >= t0
                ]
                run = _unblock_run(client, account, since_wall)
                created, running = _breakdown(client, run, wall0)
                series.samples.append(
                    ExposureSample(
                        exposure=exposure,
                        detected=(min(listings) - t0) if listings else None,
                        run_created=created,
                        running=running,
                    )
                )
                _cancel(client, run)
                log(
                    f"exposure: watcher, {len(names)} tenant(s), "
                    f"event {k + 1}/{events}: {exposure:.2f} s"
                )
    finally:
        procs.stop(proc)
    return series


def sweep_series(
    emu: Emulator,
    procs: Processes,
    penv: PrefectEnv,
    logs: Path,
    group: WatchTenants,
    runs: int,
    *,
    first_account: int,
    seed: int = 13,
) -> ExposureSeries:
    """The sweep's time from its run's creation to containment (``runs`` times); the wait for
    the next quarter hour is added when the figures are rendered (``stats.uniform_wait_plus``)."""
    from prefect.client.orchestration import get_client

    names = group.names()
    series = ExposureSeries(route="sweep", tenants=len(names), interval=SWEEP_PERIOD)
    rng = random.Random(seed + len(names))
    request = {"sweep": {"tenants": names}}
    with get_client(sync_client=True) as client:
        dep = client.read_deployment_by_name("restricted-sweep/restricted-sweep")
        # One sweep first: the entries listed so far become the state (nothing new to contain).
        _run_sweep(client, dep.id, request)
        for k in range(runs):
            tenant = rng.choice(names)
            account = WatchTenants.account(tenant, first_account + k)
            emu.state.restrict(tenant, account, reason=SPAM)
            wall0 = time.time()
            since_wall = datetime.now(UTC)
            t0 = time.monotonic()
            client.create_flow_run_from_deployment(dep.id, parameters=request)
            reset, revoke = _wait_contained(emu, tenant, t0, 600, None)
            exposure = max(reset.monotonic, revoke.monotonic) - t0
            run = _unblock_run(client, account, since_wall)
            created, running = _breakdown(client, run, wall0)
            series.samples.append(
                ExposureSample(exposure=exposure, run_created=created, running=running)
            )
            _cancel(client, run)
            _wait_sweeps_done(client, dep.id)
            log(
                f"exposure: sweep, {len(names)} tenant(s), "
                f"run {k + 1}/{runs}: {exposure:.2f} s after its start"
            )
    return series


def _run_sweep(client: Any, deployment_id: Any, request: dict[str, Any]) -> None:
    run = client.create_flow_run_from_deployment(deployment_id, parameters=request)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        state = client.read_flow_run(run.id).state
        if state is not None and state.is_final():
            return
        time.sleep(0.5)
    raise BenchError("the baseline sweep did not finish within 600 s")


def _wait_sweeps_done(client: Any, deployment_id: Any) -> None:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
            limit=50,
        )
        if all(r.state is not None and r.state.is_final() for r in runs):
            return
        time.sleep(0.5)
    raise BenchError("a sweep did not finish within 600 s")


def automation_latency(runs: int) -> list[float]:
    """The other route, measured alone: a Prefect Automation (trigger: the detected event;
    action: run unblock-user with parameters templated from the event). Seconds from posting the
    event to the run's creation (server clock), for a deployment nobody serves (its runs wait).
    """
    from datetime import timedelta

    from prefect.automations import Automation
    from prefect.client.orchestration import get_client
    from prefect.events.actions import RunDeployment
    from prefect.events.schemas.automations import EventTrigger, Posture

    from flows._watcher import post_event
    from flows.unblock_user import unblock_user
    from m365.models import RestrictedSender
    from playbook.watch import DETECTED_EVENT, EntryOutcome, detected_event

    probe: Any = unblock_user.to_deployment(name="automation-probe")  # sync here, not a coroutine
    deployment_id = probe.apply()
    automation: Any = Automation(
        name="bench-detected-starts-unblock-user",
        trigger=EventTrigger(
            expect={DETECTED_EVENT},
            match={"prefect.resource.id": "m365.restricted-user.*"},
            posture=Posture.Reactive,
            threshold=1,
            within=timedelta(0),
        ),
        actions=[
            RunDeployment(
                source="selected",
                deployment_id=deployment_id,
                parameters={
                    "request": {
                        "account": "{{ event.payload.address }}",
                        "tenant": "{{ event.payload.tenant }}",
                        "ticket": "AUTO-{{ event.id }}",
                        "requested_by": "automation",
                    }
                },
            )
        ],
    ).create()
    latencies: list[float] = []
    try:
        time.sleep(10)  # the triggers service loads automations periodically
        with get_client(sync_client=True) as client:
            from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

            for k in range(runs):
                account = f"probe{k}@auto-probe.example"
                now = datetime.now(UTC)
                entry = RestrictedSender(sender_address=account, created=now)
                outcome = EntryOutcome(address=account, containment="report")
                posted = time.time()
                post_event(detected_event("auto-probe", entry, "contain", outcome, now))
                deadline = time.monotonic() + 120
                found = None
                while found is None and time.monotonic() < deadline:
                    for run in client.read_flow_runs(
                        deployment_filter=DeploymentFilter(
                            id=DeploymentFilterId(any_=[deployment_id])
                        ),
                        limit=50,
                    ):
                        if run.parameters.get("request", {}).get("account") == account:
                            found = run
                    time.sleep(0.1)
                if found is None:
                    raise BenchError("the automation started no run within 120 s")
                assert found.created is not None
                latencies.append(found.created.timestamp() - posted)
                log(f"automation route: event {k + 1}/{runs}: run created {latencies[-1]:.2f} s")
                time.sleep(1)
    finally:
        automation.delete()
    return latencies
