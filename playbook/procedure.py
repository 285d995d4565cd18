"""The unblock-user procedure as data: the steps a run that unblocks records, in the order it
records them, each with what the dry-run plan says about it.

``dry_run_plan`` reads the plan off this list, so the plan cannot tell a different story from
the flow: ``tests/playbook/test_procedure.py`` reads the steps the body of
``flows/unblock_user.py`` journals (from its source) and fails if they are not ``UNBLOCK_STEPS``,
in this order. A step the dry run already performs for real, or one a neighbouring line already
covers, says nothing (``_silent``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .decisions import unblock_reason
from .eviction import REMOVALS, ActionKind, EvictionPlan
from .params import HandoverMode, UnblockRequest
from .passwords import DEFAULT_LENGTH
from .steps import Step


@dataclass(frozen=True)
class PlanFacts:
    """What the dry run has read: everything the plan's lines depend on."""

    request: UnblockRequest
    account: str  # the user principal name
    roles: tuple[str, ...]  # admin roles the account holds
    handover_block: str  # the Secret block a real run would use
    restricted_as: str | None  # the Restricted users entry's address; None: not listed
    eviction: EvictionPlan | None  # what the evidence supports; None: not listed


Describe = Callable[[PlanFacts], list[str]]


def _silent(facts: PlanFacts) -> list[str]:
    """Done for real by the dry run, or said by a neighbouring line."""
    return []


def _restricted(describe: Describe) -> Describe:
    """A step only a listed account reaches."""

    def lines(facts: PlanFacts) -> list[str]:
        return describe(facts) if facts.restricted_as is not None else []

    return lines


def _privileged_approval(facts: PlanFacts) -> list[str]:
    if not facts.roles:
        return []
    return [
        f"The account holds {', '.join(facts.roles)}: "
        + (
            "ask a second person (not the requester) to approve the password reset first."
            if facts.request.allow_privileged_reset
            else "stop as PrivilegedAccount (no override); change nothing."
        )
    ]


def _prepare_handover(facts: PlanFacts) -> list[str]:
    if facts.request.handover != HandoverMode.SECRET_BLOCK:
        return []  # a TAP is sealed at hand_over_credential; "none" prepares nothing
    return [
        f"Generate a {DEFAULT_LENGTH}-character random password and store it, sealed to the "
        f"profile's hand-over key, in the Secret block {facts.handover_block}."
    ]


def _reset_password(facts: PlanFacts) -> list[str]:
    kept = facts.request.handover == HandoverMode.SECRET_BLOCK
    return [
        f"Reset the password of {facts.account} (force change at next sign-in)"
        + ("." if kept else ", to a random value that is discarded.")
    ]


def _revoke_sessions(facts: PlanFacts) -> list[str]:
    return ["Revoke the sign-in sessions."]


def _block_sign_in(facts: PlanFacts) -> list[str]:
    if not facts.request.block_sign_in:
        return []
    return [
        "Block sign-in (accountEnabled false) right after the reset; only the approval can "
        "re-enable it (a rejected or expired run leaves it blocked)."
    ]


def _hand_over_credential(facts: PlanFacts) -> list[str]:
    if facts.request.handover == HandoverMode.TAP:
        return [
            "Issue a one-time Temporary Access Pass and store it, sealed to the profile's "
            f"hand-over key, in the Secret block {facts.handover_block}."
        ]
    if facts.request.handover == HandoverMode.NONE:
        return ["Hand over nothing: the user resets the password through self-service."]
    return []  # the password is already sealed (prepare_handover)


def _find_restricted_entry(facts: PlanFacts) -> list[str]:
    if facts.restricted_as is not None:
        return []  # read by the dry run; the lines below say what follows
    return ["Finish as NotRestricted: the account is not on the Restricted users list."]


def _confirm_password_change(facts: PlanFacts) -> list[str]:
    return [
        "Re-read the user: refuse the unblock unless the password change is newer than the "
        "restriction."
    ]


def _review_mailbox(facts: PlanFacts) -> list[str]:
    return [
        "Review inbox rules (hidden ones included), mailbox forwarding and earlier unblocks for "
        "the approver."
    ]


def _review_eviction_evidence(facts: PlanFacts) -> list[str]:
    return [
        "Review sign-in methods, sign-ins, app consents, mailbox delegates and sent mail from "
        f"{facts.request.suspicion_window_days} day(s) before the restriction until now."
    ]


def _request_approval(facts: PlanFacts) -> list[str]:
    return [f"Ask for approval (timeout {facts.request.approval_timeout_minutes} minutes)."]


def _offer(kind: ActionKind) -> Describe:
    """The eviction action the approval form would offer, unticked, if the evidence supports it."""

    def lines(facts: PlanFacts) -> list[str]:
        action = facts.eviction.action(kind) if facts.eviction is not None else None
        if action is None:
            return []
        on = "; ".join(t.label for t in action.targets)
        return [
            f"Offer in the approval form, unticked: {action.title} ({on}). {action.what} "
            f"{action.undo} Re-read before and after; what is already gone counts as done."
        ]

    return lines


