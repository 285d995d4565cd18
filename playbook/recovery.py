"""Recovery after a crash: what becomes of an interrupted unblock-user run's hand-over secret.

A run can die at any point (worker host lost, flow process killed). The two points that matter:

- **after the password reset**: the new password is in force and lives only in the run's Secret
  block ``unblock-handover-<run id>``, sealed to the hand-over team's key (the clear value was in
  the dead process's memory only);
- **while the run waits for approval**: same, plus the entry is still on the Restricted list.

The run itself ends in a clear state without our help: ``Crashed`` when its process is killed and
a runner or worker outlives it, ``Failed`` ("paused and never resumed") when a paused run's
deadline passes, or ``Crashed`` via the heartbeat automation (``CRASH_AUTOMATION``) when the
whole host is gone. What Prefect cannot know is the secret: this module decides, for each
interrupted run that still has a hand-over block and no pending follow-up, one action:

``delete``
    a newer run for the same tenant and account has reset the password again, so the block holds
    a password that is no longer in force: delete it now, so it can never be handed over;
``schedule-verify``
    the entry was already removed (the crash hit after ``unblock_sender``): schedule the normal
    follow-up check, which verifies and then deletes the block;
``schedule-cleanup``
    otherwise the block's password may be the one in force and the user needs it: keep it and
    schedule a ``verify-unblock`` cleanup run at the time the run would have cleaned up
    (start + verification delay), never earlier than now.

Runs still active (Scheduled, Pending, Running, Paused, AwaitingRetry) are never touched. A
re-run of the same flow run in a new process cannot open the sealed password (the worker has no
private key): it generates a new one, replaces the sealed copy, and only then resets, so the block
never holds a password older than the one in force.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from .params import UnblockRequest

# Prefect state types of a run that will not continue on its own.
INTERRUPTED_STATE_TYPES = ("CRASHED", "FAILED", "CANCELLED")


class RecoveryAction(StrEnum):
    DELETE = "delete"
    SCHEDULE_VERIFY = "schedule-verify"
    SCHEDULE_CLEANUP = "schedule-cleanup"
    NOTHING = "nothing"


@dataclass(frozen=True)
class InterruptedRun:
    """What the recovery needs to know about one interrupted unblock-user run."""

    flow_run_id: str
    flow_run_name: str
    state_type: str
    request: UnblockRequest
    created: datetime
    handover_block: str | None  # the block, if it still exists
    followup_pending: bool  # a verify-unblock run for this block is scheduled or running
    unblocked: bool  # unblock_sender completed before the crash


@dataclass(frozen=True)
class Decision:
    action: RecoveryAction
    reason: str
    at: datetime | None = None  # when the follow-up runs (schedule-* only)


def decide(run: InterruptedRun, *, superseded: bool, now: datetime) -> Decision:
    """The one action for an interrupted run (see the module docstring)."""
    if run.state_type not in INTERRUPTED_STATE_TYPES:
        return Decision(RecoveryAction.NOTHING, f"run is {run.state_type}, not interrupted")
    if run.handover_block is None:
        return Decision(RecoveryAction.NOTHING, "no hand-over secret left")
    if superseded:
        return Decision(
            RecoveryAction.DELETE,
            "a newer run reset the password again; this secret is no longer in force",
        )
    if run.followup_pending:
        return Decision(RecoveryAction.NOTHING, "a follow-up run already owns the secret")
    at = max(now, run.created + timedelta(minutes=run.request.verification_delay_minutes))
    if run.unblocked:
        return Decision(
            RecoveryAction.SCHEDULE_VERIFY, "the entry was removed before the crash", at
        )
    return Decision(
        RecoveryAction.SCHEDULE_CLEANUP,
        "the secret may hold the password in force; kept until the cleanup run",
        at,
    )


def same_account(a: UnblockRequest, tenant: str, account: str) -> bool:
    return a.tenant == tenant and a.account.lower() == account.lower()
