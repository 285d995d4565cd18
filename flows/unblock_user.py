"""unblock-user: Microsoft 365's "Unblock email" procedure for one account.

The body reads like the runbook:

1. resolve the account (stop if unknown, disabled or synced from on-premises); an account that
   holds an admin role is not reset without the override and a second person's approval;
2. reset the password immediately (new value sealed in the run's Secret block first), revoke the
   sign-in sessions, block sign-in if asked (``block_sign_in``), hand the credential over
   (Secret block, one-time TAP, or nothing);
3. look for the account on the Restricted users list;
4. not listed: done;
5. listed: prove the password change is newer than the restriction (stop if not), gather the
   compromise evidence (inbox rules, forwarding, admin roles, earlier unblocks, sign-in methods,
   sign-ins, app consents, mailbox delegates, sent mail) and pause for a human approval
   (notified, escalated, expiring in a named state);
6. approved: evict what the approver ticked (flagged sign-in methods, app consents, delegates;
   sessions revoked again), apply the ticked clean-ups, re-enable sign-in if ticked; stop if a
   ticked action could not be completed; else remove the entry and count the unblock;
7. confirm, and schedule the follow-up check (verify-unblock), which also deletes the secret.

Every path that created a hand-over secret schedules a follow-up that deletes it. The outcome
is sent to the ``notify`` blocks when the run ends.
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import Any

import httpx
from prefect import flow, runtime
from prefect.client.schemas.objects import State
from prefect.exceptions import PrefectException

from flows._approvals import (
    approval_poll_seconds,
    ask,
    notify_outcome,
)
from flows._eviction import (
    REENABLE_HINT,
    contain_sign_in,
    evict,
    gather_eviction_evidence,
    restore_sign_in,
)
from flows._execution import execution_path
from m365.errors import M365Error, NotFoundError, UnblockLimitError
from m365.models import RestrictedSender, User
from orchestration.approvals.forms import UnblockApproval, unblock_form
from orchestration.approvals.privileged import PrivilegedResetApproval
from orchestration.clients import UnknownTenantProfile
from orchestration.journal import Journal
from orchestration.logs import run_logger
from orchestration.naming import name_unblock_run
from playbook import redaction
from playbook.decisions import (
    account_stop,
    addresses_to_check,
    handover_block_name,
    match_restricted_entry,
    unblock_reason,
)
from playbook.eviction import EvictionPlan, eviction_plan
from playbook.evidence import (
    CleanUp,
    Evidence,
    ForwardingFinding,
    PasswordCheck,
    PrivilegedVerdict,
    RuleFinding,
    available_cleanups,
    cap_warning,
    password_reset_guard,
    privileged_guard,
    tenant_domains,
    when,
)
from playbook.outcomes import Outcome
from playbook.params import HandoverMode, UnblockRequest, VerifyRequest
from playbook.procedure import PlanFacts, dry_run_plan
from playbook.recovery import RecoveryAction
from playbook.rendering import (
    render_approval,
    render_evidence,
    render_privileged_approval,
    render_privileged_evidence,
    render_unblock_report,
)
from playbook.report import RunReport, utcnow
from playbook.steps import Step
from tasks.clear_forwarding import clear_forwarding
from tasks.confirm_unblock import confirm_unblock
from tasks.count_unblocks import read_unblock_count, record_unblock
from tasks.disable_suspicious_rules import disable_suspicious_rules
from tasks.find_restricted_entry import find_restricted_entry
from tasks.hand_over_credential import delete_handover, hand_over_credential, prepare_handover
from tasks.recover_interrupted_runs import recover_interrupted_runs
from tasks.reset_password import reset_password
from tasks.resolve_account import resolve_account
from tasks.review_admin_roles import review_admin_roles
from tasks.review_inbox_rules import review_inbox_rules
from tasks.review_mailbox_forwarding import review_mailbox_forwarding
from tasks.revoke_sessions import revoke_sessions
from tasks.schedule_verification import schedule_verification
from tasks.unblock_sender import unblock_sender

__all__ = [
    "ARTIFACT_KEY",
    "EVIDENCE_KEY",
    "PRIVILEGED_EVIDENCE_KEY",
    "approval_poll_seconds",
    "unblock_user",
]

ARTIFACT_KEY = "unblock-user-report"
# The full evidence behind each approval, linked from the form's short description.
EVIDENCE_KEY = "unblock-evidence"
PRIVILEGED_EVIDENCE_KEY = "unblock-evidence-privileged-reset"


@flow(
    name="unblock-user",
    flow_run_name=name_unblock_run,
    persist_result=False,
    validate_parameters=True,
)
def unblock_user(request: UnblockRequest) -> State[Any]:
    """Reset, check, approve and unblock one account restricted from sending e-mail."""
    redaction.install()
    logger = run_logger()
    journal = _journal(request, logger.info)
    journal.on_finish = lambda report: notify_outcome(request, journal, report)
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


def _recover_earlier_runs(req: UnblockRequest, journal: Journal) -> None:
    """An earlier run for this account that crashed may still hold a hand-over secret: this reset
    made its password stale, so delete it (or give it its follow-up). Never fatal."""
    with journal.step(Step.RECOVER_INTERRUPTED_RUNS) as step:
        try:
            records = recover_interrupted_runs(req.tenant, req.account, journal.report.flow_run_id)
        except (PrefectException, httpx.HTTPError) as exc:
            step.note(f"not checked ({type(exc).__name__}); see docs/security-model.md")
            return
        acted = [r for r in records if r.action != RecoveryAction.NOTHING]
        step.note(
            "; ".join(f"{r.flow_run_name}: {r.action.value}" for r in acted)
            or "no interrupted earlier run"
        )


def _procedure(req: UnblockRequest, journal: Journal) -> State[Any]:
    report = journal.report

    # 1. Resolve the account; an admin is not reset without the override and a second person.
    with journal.step(Step.RESOLVE_ACCOUNT) as step:
        user = resolve_account(req.tenant, req.account)
        step.note(f"{user.user_principal_name} ({user.id})")
    report.user = user
    if (stop := account_stop(user)) is not None:
        return journal.finish(stop)
    with journal.step(Step.REVIEW_ADMIN_ROLES) as step:
        roles = review_admin_roles(req.tenant, user.id).roles
        step.note(", ".join(roles) if roles else "none")
    if req.dry_run:
        return _dry_run(req, journal, user, roles)
    if roles and (refused := _privileged_gate(req, journal, roles)) is not None:
        return refused

    # 2. Reset the password immediately, revoke sessions, hand the credential over.
    block = handover_block_name(report.flow_run_id) if req.handover != HandoverMode.NONE else None
    if block:
        with journal.step(Step.PREPARE_HANDOVER) as step:
            step.note(prepare_handover(req.tenant, block, req.handover))
        if req.handover == HandoverMode.SECRET_BLOCK:
            report.handover_block = block
    with journal.step(Step.RESET_PASSWORD) as step:
        reset = reset_password(
            req.tenant,
            user.id,
            block if req.handover == HandoverMode.SECRET_BLOCK else None,
            user.last_password_change,
        )
        step.note(
            "force change at next sign-in"
            + ("; an earlier attempt had already applied it" if reset.already_applied else ""),
            reset.request_id,
        )
    with journal.step(Step.REVOKE_SESSIONS) as step:
        receipt = revoke_sessions(req.tenant, user.id)
        step.note("sign-in sessions revoked", receipt.request_id)
    if req.block_sign_in:
        contain_sign_in(req, journal, user)
    with journal.step(Step.HAND_OVER_CREDENTIAL) as step:
        handover = hand_over_credential(req.tenant, user.id, req.handover, block)
        report.handover_block = handover.handover_block
        step.note(_handover_note(req, handover.handover_block), handover.request_id)
    _recover_earlier_runs(req, journal)

    # 3. Look for the account on the Restricted users list.
    with journal.step(Step.FIND_RESTRICTED_ENTRY) as step:
        entries = find_restricted_entry(req.tenant, addresses_to_check(user))
        entry = match_restricted_entry(user, entries)
        step.note(f"listed as {entry.sender_address}" if entry else "not listed")

    # 4. Not restricted: done (the reset stands).
    if entry is None:
        _reread_account(req, journal, user)
        _schedule_cleanup(req, journal)
        return journal.finish(Outcome.NOT_RESTRICTED, next_steps=_sign_in_steps(journal))
    report.entry = entry

    # 5. The password change must be newer than the restriction; then the evidence and the
    #    human approval.
    with journal.step(Step.CONFIRM_PASSWORD_CHANGE) as step:
        # The user as it is now: the approval and the report show the change in force.
        report.user = user = resolve_account(req.tenant, user.id)
        password = password_reset_guard(user.last_password_change, entry.created)
        step.note(password.reason)
    if not password.ok:
        _schedule_cleanup(req, journal)
        return journal.finish(
            Outcome.PASSWORD_NOT_RESET,
            detail=f"Not unblocked: {password.reason} "
            f"(last change {password.last_password_change or 'unknown'}, "
            f"restricted since {password.restricted_since or 'unknown'}).",
            next_steps=[
                "Check the account's password in Entra ID; reset it by hand if needed, then start "
                "a new run.",
                *_not_unblocked_steps(req, journal),
            ],
        )
    evidence = _gather_evidence(req, journal, user, entry, roles, password)
    report.risk_summary = evidence.summary
    assert evidence.eviction is not None
    plan = eviction_plan(evidence.eviction, sign_in_blocked=report.sign_in_blocked)
    decision = _request_approval(req, journal, entry, evidence, plan)
    if decision is None:
        _schedule_cleanup(req, journal)
        return journal.finish(
            Outcome.APPROVAL_EXPIRED,
            detail="The password reset stands.",
            next_steps=_not_unblocked_steps(req, journal),
        )
    if not decision.approved:
        _schedule_cleanup(req, journal)
        return journal.finish(Outcome.REJECTED, next_steps=_not_unblocked_steps(req, journal))

    # 6. Evict and clean up as ticked, then remove the entry and count the unblock.
    evicted = evict(req, journal, user, plan, decision.evictions())
    _clean_up_mailbox(req, journal, user, evidence, decision)
    restored = restore_sign_in(req, journal, user, decision.evictions())
    if incomplete := [r for r in (*evicted, restored) if r is not None and not r.ok]:
        _schedule_cleanup(req, journal)
        return journal.finish(
            Outcome.EVICTION_INCOMPLETE,
            detail="Not unblocked: "
            + "; ".join(f"{r.title}: {r.detail}" for r in incomplete)
            + ". The approval was given for the account without these footholds.",
            next_steps=[
                "Remove what the eviction actions list as NOT done by hand (or fix the app's "
                "permission), then start a new run: the actions already done report as such.",
                *_not_unblocked_steps(req, journal),
            ],
        )
    with journal.step(Step.UNBLOCK_SENDER) as step:
        removed = unblock_sender(
            req.tenant, entry.sender_address, unblock_reason(req.ticket, decision.approver)
        )
        step.note(
            "already removed" if removed.already_removed else "Remove-BlockedSenderAddress done",
            removed.request_id,
        )
    _count_unblock(req, journal, entry.sender_address)

    # 7. Confirm, and schedule the follow-up check.
    with journal.step(Step.CONFIRM_UNBLOCK) as step:
        confirmed = confirm_unblock(req.tenant, entry.sender_address)
        step.note(
            "still visible (removal propagating)" if confirmed.still_listed else "gone from list"
        )
    _schedule_verify(req, journal, entry.sender_address, mode="verify")
    return journal.finish(Outcome.UNBLOCKED)


def _privileged_gate(
    req: UnblockRequest, journal: Journal, roles: tuple[str, ...]
) -> State[Any] | None:
    """The guardrail for admin accounts, before the first write: None lets the reset go ahead;
    otherwise the run's final state (nothing has been changed)."""
    report = journal.report
    held = ", ".join(roles)
    verdict = privileged_guard(
        roles, override=req.allow_privileged_reset, requested_by=req.requested_by
    )
    if verdict is PrivilegedVerdict.REFUSED:
        return journal.finish(
            Outcome.PRIVILEGED_ACCOUNT,
            detail=f"{req.account} holds {held}; the run was started without the "
            "privileged-account override (allow_privileged_reset).",
            next_steps=[
                "Confirm with the account owner and a second administrator, then start a new run "
                "with allow_privileged_reset; a person other than the requester must approve "
                "the reset.",
            ],
        )
    answer, report.privileged_approval = ask(
        req,
        journal,
        Step.REQUEST_PRIVILEGED_APPROVAL,
        PrivilegedResetApproval,
        stage="privileged-reset",
        evidence_key=PRIVILEGED_EVIDENCE_KEY,
        evidence=render_privileged_evidence(report, roles=roles),
        evidence_title=f"Evidence for the password reset of admin account {req.account}",
        describe=partial(render_privileged_approval, report, roles=roles),
        risk_summary=f"Admin roles: {held}.",
    )
    if answer is None:
        return journal.finish(
            Outcome.APPROVAL_EXPIRED,
            detail="Nobody approved the password reset of the admin account; nothing was changed.",
        )
    verdict = privileged_guard(
        roles,
        override=True,
        requested_by=req.requested_by,
        approver=answer.approver,
        approved=answer.approved,
    )
    if verdict is PrivilegedVerdict.SAME_PERSON:
        return journal.finish(
            Outcome.PRIVILEGED_ACCOUNT,
            detail=f"The second approval came from the requester ({answer.approver}); a "
            "different person must approve the reset of an admin account. Nothing was changed.",
        )
    if verdict is not PrivilegedVerdict.ALLOWED:
        return journal.finish(
            Outcome.PRIVILEGED_ACCOUNT,
            detail=f"{answer.approver} declined the password reset of the admin account. "
            "Nothing was changed.",
        )
    return None


