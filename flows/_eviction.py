"""Evicting the attacker in unblock-user: the containment block, the evidence read before the
approval, and the eviction actions the approver ticked. Kept out of the flow module so its body
still reads like the runbook; the decisions are plain functions in ``playbook.eviction``.

Every evidence item can fail on its own: a task turns a definite refusal into "not checked" at
once, and a transient failure that outlived the task's retries is turned into one here. None of
them stops the run. Step notes carry counts only: sign-in IP addresses and message subjects are
personal data and appear in the evidence artifact alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from m365.errors import M365Error
from m365.models import RestrictedSender, User
from orchestration.journal import Journal
from playbook.decisions import addresses_to_check
from playbook.eviction import (
    REMOVALS,
    ActionKind,
    DelegatesReview,
    EvictionEvidence,
    EvictionPlan,
    EvictionRecord,
    GrantsReview,
    MethodsReview,
    PlannedAction,
    SentMailSummary,
    SignInSummary,
    not_checked,
    suspicion_window,
)
from playbook.evidence import tenant_domains
from playbook.params import UnblockRequest
from playbook.report import utcnow
from playbook.steps import Step
from tasks.block_sign_in import block_sign_in
from tasks.enable_sign_in import enable_sign_in
from tasks.remove_mailbox_delegates import remove_mailbox_delegates
from tasks.remove_sign_in_methods import remove_sign_in_methods
from tasks.review_mailbox_delegates import review_mailbox_delegates
from tasks.review_oauth_grants import review_oauth_grants
from tasks.review_sent_mail import review_sent_mail
from tasks.review_sign_in_methods import review_sign_in_methods
from tasks.review_sign_ins import review_sign_ins
from tasks.revoke_oauth_grants import revoke_oauth_grants
from tasks.revoke_sessions import revoke_sessions

R = TypeVar("R")

# How to undo the containment by hand, for the report of a run that leaves sign-in blocked.
REENABLE_HINT = (
    "Sign-in stays blocked (block_sign_in). Once the account is safe, re-enable it: Entra admin "
    "center > Users > the user > Edit properties > Settings > Account enabled, or Microsoft Graph "
    "PATCH /users/{id} with accountEnabled true."
)


def contain_sign_in(req: UnblockRequest, journal: Journal, user: User) -> None:
    """Block sign-in right after the reset. A refusal is recorded (the reset stands); the run
    goes on, and the approver sees sign-in still enabled in the evidence."""
    try:
        with journal.step(Step.BLOCK_SIGN_IN) as step:
            record = _named(block_sign_in(req.tenant, user.id), user)
            step.note(record.detail, *record.request_ids)
    except M365Error as exc:
        journal.report.next_steps.append(
            f"Sign-in was NOT blocked ({type(exc).__name__}); block it by hand if the account "
            "must stay contained. For an account holding an admin role the app needs the "
            "Privileged Authentication Administrator role (check-tenant lists it)."
        )
        return
    journal.report.sign_in_blocked = record.ok
    journal.report.evictions.append(record)
    if not record.ok:
        journal.report.next_steps.append(
            "Sign-in was NOT blocked: accountEnabled did not change; block it by hand if the "
            "account must stay contained."
        )


def gather_eviction_evidence(
    req: UnblockRequest, journal: Journal, user: User, entry: RestrictedSender | None
) -> EvictionEvidence:
    """Read-only: sign-in methods, sign-ins, app consents, mailbox delegates and sent mail over
    the suspicion window (``suspicion_window_days`` before the restriction, until now)."""
    window = suspicion_window(
        entry.created if entry is not None else None, utcnow(), req.suspicion_window_days
    )
    mailbox = user.user_principal_name
    domains = tenant_domains(addresses_to_check(user))
    sender = entry.sender_address if entry is not None else mailbox

    methods = _review(
        journal,
        Step.REVIEW_SIGN_IN_METHODS,
        lambda: review_sign_in_methods(req.tenant, user.id, window),
        lambda exc: MethodsReview(
            user_id=user.id, check=not_checked(exc, needs="UserAuthenticationMethod.Read.All")
        ),
        lambda r: f"{len(r.methods)} method(s), {len(r.flagged)} registered in the window",
    )
    sign_ins = _review(
        journal,
        Step.REVIEW_SIGN_INS,
        lambda: review_sign_ins(req.tenant, user.id, window),
        lambda exc: SignInSummary(
            user_id=user.id,
            check=not_checked(exc, needs="AuditLog.Read.All and Directory.Read.All"),
        ),
        lambda r: (
            f"{r.total} sign-in(s), {r.failures} failed, {len(r.new_countries)} new "
            f"country(ies), {len(r.new_ips)} new address(es)"
            if r.check.ok
            else str(r.check.reason)
        ),
    )
    grants = _review(
        journal,
        Step.REVIEW_OAUTH_GRANTS,
        lambda: review_oauth_grants(req.tenant, user.id, window),
        lambda exc: GrantsReview(
            user_id=user.id, check=not_checked(exc, needs="DelegatedPermissionGrant.ReadWrite.All")
        ),
        lambda r: f"{len(r.grants)} app consent(s), {len(r.flagged)} with mail scopes",
    )
    delegates = _review(
        journal,
        Step.REVIEW_MAILBOX_DELEGATES,
        lambda: review_mailbox_delegates(req.tenant, mailbox, domains),
        lambda exc: DelegatesReview(
            mailbox=mailbox, check=not_checked(exc, needs="the Exchange Administrator role")
        ),
        lambda r: f"{len(r.delegates)} delegate(s), {len(r.flagged)} outside the organisation",
    )
    sent_mail = _review(
        journal,
        Step.REVIEW_SENT_MAIL,
        lambda: review_sent_mail(req.tenant, sender, window, domains),
        lambda exc: SentMailSummary(
            mailbox=sender, check=not_checked(exc, needs="the Exchange Administrator role")
        ),
        lambda r: (
            f"{r.messages} message(s) to {r.distinct_recipients} recipient(s)"
            if r.check.ok
            else str(r.check.reason)
        ),
    )
    return EvictionEvidence(
        account=req.account,
        window=window,
        sign_in_enabled=user.account_enabled,
        methods=methods,
        sign_ins=sign_ins,
        grants=grants,
        delegates=delegates,
        sent_mail=sent_mail,
    )


def _review(
    journal: Journal,
    name: Step,
    read: Callable[[], R],
    unread: Callable[[M365Error], R],
    summary: Callable[[R], str],
) -> R:
    """One evidence item: its own step; a failure that outlived the retries is "not checked"."""
    try:
        with journal.step(name) as step:
            result = read()
            step.note(summary(result))
    except M365Error as exc:
        return unread(exc)
    return result


def evict(
    req: UnblockRequest,
    journal: Journal,
    user: User,
    plan: EvictionPlan,
    ticked: frozenset[ActionKind],
) -> tuple[EvictionRecord, ...]:
    """Carry out the ticked removals (each re-reads before and after, so a repeat changes
    nothing), then revoke the sessions again if any of them changed something. Returns the
    records of the removals that ran."""
    records: list[EvictionRecord] = []
    for kind in REMOVALS:
        action = plan.action(kind)
        if action is None:
            continue
        if kind not in ticked:
            journal.skipped(
                Step(kind.value), f"not ticked: {len(action.targets)} item(s) left as they are"
            )
            continue
        with journal.step(Step(kind.value)) as step:
            record = _labelled(_run_removal(req, user, action), action)
            step.note(record.detail, *record.request_ids)
        records.append(record)
    journal.report.evictions.extend(records)
    if any(r.changed for r in records):
        with journal.step(Step.REVOKE_SESSIONS_AFTER_EVICTION) as step:
            receipt = revoke_sessions(req.tenant, user.id)
            step.note("sign-in sessions revoked again", receipt.request_id)
    elif records:
        journal.skipped(
            Step.REVOKE_SESSIONS_AFTER_EVICTION,
            "nothing changed: the sessions were revoked earlier",
        )
    return tuple(records)


def restore_sign_in(
    req: UnblockRequest, journal: Journal, user: User, ticked: frozenset[ActionKind]
) -> EvictionRecord | None:
    """Re-enable sign-in only if this run blocked it and the approver ticked it."""
    report = journal.report
    if not report.sign_in_blocked:
        return None
    if ActionKind.ENABLE_SIGN_IN not in ticked:
        journal.skipped(Step.ENABLE_SIGN_IN, "not ticked: sign-in stays blocked")
        report.next_steps.append(REENABLE_HINT)
        return None
    try:
        with journal.step(Step.ENABLE_SIGN_IN) as step:
            record = _named(enable_sign_in(req.tenant, user.id), user)
            step.note(record.detail, *record.request_ids)
    except M365Error as exc:
        # A ticked action that could not be done: the run stops before the unblock.
        record = EvictionRecord(
            action=ActionKind.ENABLE_SIGN_IN,
            account=user.id,
            failed=((user.id, f"refused by Microsoft ({type(exc).__name__})"),),
            labels=((user.id, user.user_principal_name),),
        )
    report.evictions.append(record)
    report.sign_in_blocked = not record.ok
    if record.ok and report.user is not None:
        # The report's user block shows the account as the run leaves it.
        report.user = report.user.model_copy(update={"account_enabled": True})
    return record


def _run_removal(req: UnblockRequest, user: User, action: PlannedAction) -> EvictionRecord:
    if action.kind is ActionKind.REMOVE_SIGN_IN_METHODS:
        return remove_sign_in_methods(req.tenant, user.id, action.targets)
    if action.kind is ActionKind.REVOKE_OAUTH_GRANTS:
        return revoke_oauth_grants(req.tenant, user.id, action.targets)
    return remove_mailbox_delegates(req.tenant, user.user_principal_name, action.targets)


def _named(record: EvictionRecord, user: User) -> EvictionRecord:
    """The report names the account, not its object id."""
    return record.model_copy(update={"labels": ((user.id, user.user_principal_name),)})


def _labelled(record: EvictionRecord, action: PlannedAction) -> EvictionRecord:
    return record.model_copy(update={"labels": tuple((t.id, t.label) for t in action.targets)})
