"""Item 2: SIGKILL the process running unblock-user at the two points that matter.

A real ``prefect server start`` and a ``python -m flows.serve`` process (the worker: it runs each
flow run as a child process). Semantics (docs/security-model.md, "Crashes"):

A. flow process killed right after the password reset (the worker survives):
   the worker marks the run ``Crashed``; the hand-over block holds the password in force.
B. worker and flow process killed while the run waits for approval (host lost):
   nothing is left to report; the server fails the run at its pause deadline
   (``Failed``, "paused and never resumed"); same block situation.

In both cases ``tasks.recover_interrupted_runs.recover()`` gives the orphaned block its cleanup
run (not orphaned), and a new run for the same account deletes the old block right after its own
reset (the old password is no longer in force), so the only credential left to hand over is the
one in force.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from devtools.localstack import descendants
from emulator import Emulator

from ..handover_keys import secret_value
from ..helpers.runs import handover_events
from .realserver import RealServer, serve_and_wait, served_stack, use_api, wait_for

ROB = "rob@contoso.com"
SERVED = ("unblock-user", "verify-unblock")
pytestmark = pytest.mark.timeout(400)


@pytest.fixture(scope="module")
def crash_env() -> Iterator[tuple[RealServer, Emulator]]:
    with served_stack("unblock-crash-", *SERVED) as env:
        yield env


def start_worker(server: RealServer) -> None:
    serve_and_wait(server, *SERVED)


def run_deployment_now(**request: Any) -> Any:
    from prefect.deployments import run_deployment

    params = {"tenant": "contoso", "ticket": "INC-3001", "requested_by": "ann", **request}
    return run_deployment(
        "unblock-user/unblock-user", parameters={"request": params}, timeout=0, as_subflow=False
    )


def read(run_id: Any) -> Any:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(run_id)


def flow_process_of(server: RealServer) -> int:
    """The child process of the worker that runs the flow."""
    worker = server.procs["serve"].pid
    children = descendants(worker)
    assert children, "the worker has no flow-run process"
    return max(children)


def handover_blocks() -> set[str]:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        docs = client.read_block_documents(include_secrets=False)
    return {d.name for d in docs if d.name and d.name.startswith("unblock-handover-")}


def followups_for(block: str) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["verify-unblock"])),
            sort=FlowRunSort.EXPECTED_START_TIME_DESC,
        )
    return [r for r in runs if (r.parameters.get("check") or {}).get("handover_block") == block]


def rerun_and_check(server: RealServer, emu: Emulator, old_block: str) -> None:
    """A new run for the same account: safe, and the recovery deletes the old secret once the
    new reset has made it stale."""
    new = run_deployment_now(account=ROB, approval_timeout_minutes=5)
    new_block = f"unblock-handover-{new.id}"
    wait_for(lambda: read(new.id).state.is_paused(), 120, "the new run to ask for approval")
    password = secret_value(new_block)
    assert password and emu.state.password_matches(emu.state.user("contoso", ROB), password)
    # The new run's own recovery step (right after its reset) found the crashed run's secret
    # stale and deleted it, before the new run asked for approval.
    assert secret_value(old_block) is None, "the stale secret must be gone after the new reset"
    assert handover_blocks() & {old_block, new_block} == {new_block}
    with use_api(server.api_url):
        from tasks.recover_interrupted_runs import recover

        actions = [r.action.value for r in recover() if r.handover_block == old_block]
    assert actions in ([], ["nothing"]), "nothing is left to recover"
    from prefect.flow_runs import resume_flow_run

    resume_flow_run(new.id, run_input={"decision": "approve", "approver": "bob"})
    final = wait_for(
        lambda: (s := read(new.id).state) is not None and s.is_final() and s, 120, "new run"
    )
    assert final.name == "Unblocked", final.message
    assert emu.state.unblock_count("contoso", ROB) == 1


def kill_flow_process_after_the_reset(server: RealServer, emu: Emulator) -> tuple[Any, str]:
    """Start an unblock-user run for ROB, SIGKILL its flow process between the password reset
    and the session revocation; the run and its hand-over block name."""
    # Hold the run in the step after the reset, so the kill lands between the two.
    emu.faults.add(endpoint="graph.revoke_sessions", kind="latency", seconds=60, count=1)
    run = run_deployment_now(account=ROB, approval_timeout_minutes=5)
    wait_for(
        lambda: any(
            r.endpoint == "graph.update_user" and 200 <= r.status < 300 for r in emu.writes()
        ),
        120,
        "the password reset",
    )
    # The emulator records a request once answered, so the run is now held inside revoke.
    os.kill(flow_process_of(server), signal.SIGKILL)
    return run, f"unblock-handover-{run.id}"


def test_kill_flow_process_right_after_the_password_reset(crash_env):
    server, emu = crash_env
    emu.reset()
    run, block = kill_flow_process_after_the_reset(server, emu)

    crashed = wait_for(
        lambda: (s := read(run.id).state) is not None and s.is_final() and s, 60, "Crashed"
    )
    assert crashed.is_crashed(), (crashed.type, crashed.message)
    password = secret_value(block)
    assert password, "the block holds the password that is now in force"
    assert emu.state.password_matches(emu.state.user("contoso", ROB), password)
    assert not any(r.cmdlet == "Remove-BlockedSenderAddress" for r in emu.requests)

    with use_api(server.api_url):
        from tasks.recover_interrupted_runs import recover

        first = [r for r in recover() if r.handover_block == block]
        again = [r for r in recover() if r.handover_block == block]
    assert [r.action.value for r in first] == ["schedule-cleanup"]
    assert [r.action.value for r in again] == ["nothing"], "recovery must be idempotent"
    assert len(followups_for(block)) == 1, "exactly one cleanup run owns the secret"

    rerun_and_check(server, emu, block)


def test_kill_worker_while_waiting_for_approval(crash_env):
    server, emu = crash_env
    emu.reset()
    run = run_deployment_now(account=ROB, approval_timeout_minutes=0.25)
    block = f"unblock-handover-{run.id}"
    wait_for(lambda: read(run.id).state.is_paused(), 120, "the approval pause")
    server.kill("serve", signal.SIGKILL)  # the worker and its flow process: the host is gone

    final = wait_for(
        lambda: (s := read(run.id).state) is not None and s.is_final() and s, 90, "the deadline"
    )
    assert final.is_failed(), (final.type, final.message)
    assert "never resumed" in (final.message or "")
    password = secret_value(block)
    assert password and emu.state.password_matches(emu.state.user("contoso", ROB), password)
    assert emu.state.unblock_count("contoso", ROB) == 0

    start_worker(server)  # the replacement worker
    with use_api(server.api_url):
        from tasks.recover_interrupted_runs import recover

        actions = [r.action.value for r in recover() if r.handover_block == block]
    assert actions == ["schedule-cleanup"]
    rerun_and_check(server, emu, block)


def sealed_events(run_id: Any) -> list[Any]:
    from orchestration import handover_audit

    return handover_events(run_id, handover_audit.SEALED)


def test_a_rerun_in_a_new_process_seals_a_new_password_before_its_reset(crash_env):
    """The worker cannot open the sealed copy (it has no private key) and the dead process took
    the clear value with it: the re-run of the same flow run generates a new password, replaces
    the sealed copy, then resets. The block never holds a password older than the one in force."""
    server, emu = crash_env
    emu.reset()
    if "serve" not in server.procs:
        start_worker(server)
    run, block = kill_flow_process_after_the_reset(server, emu)
    wait_for(lambda: (s := read(run.id).state) is not None and s.is_crashed(), 60, "Crashed")
    first = secret_value(block)
    assert first and emu.state.password_matches(emu.state.user("contoso", ROB), first)

    # The analyst retries the same run (what "Retry" in the UI does): the worker runs it again.
    from prefect.client.orchestration import get_client
    from prefect.states import Scheduled

    with get_client(sync_client=True) as client:
        client.set_flow_run_state(run.id, Scheduled(), force=True)
    wait_for(lambda: read(run.id).state.is_paused(), 120, "the re-run to ask for approval")
    second = secret_value(block)
    assert second and second != first
    user = emu.state.user("contoso", ROB)
    assert emu.state.password_matches(user, second) and not emu.state.password_matches(user, first)
    events = wait_for(lambda: len(e := sealed_events(run.id)) >= 2 and e, 30, "sealed events")
    assert sorted(e.payload["replaced_earlier_copy"] for e in events) == [False, True]

    from prefect.flow_runs import resume_flow_run

    resume_flow_run(run.id, run_input={"decision": "approve", "approver": "bob"})
    final = wait_for(
        lambda: (s := read(run.id).state) is not None and s.is_final() and s, 120, "the re-run"
    )
    assert final.name == "Unblocked", final.message
    assert secret_value(block) == second