def _reread_account(req: UnblockRequest, journal: Journal, user: User) -> None:
    """Read the user again after the reset, so the report shows the password change in force.
    The reset itself succeeded: a failed read is recorded, it does not fail the run."""
    try:
        with journal.step(Step.CONFIRM_PASSWORD_CHANGE) as step:
            journal.report.user = current = resolve_account(req.tenant, user.id)
            step.note(f"last password change {when(current.last_password_change)}")
    except M365Error:
        journal.report.next_steps.append(
            "The user could not be read again after the reset: the last password change shown "
            "is from before it."
        )


def _gather_evidence(
    req: UnblockRequest,
    journal: Journal,
    user: User,
    entry: RestrictedSender,
    roles: tuple[str, ...],
    password: PasswordCheck,
) -> Evidence:
    """Read-only compromise checks for the approver. A check that cannot be read is shown as
    such (and raises the risk), it does not stop the run."""
    mailbox = user.user_principal_name
    domains = tenant_domains(addresses_to_check(user))
    errors: list[str] = []
    rules: tuple[RuleFinding, ...] = ()
    forwarding: ForwardingFinding | None = None
    try:
        with journal.step(Step.REVIEW_INBOX_RULES) as step:
            rules = review_inbox_rules(req.tenant, mailbox, domains).rules
            step.note(
                f"{len(rules)} rule(s), {sum(r.suspicious for r in rules)} suspicious, "
                f"{sum(r.hidden for r in rules)} hidden"
            )
    except M365Error as exc:
        errors.append(f"Inbox rules: {type(exc).__name__}")
    try:
        with journal.step(Step.REVIEW_MAILBOX_FORWARDING) as step:
            forwarding = review_mailbox_forwarding(req.tenant, mailbox, domains)
            step.note(
                ("external" if forwarding.external else "internal") + " forwarding"
                if forwarding.forwards
                else "no forwarding"
            )
    except M365Error as exc:
        errors.append(f"Mailbox forwarding: {type(exc).__name__}")
    with journal.step(Step.READ_UNBLOCK_COUNT) as step:
        cap = cap_warning(read_unblock_count(req.tenant, entry.sender_address))
        step.note(f"{cap.previous_unblocks} earlier unblock(s) by this playbook")
    return Evidence(
        account=req.account,
        rules=rules,
        forwarding=forwarding,
        roles=roles,
        password=password,
        cap=cap,
        errors=tuple(errors),
        eviction=gather_eviction_evidence(req, journal, user, entry),
    )


