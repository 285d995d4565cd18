"""Part 1: time to containment, from the run request to the emulator's reset + revoke.

The clock is ``time.monotonic()`` everywhere: the emulator runs in this process and records
``monotonic`` for each request it answered; children report the same clock (one machine).
"""

from __future__ import annotations

import random
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from emulator import Emulator
from emulator.recording import RecordedRequest

from .infra import BenchError, PrefectEnv, Processes, log, run_child
from .tenants import CONTAINMENT_ACCOUNT, CONTAINMENT_TENANT, config_payload

DEPLOYMENT = "unblock-user/unblock-user"
RESET, REVOKE = "graph.update_user", "graph.revoke_sessions"


@dataclass
class Sample:
    containment: float  # request -> both reset and revoke answered, seconds
    # Breakdown (seconds from the request), None when not available.
    picked_up: float | None = None  # the runner proposed Pending
    running: float | None = None  # the flow-run process proposed Running
    first_call: float | None = None  # first request the run made to the emulator
    reset: float | None = None
    completed: bool = True  # the flow run ended Completed (after containment)


@dataclass
class Series:
    label: str
    kind: str  # "serve" | "warm" | "bare-cold" | "bare-warm"
    poll: float | None = None
    samples: list[Sample] = field(default_factory=list)
    failed_after: int = 0  # runs that contained the account, then ended other than Completed

    @property
    def values(self) -> list[float]:
        return [s.containment for s in self.samples]


def containment_calls(
    emu: Emulator, since: float, tenant: str | None = None
) -> tuple[RecordedRequest, RecordedRequest] | None:
    """The first successful reset and revocation from ``since`` on (in ``tenant`` only, when
    given); None until both have arrived."""
    reset = revoke = None
    for r in emu.requests:
        if r.monotonic < since or r.status >= 300 or (tenant and r.tenant != tenant):
            continue
        if r.endpoint == RESET and reset is None:
            reset = r
        elif r.endpoint == REVOKE and revoke is None:
            revoke = r
    return (reset, revoke) if reset and revoke else None


def _first_call(emu: Emulator, since: float) -> float | None:
    times = [r.monotonic for r in emu.requests if r.monotonic >= since]
    return min(times) if times else None


def _wait_containment(
    emu: Emulator, since: float, timeout: float
) -> tuple[RecordedRequest, RecordedRequest]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = containment_calls(emu, since)
        if found:
            return found
        time.sleep(0.02)
    raise BenchError(f"no reset + revoke within {timeout:.0f} s of the run request")


