"""flows.warm: deployment runs executed on a long-lived process, against a real Prefect server.

The runs are requested as an analyst's are (``create_flow_run_from_deployment``) on a deployment
of this module's own, so no other suite's leftover runs are claimed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ["UNBLOCK_APPROVAL_POLL_SECONDS"] = "1"

from prefect.client.orchestration import get_client
from prefect.flow_runs import resume_flow_run

from devtools.localstack import wait_for
from emulator import Emulator
from flows.unblock_user import ARTIFACT_KEY, unblock_user
from flows.warm import WarmExecutor
from playbook.rendering import md_escape

from ..handover_keys import PUBLIC_KEY, secret_value
from ..helpers.runs import artifact_markdown, effective_writes, ensure_verify_deployment

TENANT = "contoso"
ROB = "rob@contoso.com"  # on the Restricted users list in the demo seed
ALEX = "alex@contoso.com"  # not on the list
DEPLOYMENT = f"warm-{uuid.uuid4().hex[:6]}"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def deployment_id(prefect_api: str, emulator_session: Emulator) -> uuid.UUID:
    from orchestration.blocks import M365Tenant, register_blocks

    register_blocks()
    M365Tenant.from_config(
        emulator_session.tenant_config(TENANT), handover_public_key=PUBLIC_KEY
    ).save(TENANT, overwrite=True)
    ensure_verify_deployment()
    return unblock_user.to_deployment(name=DEPLOYMENT, enforce_parameter_schema=True).apply()


@pytest.fixture
def executor(deployment_id: uuid.UUID, emulator: Emulator) -> Iterator[WarmExecutor]:
    stop = threading.Event()
    warm = WarmExecutor(flows={deployment_id: unblock_user}, poll_seconds=0.1)
    thread = threading.Thread(target=warm.run, args=(stop,), daemon=True)
    thread.start()
    yield warm
    stop.set()
    thread.join(30)


def _request(deployment_id: uuid.UUID, account: str, **extra: Any) -> Any:
    params = {
        "request": {
            "account": account,
            "tenant": TENANT,
            "ticket": "INC-7001",
            "requested_by": "ann",
            "approval_timeout_minutes": 5,
            **extra,
        }
    }
    with get_client(sync_client=True) as client:
        return client.create_flow_run_from_deployment(deployment_id, parameters=params)


def _state(run_id: uuid.UUID) -> Any:
    with get_client(sync_client=True) as client:
        return client.read_flow_run(run_id).state


def _wait_state(run_id: uuid.UUID, check: Any, what: str, timeout: float = 90) -> Any:
    def ready() -> Any:
        state = _state(run_id)
        return state if state is not None and check(state) else None

    return wait_for(ready, timeout, what, every=0.2)


def test_requested_run_is_contained_on_the_warm_path_and_reports_it(
    executor: WarmExecutor, deployment_id: uuid.UUID, emulator: Emulator
) -> None:
    run = _request(deployment_id, ROB)
    _wait_state(run.id, lambda s: s.is_paused(), "the warm run to ask for approval")
    # contained before the approval: one reset, one revoke, in this process
    assert effective_writes(emulator, "graph.update_user") == 1
    assert effective_writes(emulator, "graph.revoke_sessions") == 1
    password = secret_value(f"unblock-handover-{run.id}")
    assert password and emulator.state.password_matches(ROB, password, TENANT)
    resume_flow_run(run.id, run_input={"decision": "approve", "approver": "bob"})
    final = _wait_state(run.id, lambda s: s.is_final(), "the warm run to finish")
    assert final.name == "Unblocked", final.message
    # The demo tenant keeps a removed entry listed for removal_delay_seconds, as Exchange does.
    wait_for(lambda: not emulator.state.is_restricted(TENANT, ROB), 30, "rob to leave the list")
    report = artifact_markdown(run.id, ARTIFACT_KEY)
    label = md_escape(f"the warm executor (process {os.getpid()} on")
    assert f"| Executed by | {label} " in report
    wait_for(lambda: executor.active() == 0, 10, "the executor to free the run's slot")


def test_two_executors_run_each_request_exactly_once(
    deployment_id: uuid.UUID, emulator: Emulator
) -> None:
    stop = threading.Event()
    pair = [
        WarmExecutor(flows={deployment_id: unblock_user}, poll_seconds=0.05, label=f"warm {n}")
        for n in ("one", "two")
    ]
    threads = [threading.Thread(target=w.run, args=(stop,), daemon=True) for w in pair]
    runs = [_request(deployment_id, ALEX, dry_run=True) for _ in range(6)]
    for thread in threads:
        thread.start()
    try:
        for run in runs:
            final = _wait_state(run.id, lambda s: s.is_final(), f"run {run.name}")
            assert final.is_completed(), final.message
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    reports = [artifact_markdown(r.id, ARTIFACT_KEY) for r in runs]
    assert {md.split("| Executed by | ", 1)[1][:8] for md in reports} <= {"warm one", "warm two"}
    with get_client(sync_client=True) as client:
        for run in runs:
            states = [s.type.value for s in client.read_flow_run_states(run.id)]
            # Run once. On SQLite the server may accept a second claim (Pending) of the same run
            # (Prefect PR #9590); the executor whose claim was overwritten must not start it.
            assert states.count("RUNNING") == 1 and states.count("COMPLETED") == 1, states
            assert 1 <= states.count("PENDING") <= 2, states
    assert [r for r in emulator.writes() if 200 <= r.status < 300] == []  # dry runs write nothing


def test_sigterm_marks_the_unfinished_run_crashed_and_the_next_run_recovers_its_secret(
    deployment_id: uuid.UUID, emulator: Emulator, prefect_home: Path
) -> None:
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    name = f"unblock-user/{DEPLOYMENT}"
    argv = [sys.executable, "-m", "flows.warm", "--deployment", name, "--poll-seconds", "0.2"]
    log = prefect_home / f"warm-{uuid.uuid4().hex[:6]}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            first = _request(deployment_id, ROB)
            _wait_state(first.id, lambda s: s.is_paused(), "the served run to pause", 120)
            assert secret_value(f"unblock-handover-{first.id}") is not None
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    output = log.read_text()
    assert "warm executor: marked 1 unfinished run(s) Crashed" in output, output
    assert "warm executor: stopped" in output
    crashed = _state(first.id)
    assert crashed.is_crashed() and "warm executor stopped" in (crashed.message or "")
    # A new request for the account, on another executor: its recovery step deletes the
    # crashed run's secret once its own reset has made that password stale.
    stop = threading.Event()
    warm = WarmExecutor(flows={deployment_id: unblock_user}, poll_seconds=0.1)
    thread = threading.Thread(target=warm.run, args=(stop,), daemon=True)
    thread.start()
    try:
        second = _request(deployment_id, ROB)
        _wait_state(second.id, lambda s: s.is_paused(), "the second run to pause")
        assert secret_value(f"unblock-handover-{first.id}") is None
        password = secret_value(f"unblock-handover-{second.id}")
        assert password and emulator.state.password_matches(ROB, password, TENANT)
        resume_flow_run(second.id, run_input={"decision": "reject", "approver": "bob"})
        _wait_state(second.id, lambda s: s.is_final(), "the second run to finish")
    finally:
        stop.set()
        thread.join(30)


def test_serve_warm_runs_unblock_user_in_its_own_process_and_stops_on_sigterm(
    deployment_id: uuid.UUID, emulator: Emulator, prefect_home: Path
) -> None:
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.settings import PREFECT_API_URL
    from prefect.states import Cancelled

    # Other suites leave Scheduled runs on the shared unblock-user deployment; not ours to run.
    with get_client(sync_client=True) as client:
        for old in client.read_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["unblock-user"])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))
            ),
        ):
            client.set_flow_run_state(old.id, Cancelled(message="test cleanup"), force=True)
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    argv = [
        sys.executable,
        "-m",
        "flows.serve",
        "--warm",
        "--only",
        "unblock-user",
        "verify-unblock",
    ]
    log = prefect_home / f"serve-warm-{uuid.uuid4().hex[:6]}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: "warm executor: serving unblock-user" in log.read_text(), 120, "serve")
            with get_client(sync_client=True) as client:
                served = client.read_deployment_by_name("unblock-user/unblock-user").id
            run = _request(served, ALEX)
            final = _wait_state(run.id, lambda s: s.is_final(), "the served run", 120)
            assert final.name == "NotRestricted", final.message
            report = artifact_markdown(run.id, ARTIFACT_KEY)
            label = md_escape(f"the warm executor (process {proc.pid} on")
            assert f"| Executed by | {label} " in report
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert effective_writes(emulator, "graph.update_user") == 1  # contained once