def _request_approval(
    req: UnblockRequest,
    journal: Journal,
    entry: RestrictedSender,
    evidence: Evidence,
    plan: EvictionPlan,
) -> UnblockApproval | None:
    """Pause for the approver (notified, escalated); None when nobody decided in time."""
    report = journal.report
    decision, report.approval = ask(
        req,
        journal,
        Step.REQUEST_APPROVAL,
        unblock_form(available_cleanups(evidence), plan.actions),
        stage="unblock",
        evidence_key=EVIDENCE_KEY,
        evidence=render_evidence(report, evidence=evidence, plan=plan),
        evidence_title=f"Evidence for unblocking {req.account}",
        describe=partial(
            render_approval,
            report,
            evidence=evidence,
            removal_reason=unblock_reason(req.ticket, "<approver>"),
            plan=plan,
        ),
        risk_summary=evidence.summary,
    )
    return decision


def _clean_up_mailbox(
    req: UnblockRequest,
    journal: Journal,
    user: User,
    evidence: Evidence,
    decision: UnblockApproval,
) -> None:
    """The optional clean-ups, only as ticked; each re-reads first, so re-runs change nothing."""
    mailbox = user.user_principal_name
    ticked = decision.cleanups()
    to_disable = tuple(r.identity for r in evidence.rules_to_disable)
    if CleanUp.DISABLE_SUSPICIOUS_RULES in ticked and to_disable:
        with journal.step(Step.DISABLE_SUSPICIOUS_RULES) as step:
            done = disable_suspicious_rules(req.tenant, mailbox, to_disable)
            step.note(done.detail, *done.request_ids)
    elif to_disable:
        journal.skipped(
            Step.DISABLE_SUSPICIOUS_RULES, f"not ticked: {len(to_disable)} rule(s) left as they are"
        )
    forwards = evidence.forwarding is not None and evidence.forwarding.forwards
    if CleanUp.CLEAR_FORWARDING in ticked:
        with journal.step(Step.CLEAR_FORWARDING) as step:
            done = clear_forwarding(req.tenant, mailbox)
            step.note(done.detail, *done.request_ids)
    elif forwards:
        journal.skipped(Step.CLEAR_FORWARDING, "not ticked: the mailbox forwarding stays")


