"""Recovery step: deal with the hand-over secrets of unblock-user runs that a crash interrupted.

The decisions are ``playbook.recovery.decide``; this module gathers the facts from the Prefect
API (runs, task runs, Secret blocks) and carries the decisions out. It never reads a secret's
value (the blocks hold it sealed to the hand-over team's key anyway): blocks are looked up and
deleted by name with ``include_secrets=False``, and each deletion is recorded as an
``unblock-email.handover.deleted`` event.

Callers:

- ``python -m tasks.recover_interrupted_runs`` (cron, the sweep, an operator): every interrupted
  run's secret gets its follow-up, so no secret is orphaned, and secrets superseded by a newer
  run's reset are deleted;
- optionally ``unblock-user`` right after its own password reset, for the same tenant and
  account (``superseded_by`` = its run id), so a stale secret disappears at once;
- ``install_crash_detection()`` once per server: the heartbeat automation that marks the runs
  of a vanished host ``Crashed``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound
from pydantic import BaseModel, ConfigDict, ValidationError

from orchestration import handover_audit
from orchestration.runs import flow_named, in_states, with_ids
from playbook.decisions import handover_block_name
from playbook.params import UnblockRequest, VerifyRequest
from playbook.recovery import (
    INTERRUPTED_STATE_TYPES,
    Decision,
    InterruptedRun,
    RecoveryAction,
    decide,
    same_account,
)
from playbook.steps import Step

from ._policy import single_try

log = logging.getLogger("prefect.unblock.recovery")

VERIFY_DEPLOYMENT = "verify-unblock/verify-unblock"
ACTIVE_STATE_TYPES = ("SCHEDULED", "PENDING", "RUNNING", "PAUSED", "CANCELLING")
CRASH_AUTOMATION = "unblock-email-crashed-runs"
_MAX_RUNS = 200


class RecoveryRecord(BaseModel):
    """What the recovery did for one interrupted run (safe to log and return)."""

    model_config = ConfigDict(frozen=True)

    flow_run_id: str
    flow_run_name: str
    handover_block: str | None
    action: RecoveryAction
    reason: str
    followup_run: str | None = None


def _request(run: FlowRun) -> UnblockRequest | None:
    try:
        return UnblockRequest.model_validate((run.parameters or {}).get("request"))
    except ValidationError:
        return None


def _block_exists(client: SyncPrefectClient, name: str) -> bool:
    try:
        client.read_block_document_by_name(name, block_type_slug="secret", include_secrets=False)
    except ObjectNotFound:
        return False
    return True


def _delete_block(client: SyncPrefectClient, name: str, reason: str) -> bool:
    try:
        doc = client.read_block_document_by_name(
            name, block_type_slug="secret", include_secrets=False
        )
        assert doc.id is not None
        client.delete_block_document(doc.id)
    except ObjectNotFound:
        return False
    handover_audit.record_deleted(
        name, by=handover_audit.current_actor(Step.RECOVER_INTERRUPTED_RUNS), reason=reason
    )
    return True


def _runs(client: SyncPrefectClient, flow: str, states: Sequence[str]) -> list[FlowRun]:
    return list(
        client.read_flow_runs(
            flow_filter=flow_named(flow),
            flow_run_filter=in_states(StateType(s) for s in states),
            sort=FlowRunSort.EXPECTED_START_TIME_DESC,
            limit=_MAX_RUNS,
        )
    )


def _completed(client: SyncPrefectClient, run_id: UUID, task_name: Step) -> bool:
    """True if the flow run has a completed task run of ``task_name``."""
    task_runs = client.read_task_runs(flow_run_filter=with_ids([run_id]))
    return any(
        (tr.task_key.startswith(task_name) or tr.name.startswith(task_name))
        and tr.state is not None
        and tr.state.is_completed()
        for tr in task_runs
    )


def _superseded(
    client: SyncPrefectClient, run: FlowRun, request: UnblockRequest, others: list[FlowRun]
) -> bool:
    """A newer unblock-user run for the same tenant and account has reset the password again."""
    created = run.created
    for other in others:
        if other.id == run.id or created is None or other.created is None:
            continue
        if other.created <= created:
            continue
        later = _request(other)
        if later is None or not same_account(later, request.tenant, request.account):
            continue
        if _completed(client, other.id, Step.RESET_PASSWORD):
            return True
    return False


def _pending_followups(client: SyncPrefectClient) -> set[str]:
    """Hand-over blocks owned by a verify-unblock run that has yet to finish."""
    owned = set()
    for run in _runs(client, "verify-unblock", ACTIVE_STATE_TYPES):
        check: Any = (run.parameters or {}).get("check") or {}
        if isinstance(check, dict) and isinstance(check.get("handover_block"), str):
            owned.add(check["handover_block"])
    return owned


def _schedule(run: InterruptedRun, decision: Decision) -> str:
    assert run.handover_block is not None and decision.at is not None
    mode = "verify" if decision.action is RecoveryAction.SCHEDULE_VERIFY else "cleanup"
    check = VerifyRequest(
        account=run.request.account,
        tenant=run.request.tenant,
        ticket=run.request.ticket,
        source_flow_run_id=UUID(run.flow_run_id),
        mode=mode,
        handover_block=run.handover_block,
    )
    created = run_deployment(
        name=VERIFY_DEPLOYMENT,
        parameters={"check": check.model_dump(mode="json")},
        scheduled_time=decision.at,
        timeout=0,
        as_subflow=False,
        flow_run_name=f"recover-{mode}-{run.flow_run_name}",
        tags=["unblock-email", "follow-up", "recovery"],
    )
    assert isinstance(created, FlowRun)
    return str(created.name)


def recover(
    *,
    tenant: str | None = None,
    account: str | None = None,
    superseded_by: str | None = None,
    now: datetime | None = None,
) -> list[RecoveryRecord]:
    """Find interrupted unblock-user runs (optionally for one tenant and account) and act.

    An interrupted run is *superseded* when a newer run for the same tenant and account has
    completed its own ``reset_password``: its secret is then no longer in force and is deleted.
    ``superseded_by``: the id of a run that has just reset this account's password (an in-flow
    caller), which makes every older interrupted run's secret for that account superseded.
    """
    now = now or datetime.now(UTC)
    records: list[RecoveryRecord] = []
    with get_client(sync_client=True) as client:
        interrupted = _runs(client, "unblock-user", INTERRUPTED_STATE_TYPES)
        everything: list[FlowRun] | None = None
        followups: set[str] | None = None
        for run in interrupted:
            request = _request(run)
            if request is None or str(run.id) == superseded_by:
                continue
            if tenant and account and not same_account(request, tenant, account):
                continue
            block = handover_block_name(str(run.id))
            if not _block_exists(client, block):
                continue
            if followups is None:
                followups = _pending_followups(client)
            facts = InterruptedRun(
                flow_run_id=str(run.id),
                flow_run_name=run.name,
                state_type=run.state_type.value if run.state_type else "UNKNOWN",
                request=request,
                created=run.created or now,
                handover_block=block,
                followup_pending=block in followups,
                unblocked=_completed(client, run.id, Step.UNBLOCK_SENDER),
            )
            if superseded_by is not None:
                superseded = True
            else:
                if everything is None:
                    everything = _runs(
                        client,
                        "unblock-user",
                        INTERRUPTED_STATE_TYPES + ACTIVE_STATE_TYPES + ("COMPLETED",),
                    )
                superseded = _superseded(client, run, request, everything)
            decision = decide(facts, superseded=superseded, now=now)
            followup = None
            if decision.action is RecoveryAction.DELETE:
                _delete_block(client, block, f"recovery: {decision.reason}")
            elif decision.action in (
                RecoveryAction.SCHEDULE_CLEANUP,
                RecoveryAction.SCHEDULE_VERIFY,
            ):
                followup = _schedule(facts, decision)
                followups.add(block)
            record = RecoveryRecord(
                flow_run_id=facts.flow_run_id,
                flow_run_name=facts.flow_run_name,
                handover_block=block,
                action=decision.action,
                reason=decision.reason,
                followup_run=followup,
            )
            log.info(
                "Interrupted run %s (%s): %s, %s",
                record.flow_run_name,
                facts.state_type,
                record.action.value,
                record.reason,
            )
            records.append(record)
    return records


@single_try("recover_interrupted_runs")
def recover_interrupted_runs(
    tenant: str | None = None, account: str | None = None, superseded_by: str | None = None
) -> list[RecoveryRecord]:
    """Delete superseded hand-over secrets; give every other orphan its follow-up run."""
    return recover(tenant=tenant, account=account, superseded_by=superseded_by)


def install_crash_detection(*, heartbeat_seconds: int = 180, grace_seconds: int = 90) -> None:
    """Create (once) the automation that marks a Running playbook run ``Crashed`` when its
    heartbeats stop, i.e. the whole worker host vanished and nobody else can say so.

    Needs ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` = ``heartbeat_seconds`` on the workers (Prefect's
    own recipe for zombie runs; a runner or worker that outlives its flow process marks the run
    ``Crashed`` itself, and a paused run fails at its deadline without any of this).
    """
    from prefect.automations import Automation
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture

    try:
        Automation.read(name=CRASH_AUTOMATION)  # type: ignore[unused-coroutine]  # sync here
    except ValueError:
        pass
    else:
        return
    automation = Automation(
        name=CRASH_AUTOMATION,
        description="Mark unblock-email runs Crashed when their heartbeats stop.",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
                "prefect.flow-run.Paused",
                "prefect.flow-run.Suspended",
            },
            match={"prefect.resource.id": ["prefect.flow-run.*"]},
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=heartbeat_seconds + grace_seconds),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message="No heartbeat: the worker host running this flow run is gone.",
            )
        ],
    )
    automation.create()  # type: ignore[unused-coroutine]  # sync in a sync context


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for record in recover():
        print(record.model_dump_json())


if __name__ == "__main__":
    main()
