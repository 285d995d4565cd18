"""verify-unblock: the follow-up check after an unblock, and the hand-over secret's cleanup.

Scheduled by unblock-user (default 4 h after the removal). It checks that the account has left
the Restricted users list; while it is still listed it reschedules itself (bounded by attempts
and by ``escalate_after_hours`` after the approval) and then escalates. The chain's last run
deletes the hand-over Secret block. A ``cleanup`` run only deletes the block (runs that
unblocked nothing).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prefect import flow, runtime
from prefect.client.schemas.objects import State
from prefect.exceptions import PrefectException

from m365.errors import M365Error
from orchestration.clients import UnknownTenantProfile
from orchestration.journal import Journal
from orchestration.logs import run_logger
from orchestration.naming import name_verify_run
from playbook import redaction
from playbook.decisions import VerifyAction, verify_decision
from playbook.outcomes import Outcome
from playbook.params import VerifyRequest
from playbook.rendering import render_verify_report
from playbook.report import ApprovalRecord, RunReport, utcnow
from playbook.steps import Step
from tasks.confirm_unblock import confirm_unblock
from tasks.hand_over_credential import delete_handover
from tasks.schedule_verification import schedule_verification

ARTIFACT_KEY = "verify-unblock-report"

ESCALATION_STEPS = [
    "Check the entry's dates in the report: a Created date after the approval means the account "
    "was restricted again (new spam): investigate the account before another unblock.",
    "Look for forwarding, inbox rules and unknown sign-ins on the account (compromise not "
    "contained?).",
    "If the entry is the old one, open a case with Microsoft Support: the removal did not take "
    "effect within 24 hours.",
]


@flow(
    name="verify-unblock",
    flow_run_name=name_verify_run,
    persist_result=False,
    validate_parameters=True,
)
def verify_unblock(check: VerifyRequest) -> State[Any]:
    """Check that an unblocked account has left the Restricted users list; clean up."""
    redaction.install()
    logger = run_logger()
    journal = _journal(check, logger.info)
    try:
        if check.mode == "cleanup":
            _delete_secret(check, journal)
            return journal.finish(Outcome.CLEANED_UP)
        return _verify(check, journal)
    except (M365Error, UnknownTenantProfile, ValueError, PrefectException) as exc:
        _delete_secret(check, journal)
        return journal.finish(
            Outcome.STEP_FAILED,
            detail=f"{journal.current} failed: {type(exc).__name__}: {exc}",
            next_steps=["Check the Restricted users list by hand (Microsoft Defender portal)."],
        )


def _verify(check: VerifyRequest, journal: Journal) -> State[Any]:
    with journal.step(Step.CONFIRM_UNBLOCK) as step:
        confirmed = confirm_unblock(check.tenant, check.account)
        step.note("still listed" if confirmed.still_listed else "gone from the list")
    decision = verify_decision(
        still_listed=confirmed.still_listed,
        now=utcnow(),
        approved_at=check.approved_at,
        escalate_after=timedelta(hours=check.escalate_after_hours),
        recheck_after=timedelta(minutes=check.recheck_minutes),
        attempt=check.attempt,
        max_attempts=check.max_attempts,
    )
    if decision.action is VerifyAction.VERIFIED:
        _delete_secret(check, journal)
        return journal.finish(Outcome.VERIFIED)
    journal.report.entry = confirmed.entry
    if decision.action is VerifyAction.RECHECK and decision.next_check_at is not None:
        nxt = check.model_copy(update={"attempt": check.attempt + 1})
        with journal.step(Step.SCHEDULE_VERIFICATION) as step:
            name = f"verify-{check.attempt + 1}-{journal.report.flow_run_name}"
            scheduled = schedule_verification(nxt, decision.next_check_at, name)
            step.note(f"check {check.attempt + 1} at {decision.next_check_at.isoformat()}")
        journal.report.verification_run = scheduled.flow_run_name
        journal.report.verification_at = decision.next_check_at
        return journal.finish(Outcome.RECHECK_SCHEDULED)
    _delete_secret(check, journal)
    return journal.finish(
        Outcome.STILL_RESTRICTED,
        detail=f"Still listed at check {check.attempt} of at most {check.max_attempts}.",
        next_steps=ESCALATION_STEPS,
    )


def _delete_secret(check: VerifyRequest, journal: Journal) -> None:
    if not check.handover_block:
        return
    with journal.step(Step.DELETE_HANDOVER) as step:
        existed = delete_handover(check.handover_block)
        step.note("deleted" if existed else "was already gone")


def _journal(check: VerifyRequest, log: Any) -> Journal:
    report = RunReport(
        flow="verify-unblock",
        flow_run_id=str(runtime.flow_run.id),
        flow_run_name=str(runtime.flow_run.name),
        account=check.account,
        tenant=check.tenant,
        ticket=check.ticket,
        requested_by=f"unblock-user run {check.source_flow_run_id or '(manual)'}",
        dry_run=False,
        handover="-",
        handover_block=check.handover_block,
    )
    if check.approved_at is not None:
        report.approval = ApprovalRecord(
            decision="approved", at=check.approved_at, requested_at=check.approved_at
        )
    return Journal(report, artifact_key=ARTIFACT_KEY, render=render_verify_report, log=log)