def _count_unblock(req: UnblockRequest, journal: Journal, address: str) -> None:
    """Record the unblock for the cap warning; the unblock itself already happened, so a
    failure here is a next step, not a failed run."""
    try:
        with journal.step(Step.RECORD_UNBLOCK) as step:
            step.note(f"unblock number {record_unblock(req.tenant, address)} by this playbook")
    except (PrefectException, httpx.HTTPError, ValueError) as exc:
        journal.report.next_steps.append(
            f"The unblock was not counted ({type(exc).__name__}); the cap warning of later runs "
            "will be one short."
        )


def _dry_run(
    req: UnblockRequest, journal: Journal, user: User, roles: tuple[str, ...]
) -> State[Any]:
    """Read the list and say exactly what a real run would do: the plan is read off the same
    step list this module's body runs (``playbook.procedure``)."""
    with journal.step(Step.FIND_RESTRICTED_ENTRY) as step:
        entries = find_restricted_entry(req.tenant, addresses_to_check(user))
        entry = match_restricted_entry(user, entries)
        step.note(f"listed as {entry.sender_address}" if entry else "not listed")
    journal.report.entry = entry
    eviction = (
        eviction_plan(gather_eviction_evidence(req, journal, user, entry), sign_in_blocked=False)
        if entry is not None
        else None
    )
    journal.report.planned = dry_run_plan(
        PlanFacts(
            request=req,
            account=user.user_principal_name,
            roles=roles,
            handover_block=handover_block_name(journal.report.flow_run_id),
            restricted_as=entry.sender_address if entry is not None else None,
            eviction=eviction,
        )
    )
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
    with journal.step(Step.SCHEDULE_VERIFICATION) as step:
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
        if journal.done(Step.RESET_PASSWORD):
            _schedule_cleanup(req, journal)
        else:
            with journal.step(Step.DELETE_HANDOVER) as step:
                delete_handover(block)
                step.note("the password never took effect; secret deleted")
            journal.report.handover_block = None
    except (M365Error, PrefectException, ValueError, RuntimeError) as exc:
        journal.report.next_steps.append(
            f"Delete the Secret block {block} by hand once the credential is handed over "
            f"(automatic cleanup failed: {type(exc).__name__})."
        )