def _revoke_sessions_after_eviction(facts: PlanFacts) -> list[str]:
    plan = facts.eviction
    if plan is None or not any(a.kind in REMOVALS for a in plan.actions):
        return []
    return ["After an eviction action that changed something: revoke the sessions again."]


def _enable_sign_in(facts: PlanFacts) -> list[str]:
    lines = _offer(ActionKind.ENABLE_SIGN_IN)(facts)  # only when sign-in is already blocked
    if facts.request.block_sign_in:
        lines.append("Offer in the approval form, unticked: Re-enable sign-in.")
    return lines


def _unblock_sender(facts: PlanFacts) -> list[str]:
    return [
        f"If approved: remove {facts.restricted_as} from the Restricted users list with the "
        f"reason: {unblock_reason(facts.request.ticket, '<approver>')}."
    ]


def _confirm_unblock(facts: PlanFacts) -> list[str]:
    return ["Re-read the list to confirm the removal."]


def _schedule_verification(facts: PlanFacts) -> list[str]:
    return [f"Schedule verify-unblock {facts.request.verification_delay_minutes} minutes later."]


def _delete_handover(facts: PlanFacts) -> list[str]:
    if facts.request.handover == HandoverMode.NONE:
        return []
    return ["Delete the hand-over Secret block at the follow-up check."]


# The steps a run that unblocks records, in order (the approval's clean-ups and eviction actions
# as if all were ticked). Held to flows/unblock_user.py by tests/playbook/test_procedure.py.
UNBLOCK_STEPS: tuple[tuple[Step, Describe], ...] = (
    (Step.RESOLVE_ACCOUNT, _silent),  # read by the dry run
    (Step.REVIEW_ADMIN_ROLES, _silent),  # read by the dry run
    (Step.REQUEST_PRIVILEGED_APPROVAL, _privileged_approval),
    (Step.PREPARE_HANDOVER, _prepare_handover),
    (Step.RESET_PASSWORD, _reset_password),
    (Step.REVOKE_SESSIONS, _revoke_sessions),
    (Step.BLOCK_SIGN_IN, _block_sign_in),
    (Step.HAND_OVER_CREDENTIAL, _hand_over_credential),
    (Step.RECOVER_INTERRUPTED_RUNS, _silent),  # housekeeping of earlier crashed runs
    (Step.FIND_RESTRICTED_ENTRY, _find_restricted_entry),
    (Step.CONFIRM_PASSWORD_CHANGE, _restricted(_confirm_password_change)),
    (Step.REVIEW_INBOX_RULES, _restricted(_review_mailbox)),
    (Step.REVIEW_MAILBOX_FORWARDING, _silent),  # in the inbox rules line
    (Step.READ_UNBLOCK_COUNT, _silent),  # in the inbox rules line
    (Step.REVIEW_SIGN_IN_METHODS, _restricted(_review_eviction_evidence)),
    (Step.REVIEW_SIGN_INS, _silent),  # in the sign-in methods line
    (Step.REVIEW_OAUTH_GRANTS, _silent),  # in the sign-in methods line
    (Step.REVIEW_MAILBOX_DELEGATES, _silent),  # in the sign-in methods line
    (Step.REVIEW_SENT_MAIL, _silent),  # in the sign-in methods line
    (Step.REQUEST_APPROVAL, _restricted(_request_approval)),
    (Step.REMOVE_SIGN_IN_METHODS, _restricted(_offer(ActionKind.REMOVE_SIGN_IN_METHODS))),
    (Step.REVOKE_OAUTH_GRANTS, _restricted(_offer(ActionKind.REVOKE_OAUTH_GRANTS))),
    (Step.REMOVE_MAILBOX_DELEGATES, _restricted(_offer(ActionKind.REMOVE_MAILBOX_DELEGATES))),
    (Step.REVOKE_SESSIONS_AFTER_EVICTION, _restricted(_revoke_sessions_after_eviction)),
    # The clean-ups are offered only when the evidence finds something; the plan has never
    # listed them (the dry run reads no inbox rules).
    (Step.DISABLE_SUSPICIOUS_RULES, _silent),
    (Step.CLEAR_FORWARDING, _silent),
    (Step.ENABLE_SIGN_IN, _restricted(_enable_sign_in)),
    (Step.UNBLOCK_SENDER, _restricted(_unblock_sender)),
    (Step.RECORD_UNBLOCK, _silent),  # bookkeeping for the cap warning
    (Step.CONFIRM_UNBLOCK, _restricted(_confirm_unblock)),
    (Step.SCHEDULE_VERIFICATION, _restricted(_schedule_verification)),
)
# What the follow-up run (verify-unblock) does for this one.
FOLLOW_UP_STEPS: tuple[tuple[Step, Describe], ...] = ((Step.DELETE_HANDOVER, _delete_handover),)


def dry_run_plan(facts: PlanFacts) -> list[str]:
    """What a real run would do, one line per step that has something to say, in step order."""
    return [line for _, describe in (*UNBLOCK_STEPS, *FOLLOW_UP_STEPS) for line in describe(facts)]