def _wait_final(client: Any, run_id: UUID, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.read_flow_run(run_id)
        if run.state is not None and run.state.is_final():
            return run
        time.sleep(0.25)
    raise BenchError(f"flow run {run_id} did not finish within {timeout:.0f} s")


def _state_offsets(client: Any, run_id: UUID, wall0: float) -> dict[str, float]:
    """Seconds from the request (wall clock) to the first Pending and Running states."""
    out: dict[str, float] = {}
    for state in client.read_flow_run_states(run_id):
        ts: datetime = state.timestamp
        name = state.type.value
        if name in ("PENDING", "RUNNING") and name not in out:
            out[name] = ts.timestamp() - wall0
    return out


def _parameters(run: int) -> dict[str, Any]:
    return {
        "request": {
            "account": CONTAINMENT_ACCOUNT,
            "tenant": CONTAINMENT_TENANT,
            "ticket": f"BENCH-{run}",
            "requested_by": "bench",
        }
    }


def serve_series(
    emu: Emulator,
    procs: Processes,
    penv: PrefectEnv,
    logs: Path,
    poll: float,
    runs: int,
    *,
    warm: bool = False,
    seed: int = 7,
) -> Series:
    """Serve the project's deployments (``python -m flows.serve``) with the given
    PREFECT_RUNNER_POLL_FREQUENCY (or, ``warm``, unblock-user on the warm executor polling at
    ``poll``) and time ``runs`` requested runs, one after the other.

    Each request waits a random fraction of the poll interval first, so requests land at
    uniformly spread points of the polling cycle.
    """
    from prefect.client.orchestration import get_client

    if warm:
        series = Series(label=f"serve --warm, poll {poll:g} s", kind="warm", poll=poll)
    else:
        series = Series(label=f"serve, poll {poll:g} s", kind="serve", poll=poll)
    rng = random.Random(seed)
    # --warm: the runner still serves verify-unblock (its setting takes whole seconds only)
    env = penv.environ(PREFECT_RUNNER_POLL_FREQUENCY="1" if warm else f"{poll:g}")
    argv = [sys.executable, "-m", "flows.serve", "--only", "unblock-user", "verify-unblock"]
    if warm:
        argv += ["--warm", "--warm-poll-seconds", f"{poll:g}"]
    serve = procs.start(argv, env, logs / f"serve-{series.kind}-poll{poll:g}.log")
    try:
        with get_client(sync_client=True) as client:
            deployment = _wait_deployment(client, serve)
            log(f"containment: {series.label}: warm-up run")
            _one_run(emu, client, deployment, 0, serve)  # readiness; not counted
            for i in range(1, runs + 1):
                time.sleep(rng.uniform(0, poll))
                sample = _one_run(emu, client, deployment, i, serve)
                series.samples.append(sample)
                series.failed_after += int(not sample.completed)
                log(f"containment: {series.label}: run {i}/{runs}: {sample.containment:.2f} s")
    finally:
        procs.stop(serve)
    return series


def _wait_deployment(client: Any, serve: Any, timeout: float = 180) -> UUID:
    from prefect.exceptions import ObjectNotFound

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if serve.poll() is not None:
            raise BenchError(f"flows.serve exited with {serve.returncode}")
        try:
            dep = client.read_deployment_by_name(DEPLOYMENT)
        except ObjectNotFound:
            time.sleep(0.5)
            continue
        if not dep.paused:
            deployment_id: UUID = dep.id
            return deployment_id
        time.sleep(0.5)
    raise BenchError(f"deployment {DEPLOYMENT} was not served within {timeout:.0f} s")


def _one_run(emu: Emulator, client: Any, deployment: UUID, i: int, serve: Any) -> Sample:
    if serve.poll() is not None:
        raise BenchError(f"flows.serve exited with {serve.returncode}")
    wall0 = time.time()
    t0 = time.monotonic()
    run = client.create_flow_run_from_deployment(
        deployment, parameters=_parameters(i), name=f"bench-containment-{i}-{int(wall0)}"
    )
    deadline = time.monotonic() + 180
    while (found := containment_calls(emu, t0)) is None:
        state = client.read_flow_run(run.id).state
        if state is not None and state.is_final():
            raise BenchError(f"run {i} ended {state.name} before containment: {state.message}")
        if time.monotonic() > deadline:
            raise BenchError(f"run {i}: no reset + revoke within 180 s of the request")
        time.sleep(0.02)
    reset, revoke = found
    final = _wait_final(client, run.id, timeout=180)
    if not final.state.is_completed():
        log(
            f"containment run {i} ended {final.state.name} after containment: {final.state.message}"
        )
    states = _state_offsets(client, run.id, wall0)
    first = _first_call(emu, t0)
    return Sample(
        containment=max(reset.monotonic, revoke.monotonic) - t0,
        picked_up=states.get("PENDING"),
        running=states.get("RUNNING"),
        first_call=first - t0 if first is not None else None,
        reset=reset.monotonic - t0,
        completed=bool(final.state.is_completed()),
    )


def bare_cold_series(
    emu: Emulator, procs: Processes, penv: PrefectEnv, logs: Path, runs: int
) -> Series:
    """A bare script started as a new process per incident (imports + token + three calls)."""
    series = Series(label="bare script, new process", kind="bare-cold")
    spec = {
        "config": config_payload(emu.tenant_config(CONTAINMENT_TENANT)),
        "account": CONTAINMENT_ACCOUNT,
    }
    for i in range(runs):
        child = run_child(
            procs,
            "bare-containment",
            spec,
            penv.environ(),
            logs,
            timeout=120,
            tag="bare-containment",
        )
        found = containment_calls(emu, child.started)
        if found is None:
            raise BenchError("the bare script made no reset + revoke")
        reset, revoke = found
        first = _first_call(emu, child.started)
        imported = child.result["imported"]
        assert isinstance(imported, float)
        series.samples.append(
            Sample(
                containment=max(reset.monotonic, revoke.monotonic) - child.started,
                running=imported - child.started,
                first_call=first - child.started if first is not None else None,
                reset=reset.monotonic - child.started,
            )
        )
        if i == 0 or (i + 1) % 10 == 0:
            log(f"containment: bare (new process) {i + 1}/{runs}")
    return series


def bare_warm_series(emu: Emulator, runs: int) -> Series:
    """The same three calls from a process that is already running (clients and token warm)."""
    from m365 import build_clients
    from playbook.passwords import generate_password

    series = Series(label="bare script, warm process", kind="bare-warm")
    clients = build_clients(emu.tenant_config(CONTAINMENT_TENANT))
    clients.graph.get_user(CONTAINMENT_ACCOUNT)  # token + connection, not counted
    for _ in range(runs):
        t0 = time.monotonic()
        user = clients.graph.get_user(CONTAINMENT_ACCOUNT)
        clients.graph.reset_password(user.id, generate_password(), force_change=True)
        clients.graph.revoke_sessions(user.id)
        found = containment_calls(emu, t0)
        if found is None:
            raise BenchError("the warm script made no reset + revoke")
        reset, revoke = found
        series.samples.append(
            Sample(
                containment=max(reset.monotonic, revoke.monotonic) - t0,
                first_call=0.0,
                reset=reset.monotonic - t0,
            )
        )
    return series