def _failed(req: UnblockRequest, journal: Journal, exc: BaseException) -> State[Any]:
    failed_step = journal.current  # before the cleanup runs steps of its own
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
    if isinstance(exc, NotFoundError) and failed_step == Step.RESOLVE_ACCOUNT:
        return journal.finish(Outcome.ACCOUNT_NOT_FOUND, detail=str(exc))
    return journal.finish(
        Outcome.STEP_FAILED,
        detail=f"{failed_step or 'setup'} failed: {type(exc).__name__}: {exc}",
        next_steps=[
            "Read the failed step's detail. Permission and configuration errors need the tenant "
            "profile or the app registration fixed; then start a new run.",
            *(
                ["The password reset stands; hand the credential over before the cleanup run."]
                if journal.done(Step.RESET_PASSWORD)
                else []
            ),
            *_sign_in_steps(journal),
        ],
    )


def _handover_note(req: UnblockRequest, block: str | None) -> str:
    if req.handover == HandoverMode.SECRET_BLOCK:
        return f"password sealed in Secret block {block}"
    if req.handover == HandoverMode.TAP:
        return f"one-time Temporary Access Pass sealed in Secret block {block}"
    return "none: the password was discarded; the user resets it through self-service"


def _not_unblocked_steps(req: UnblockRequest, journal: Journal) -> list[str]:
    steps = ["The account stays on the Restricted users list; start a new run to try again."]
    if req.handover != HandoverMode.NONE:
        steps.append(
            "Hand the new credential over (never by e-mail) before the cleanup run deletes it."
        )
    return steps + _sign_in_steps(journal)


def _sign_in_steps(journal: Journal) -> list[str]:
    """How to re-enable sign-in, for a run that ends with it blocked (said once)."""
    report = journal.report
    return (
        [REENABLE_HINT] if report.sign_in_blocked and REENABLE_HINT not in report.next_steps else []
    )


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
        executed_by=execution_path(str(runtime.flow_run.id)),
    )
    return Journal(report, artifact_key=ARTIFACT_KEY, render=render_unblock_report, log=log)
