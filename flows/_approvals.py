"""Waiting for people in unblock-user: the approval-needed message, the escalation, the expiry,
and the outcome message. Kept out of the flow module so its body still reads like the runbook.

One pause per decision (``orchestration.approvals.wait``): the timer thread in this process
escalates to ``escalate_to`` and, at ``approval_timeout_minutes``, ends the wait itself so the
run finishes in its named ApprovalExpired state instead of Prefect's bare "never resumed" failure.

The form's description is short; the full evidence is a Markdown artifact published before the
pause (``publish_evidence``) and linked from the description.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

import httpx
from prefect import runtime
from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.exceptions import PrefectException
from prefect.input import RunInput
from prefect.states import Running

from orchestration.approvals.forms import UnblockApproval
from orchestration.approvals.notify import (
    Delivery,
    NotificationContext,
    NotificationKind,
    artifact_link,
    deep_link,
    render_notification,
    send,
)
from orchestration.approvals.privileged import PrivilegedResetApproval
from orchestration.approvals.wait import WaitOutcome, wait_for_decision
from orchestration.journal import Journal
from orchestration.logs import run_logger
from playbook.evidence import escalation_schedule
from playbook.params import UnblockRequest
from playbook.report import ApprovalRecord, RunReport, StepRecord, utcnow
from playbook.steps import Step
from tasks.send_notification import send_notification

F = TypeVar("F", bound=RunInput)
A = TypeVar("A", UnblockApproval, PrivilegedResetApproval)


def approval_poll_seconds() -> int:
    """How often a paused run polls for the decision (UNBLOCK_APPROVAL_POLL_SECONDS, default 5)."""
    return max(1, int(os.environ.get("UNBLOCK_APPROVAL_POLL_SECONDS", "5")))


def notification_context(req: UnblockRequest, report: RunReport, **kw: Any) -> NotificationContext:
    """What a notification about this run may say (no secret can be in it)."""
    return NotificationContext(
        account=req.account,
        tenant=req.tenant,
        ticket=req.ticket,
        requested_by=req.requested_by,
        flow_run_name=report.flow_run_name,
        link=deep_link(runtime.flow_run.ui_url),
        **kw,
    )


def deliveries_note(deliveries: Sequence[Delivery]) -> str:
    return "; ".join(
        f"{d.block}: sent" if d.delivered else f"{d.block}: FAILED ({d.error})" for d in deliveries
    )


def publish_evidence(key: str, markdown: str, description: str) -> str | None:
    """Publish the full evidence as this run's Markdown artifact ``key`` and return the link to
    its page in the UI (None if the UI address is unknown; the description then names the key)."""
    artifact_id = create_markdown_artifact(key=key, markdown=markdown, description=description)
    return artifact_link(runtime.flow_run.ui_url, artifact_id)


def wait_for_people(
    req: UnblockRequest,
    journal: Journal,
    form: type[F],
    *,
    description: str,
    key: str,
    stage: str,
    risk_summary: str,
) -> WaitOutcome[F]:
    """Tell ``notify``, pause once for ``form``, escalate to ``escalate_to``, expire cleanly."""
    report = journal.report
    schedule = escalation_schedule(
        req.approval_timeout_minutes,
        req.escalate_after_minutes if req.escalate_to else None,
        grace_seconds=max(30, 3 * approval_poll_seconds()),
    )
    if req.notify:
        with journal.step(Step.NOTIFY_APPROVAL_NEEDED) as step:
            ctx = notification_context(
                req,
                report,
                stage=stage,
                risk_summary=risk_summary,
                wait_minutes=req.approval_timeout_minutes,
            )
            step.note(
                deliveries_note(
                    send_notification(tuple(req.notify), NotificationKind.APPROVAL_NEEDED, ctx)
                )
            )
    on_escalate = None
    if req.escalate_to and schedule.escalate_after is not None:
        waited = schedule.escalate_after.total_seconds() / 60
        escalation = render_notification(
            NotificationKind.ESCALATION,
            notification_context(
                req,
                report,
                stage=stage,
                risk_summary=risk_summary,
                waited_minutes=round(waited, 1),
                wait_minutes=round(req.approval_timeout_minutes - waited, 1),
            ),
        )
        targets = tuple(req.escalate_to)

        # Runs in the timer thread while the run is paused: plain code, not a task (a paused
        # run cannot start tasks). Rendered beforehand, so the thread only posts.
        def on_escalate() -> list[Delivery]:
            return [send(target, escalation) for target in targets]

    elif req.escalate_to:
        journal.skipped(
            Step.ESCALATE,
            "escalate_after_minutes is not shorter than approval_timeout_minutes: no escalation",
        )
    outcome = wait_for_decision(
        form,
        description=description,
        key=key,
        schedule=schedule,
        poll_interval=approval_poll_seconds(),
        on_escalate=on_escalate,
        log=run_logger(),
    )
    if outcome.pause_timed_out:
        leave_expired_pause()
    if outcome.escalated_at is not None:
        report.steps.append(
            StepRecord(
                name="escalate",
                status="done",
                started=outcome.escalated_at,
                finished=outcome.escalated_at,
                detail=deliveries_note(outcome.escalation) or "no escalation target answered",
            )
        )
    return outcome


class Description(Protocol):
    """Renders the form's short description, which links to the full evidence and states the
    timeout the pause uses."""

    def __call__(
        self, *, timeout_minutes: float, evidence_link: str | None, evidence_key: str
    ) -> str: ...


def ask(
    req: UnblockRequest,
    journal: Journal,
    name: Step,
    form: type[A],
    *,
    stage: str,
    evidence_key: str,
    evidence: str,
    evidence_title: str,
    describe: Description,
    risk_summary: str,
) -> tuple[A | None, ApprovalRecord]:
    """One approval of the run (``stage``): publish the full ``evidence`` as the artifact
    ``evidence_key``, then, as step ``name``, wait for the people (pause key
    ``approve-<stage>-<n>``) and note the answer; the answer (None: nobody decided in time) and
    the report's record of it."""
    requested_at = utcnow()
    link = publish_evidence(evidence_key, evidence, evidence_title)
    description = describe(
        timeout_minutes=req.approval_timeout_minutes, evidence_link=link, evidence_key=evidence_key
    )
    with journal.step(name) as step:
        answer = wait_for_people(
            req,
            journal,
            form,
            description=description,
            key=f"approve-{stage}-{runtime.flow_run.run_count}",
            stage=stage,
            risk_summary=risk_summary,
        ).decision
        step.note(
            "no decision before the timeout"
            if answer is None
            else f"{'approved' if answer.approved else 'rejected'} by {answer.approver}"
        )
    return answer, ApprovalRecord.of(answer, requested_at)


def leave_expired_pause() -> None:
    """After the server's pause deadline fired it refuses every further transition of the run
    (it would end as "paused and never resumed"); force it back to Running so the run can write
    its report, schedule the cleanup and end in the named ApprovalExpired state."""
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(
            runtime.flow_run.id, Running(message="Approval expired; finishing"), force=True
        )


def notify_outcome(req: UnblockRequest, journal: Journal, report: RunReport) -> None:
    """Journal hook: tell ``notify`` how the run ended, recorded as a step of the report.
    A notification never changes the outcome, so nothing here may raise."""
    if not req.notify or report.outcome is None:
        return
    approver = report.approval.approver if report.approval else None
    ctx = notification_context(
        req,
        report,
        outcome=report.outcome.value,
        outcome_summary=report.outcome.summary,
        approver=approver,
    )
    try:
        with journal.step(Step.NOTIFY_OUTCOME) as step:
            step.note(
                deliveries_note(send_notification(tuple(req.notify), NotificationKind.OUTCOME, ctx))
            )
    except (PrefectException, httpx.HTTPError, OSError, RuntimeError, ValueError) as exc:
        run_logger().warning("Outcome notification failed: %s", type(exc).__name__)
