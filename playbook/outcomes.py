"""The named outcomes a run can end in. Each maps to a Prefect state type and a state name."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

StateKind = Literal["completed", "failed", "cancelled"]


class Outcome(StrEnum):
    """Final outcome of a run; the value is the Prefect state name shown in the UI."""

    UNBLOCKED = "Unblocked"
    NOT_RESTRICTED = "NotRestricted"
    DRY_RUN = "DryRun"
    ACCOUNT_NOT_FOUND = "AccountNotFound"
    ACCOUNT_DISABLED = "AccountDisabled"
    SYNCED_FROM_ON_PREMISES = "SyncedFromOnPremises"
    REJECTED = "Rejected"
    APPROVAL_EXPIRED = "ApprovalExpired"
    UNBLOCK_LIMIT_REACHED = "UnblockLimitReached"
    PRIVILEGED_ACCOUNT = "PrivilegedAccount"
    PASSWORD_NOT_RESET = "PasswordNotReset"  # noqa: S105 - a state name, not a password
    EVICTION_INCOMPLETE = "EvictionIncomplete"
    STEP_FAILED = "StepFailed"
    # verify-unblock
    VERIFIED = "Verified"
    RECHECK_SCHEDULED = "RecheckScheduled"
    STILL_RESTRICTED = "StillRestricted"
    CLEANED_UP = "CleanedUp"

    @property
    def kind(self) -> StateKind:
        return _KINDS.get(self, "failed")

    @property
    def summary(self) -> str:
        return _SUMMARIES[self]


_KINDS: dict[Outcome, StateKind] = {
    Outcome.UNBLOCKED: "completed",
    Outcome.NOT_RESTRICTED: "completed",
    Outcome.DRY_RUN: "completed",
    Outcome.REJECTED: "cancelled",
    Outcome.VERIFIED: "completed",
    Outcome.RECHECK_SCHEDULED: "completed",
    Outcome.CLEANED_UP: "completed",
}

_SUMMARIES: dict[Outcome, str] = {
    Outcome.UNBLOCKED: "The account was removed from the Restricted users list; a follow-up check "
    "is scheduled.",
    Outcome.NOT_RESTRICTED: "The account is not on the Restricted users list; nothing to unblock. "
    "The password was still reset.",
    Outcome.DRY_RUN: "Dry run: nothing was changed. The report lists what would have been done.",
    Outcome.ACCOUNT_NOT_FOUND: "No user with this address exists in the tenant. Check the spelling "
    "and the tenant profile.",
    Outcome.ACCOUNT_DISABLED: "The account is disabled in Entra ID. Nothing was changed; enable it "
    "first if it should send again.",
    Outcome.SYNCED_FROM_ON_PREMISES: "The account is synchronised from on-premises Active "
    "Directory: reset its password in AD (twice, per Microsoft), let it sync, then run this "
    "playbook again. Nothing was changed.",
    Outcome.REJECTED: "The approver rejected the unblock. The account stays on the Restricted "
    "users list; the password reset stands.",
    Outcome.APPROVAL_EXPIRED: "Nobody approved or rejected in time. The account stays on the "
    "Restricted users list. Start a new run to try again.",
    Outcome.UNBLOCK_LIMIT_REACHED: "Microsoft refused: this account reached the unblock limit. "
    "Contact Microsoft Support to remove the restriction.",
    Outcome.PRIVILEGED_ACCOUNT: "The account holds an admin role: its password was not reset "
    "and nothing was changed. Use the privileged-account override with a second approver who "
    "is not the requester, or handle the account by hand.",
    Outcome.PASSWORD_NOT_RESET: "The unblock was refused: the directory shows no password change "
    "newer than the restriction, so the attacker's password may still work. The account stays "
    "on the Restricted users list.",
    Outcome.EVICTION_INCOMPLETE: "An eviction action the approver ticked could not be "
    "completed, so the account was not unblocked: the approval was for the account without "
    "those footholds. The report lists what was and was not removed.",
    Outcome.STEP_FAILED: "A step failed; see the step table and the run logs.",
    Outcome.VERIFIED: "The account has left the Restricted users list.",
    Outcome.RECHECK_SCHEDULED: "The account is still listed (removal propagating); another check "
    "is scheduled.",
    Outcome.STILL_RESTRICTED: "The account is still on the Restricted users list long after the "
    "approved unblock. Escalate: see the report for what to do.",
    Outcome.CLEANED_UP: "Follow-up done: the hand-over secret was deleted.",
}
