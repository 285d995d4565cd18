"""unblock-user: Microsoft 365's "Unblock email" procedure for one account.

The body reads like the runbook:

1. resolve the account (stop if unknown, disabled or synced from on-premises);
2. reset the password immediately (new value stored in the run's Secret block first), revoke the
   sign-in sessions, hand the credential over (Secret block, one-time TAP, or nothing);
3. look for the account on the Restricted users list;
4. not listed: done;
5. listed: pause for a human approval;
6. approved: remove the entry;
7. confirm, and schedule the follow-up check (verify-unblock), which also deletes the secret.

Every path that created a hand-over secret schedules a follow-up that deletes it.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from prefect import flow, runtime
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import State
from prefect.exceptions import FlowPauseTimeout, PrefectException
from prefect.flow_runs import pause_flow_run
from prefect.states import Running

from m365.errors import M365Error, NotFoundError, UnblockLimitError
from m365.models import RestrictedSender, User
from playbook import redaction
from playbook.approval import UnblockApproval
from playbook.clients import UnknownTenantProfile
from playbook.decisions import (
    account_stop,
    addresses_to_check,
    handover_block_name,
    match_restricted_entry,
    unblock_reason,
)
from playbook.journal import Journal
from playbook.outcomes import Outcome
from playbook.params import UnblockRequest, VerifyRequest
from playbook.passwords import DEFAULT_LENGTH
from playbook.rendering import render_approval, render_unblock_report
from playbook.report import ApprovalRecord, RunReport, utcnow
from tasks._logging import run_logger
from tasks.confirm_unblock import confirm_unblock
from tasks.find_restricted_entry import find_restricted_entry
from tasks.hand_over_credential import delete_handover, hand_over_credential, prepare_handover
from tasks.reset_password import reset_password
from tasks.resolve_account import resolve_account
from tasks.revoke_sessions import revoke_sessions
from tasks.schedule_verification import schedule_verification
from tasks.unblock_sender import unblock_sender

ARTIFACT_KEY = "unblock-user-report"


def approval_poll_seconds() -> int:
    """How often a paused run polls for the decision (UNBLOCK_APPROVAL_POLL_SECONDS, default 5)."""
    return max(1, int(os.environ.get("UNBLOCK_APPROVAL_POLL_SECONDS", "5")))


@flow(name="unblock-user", persist_result=False, validate_parameters=True)
def unblock_user(request: UnblockRequest) -> State[Any]:
    """Reset, check, approve and unblock one account restricted from sending e-mail."""
    redaction.install()
    logger = run_logger()
    journal = _journal(request, logger.info)
    try:
        return _procedure(request, journal)
    except (M365Error, UnknownTenantProfile, ValueError) as exc:
        return _failed(request, journal, exc)
    except BaseException:
        # Unexpected (a bug, the Prefect API gone): still leave a report, then let it crash.
        if journal.finished_state is None:
            _cleanup_after_failure(request, journal)
            journal.finish(Outcome.STEP_FAILED, detail="Unexpected error; see the run logs.")
        raise


def _procedure(req: UnblockRequest, journal: Journal) -> State[Any]:
    report = journal.report

    # 1. Resolve the account.
    with journal.step("resolve_account") as step:
        user = resolve_account(req.tenant, req.account)
        step.note(f"{user.user_principal_name} ({user.id})")
    report.user = user
    if (stop := account_stop(user)) is not None:
        return journal.finish(stop)
    if req.dry_run:
        return _dry_run(req, journal, user)

    # 2. Reset the password immediately, revoke sessions, hand the credential over.
    block = handover_block_name(report.flow_run_id) if req.handover != "none" else None
    if req.handover == "secret-block" and block:
        with journal.step("prepare_handover") as step:
            prepare_handover(block)
            step.note(f"new password stored in Secret block {block}")
        report.handover_block = block
    with journal.step("reset_password") as step:
        reset = reset_password(
            req.tenant,
            user.id,
            block if req.handover == "secret-block" else None,
            user.last_password_change,
        )
        step.note(
            "force change at next sign-in"
            + ("; an earlier attempt had already applied it" if reset.already_applied else ""),
            reset.request_id,
        )
    with journal.step("revoke_sessions") as step:
        receipt = revoke_sessions(req.tenant, user.id)
        step.note("sign-in sessions revoked", receipt.request_id)
    with journal.step("hand_over_credential") as step:
        handover = hand_over_credential(req.tenant, user.id, req.handover, block)
        report.handover_block = handover.handover_block
        step.note(_handover_note(req, handover.handover_block), handover.request_id)

    # 3. Look for the account on the Restricted users list.
    with journal.step("find_restricted_entry") as step:
        entries = find_restricted_entry(req.tenant, addresses_to_check(user))
        entry = match_restricted_entry(user, entries)
        step.note(f"listed as {entry.sender_address}" if entry else "not listed")

    # 4. Not restricted: done (the reset stands).
    if entry is None:
        _schedule_cleanup(req, journal)
        return journal.finish(Outcome.NOT_RESTRICTED)
    report.entry = entry

    # 5. Human approval.
    decision = _request_approval(req, journal, entry)
    if decision is None:
        _schedule_cleanup(req, journal)
        return journal.finish(Outcome.APPROVAL_EXPIRED, next_steps=_not_unblocked_steps(req))
    if not decision.approve:
        _schedule_cleanup(req, journal)
        return journal.finish(Outcome.REJECTED, next_steps=_not_unblocked_steps(req))

    # 6. Remove the entry.
    with journal.step("unblock_sender") as step:
        removed = unblock_sender(
            req.tenant, entry.sender_address, unblock_reason(req.ticket, decision.approver)
        )
        step.note(
            "already removed" if removed.already_removed else "Remove-BlockedSenderAddress done",
            removed.request_id,
        )

    # 7. Confirm, and schedule the follow-up check.
    with journal.step("confirm_unblock") as step:
        confirmed = confirm_unblock(req.tenant, entry.sender_address)
        step.note(
            "still visible (removal propagating)" if confirmed.still_listed else "gone from list"
        )
    _schedule_verify(req, journal, entry.sender_address, mode="verify")
    return journal.finish(Outcome.UNBLOCKED)


def _request_approval(
    req: UnblockRequest, journal: Journal, entry: RestrictedSender
) -> UnblockApproval | None:
    """Pause for the approver; None when nobody decided in time."""
    report = journal.report
    requested_at = utcnow()
    description = render_approval(
        report,
        removal_reason=unblock_reason(req.ticket, "<approver>"),
        timeout_minutes=req.approval_timeout_minutes,
    )
    with journal.step("request_approval") as step:
        try:
            decision = pause_flow_run(
                wait_for_input=UnblockApproval.with_initial_data(
                    description=description, approve=False
                ),
                timeout=max(1, round(req.approval_timeout_minutes * 60)),
                poll_interval=approval_poll_seconds(),
                key=f"approve-unblock-{runtime.flow_run.run_count}",
            )
        except FlowPauseTimeout:
            _leave_expired_pause()
            step.note("no decision before the timeout")
            report.approval = ApprovalRecord(
                decision="expired", at=utcnow(), requested_at=requested_at
            )
            return None
        assert isinstance(decision, UnblockApproval)
        verdict = "approved" if decision.approve else "rejected"
        step.note(f"{verdict} by {decision.approver}")
    report.approval = ApprovalRecord(
        decision=verdict,
        approver=decision.approver,
        comment=decision.comment,
        at=utcnow(),
        requested_at=requested_at,
    )
    return decision


def _leave_expired_pause() -> None:
    """After a pause timeout the server refuses every further transition of the run (it would
    end as "paused and never resumed"); force it back to Running so the run can write its
    report, schedule the cleanup and end in the named ApprovalExpired state."""
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(
            runtime.flow_run.id, Running(message="Approval expired; finishing"), force=True
        )


def _dry_run(req: UnblockRequest, journal: Journal, user: User) -> State[Any]:
    """Read the list and say exactly what a real run would do."""
    with journal.step("find_restricted_entry") as step:
        entries = find_restricted_entry(req.tenant, addresses_to_check(user))
        entry = match_restricted_entry(user, entries)
        step.note(f"listed as {entry.sender_address}" if entry else "not listed")
    journal.report.entry = entry
    block = handover_block_name(journal.report.flow_run_id)
    plan: list[str] = []
    if req.handover == "secret-block":
        plan.append(
            f"Generate a {DEFAULT_LENGTH}-character random password and store it in the Secret "
            f"block {block}."
        )
    plan.append(
        f"Reset the password of {user.user_principal_name} (force change at next sign-in)"
        + (", to a random value that is discarded." if req.handover != "secret-block" else ".")
    )
    plan.append("Revoke the sign-in sessions.")
    if req.handover == "tap":
        plan.append(
            f"Issue a one-time Temporary Access Pass and store it in the Secret block {block}."
        )
    elif req.handover == "none":
        plan.append("Hand over nothing: the user resets the password through self-service.")
    if entry is None:
        plan.append("Finish as NotRestricted: the account is not on the Restricted users list.")
    else:
        plan += [
            f"Ask for approval (timeout {req.approval_timeout_minutes} minutes).",
            f"If approved: remove {entry.sender_address} from the Restricted users list with the "
            f"reason: {unblock_reason(req.ticket, '<approver>')}.",
            "Re-read the list to confirm the removal.",
            f"Schedule verify-unblock {req.verification_delay_minutes} minutes later.",
        ]
    if req.handover != "none":
        plan.append("Delete the hand-over Secret block at the follow-up check.")
    journal.report.planned = plan
    return journal.finish(Outcome.DRY_RUN)


def _schedule_verify(req: UnblockRequest, journal: Journal, address: str, *, mode: str) -> None:
    report = journal.report
    at = utcnow() + timedelta(minutes=req.verification_delay_minutes)
    check = VerifyRequest(
        account=address,
        tenant=req.tenant,
        ticket=req.ticket,
        source_flow_run_id=report.flow_run_id,
        mode="verify" if mode == "verify" else "cleanup",
        handover_block=report.handover_block,
        approved_at=report.approval.at if report.approval else None,
    )
    with journal.step("schedule_verification") as step:
        scheduled = schedule_verification(check, at, f"{mode}-{report.flow_run_name}")
        step.note(f"{scheduled.flow_run_name} ({mode}) at {at.isoformat(timespec='seconds')}")
    report.verification_run = scheduled.flow_run_name
    report.verification_at = at


def _schedule_cleanup(req: UnblockRequest, journal: Journal) -> None:
    """Paths that unblock nothing still get a follow-up that deletes the hand-over secret."""
    if journal.report.handover_block:
        _schedule_verify(req, journal, req.account, mode="cleanup")


def _cleanup_after_failure(req: UnblockRequest, journal: Journal) -> None:
    """After a failure: a secret whose password never took effect is deleted now; one that
    is in force stays for the hand-over and gets a cleanup run."""
    block = journal.report.handover_block
    if not block:
        return
    try:
        if journal.done("reset_password"):
            _schedule_cleanup(req, journal)
        else:
            with journal.step("delete_handover") as step:
                delete_handover(block)
                step.note("the password never took effect; secret deleted")
            journal.report.handover_block = None
    except (M365Error, PrefectException, ValueError, RuntimeError) as exc:
        journal.report.next_steps.append(
            f"Delete the Secret block {block} by hand once the credential is handed over "
            f"(automatic cleanup failed: {type(exc).__name__})."
        )


def _failed(req: UnblockRequest, journal: Journal, exc: BaseException) -> State[Any]:
    _cleanup_after_failure(req, journal)
    if isinstance(exc, UnblockLimitError):
        return journal.finish(
            Outcome.UNBLOCK_LIMIT_REACHED,
            detail=str(exc),
            next_steps=[
                "Open a case with Microsoft Support to remove the restriction; quote the ticket "
                "and the request id above.",
                "Do not run this playbook again for this account: it will hit the same limit.",
            ],
        )
    if isinstance(exc, NotFoundError) and journal.current == "resolve_account":
        return journal.finish(Outcome.ACCOUNT_NOT_FOUND, detail=str(exc))
    return journal.finish(
        Outcome.STEP_FAILED,
        detail=f"{journal.current or 'setup'} failed: {type(exc).__name__}: {exc}",
        next_steps=[
            "Read the failed step's detail. Permission and configuration errors need the tenant "
            "profile or the app registration fixed; then start a new run.",
            *(
                ["The password reset stands; hand the credential over before the cleanup run."]
                if journal.done("reset_password")
                else []
            ),
        ],
    )


def _handover_note(req: UnblockRequest, block: str | None) -> str:
    if req.handover == "secret-block":
        return f"password in Secret block {block}"
    if req.handover == "tap":
        return f"one-time Temporary Access Pass in Secret block {block}"
    return "none: the password was discarded; the user resets it through self-service"


def _not_unblocked_steps(req: UnblockRequest) -> list[str]:
    steps = ["The account stays on the Restricted users list; start a new run to try again."]
    if req.handover != "none":
        steps.append(
            "Hand the new credential over (never by e-mail) before the cleanup run deletes it."
        )
    return steps


def _journal(req: UnblockRequest, log: Any) -> Journal:
    report = RunReport(
        flow="unblock-user",
        flow_run_id=str(runtime.flow_run.id),
        flow_run_name=str(runtime.flow_run.name),
        account=req.account,
        tenant=req.tenant,
        ticket=req.ticket,
        requested_by=req.requested_by,
        dry_run=req.dry_run,
        handover=req.handover,
    )
    return Journal(report, artifact_key=ARTIFACT_KEY, render=render_unblock_report, log=log)
