"""playbook.recovery.decide: what happens to an interrupted run's hand-over secret (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from playbook.params import UnblockRequest
from playbook.recovery import InterruptedRun, RecoveryAction, decide

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
REQ = UnblockRequest(
    account="rob@contoso.com",
    tenant="contoso",
    ticket="INC-1",
    requested_by="ann",
    verification_delay_minutes=240,
)


def run(**kw) -> InterruptedRun:
    base = dict(
        flow_run_id="0" * 8 + "-0000-0000-0000-" + "0" * 12,
        flow_run_name="r",
        state_type="CRASHED",
        request=REQ,
        created=NOW - timedelta(minutes=10),
        handover_block="unblock-handover-x",
        followup_pending=False,
        unblocked=False,
    )
    base.update(kw)
    return InterruptedRun(**base)


@pytest.mark.parametrize("state", ["SCHEDULED", "PENDING", "RUNNING", "PAUSED", "COMPLETED"])
def test_active_or_completed_runs_are_never_touched(state):
    assert decide(run(state_type=state), superseded=True, now=NOW).action is RecoveryAction.NOTHING


@pytest.mark.parametrize("state", ["CRASHED", "FAILED", "CANCELLED"])
def test_superseded_secret_is_deleted(state):
    decision = decide(run(state_type=state), superseded=True, now=NOW)
    assert decision.action is RecoveryAction.DELETE


def test_secret_in_force_is_kept_until_the_normal_cleanup_time():
    decision = decide(run(), superseded=False, now=NOW)
    assert decision.action is RecoveryAction.SCHEDULE_CLEANUP
    assert decision.at == NOW - timedelta(minutes=10) + timedelta(minutes=240)


def test_cleanup_is_never_scheduled_in_the_past():
    old = run(created=NOW - timedelta(days=2))
    assert decide(old, superseded=False, now=NOW).at == NOW


def test_crash_after_the_removal_gets_the_verification():
    assert (
        decide(run(unblocked=True), superseded=False, now=NOW).action
        is RecoveryAction.SCHEDULE_VERIFY
    )


def test_a_pending_follow_up_already_owns_the_secret():
    decision = decide(run(followup_pending=True), superseded=False, now=NOW)
    assert decision.action is RecoveryAction.NOTHING


def test_no_secret_nothing_to_do():
    assert (
        decide(run(handover_block=None), superseded=True, now=NOW).action is RecoveryAction.NOTHING
    )
