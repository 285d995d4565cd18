"""unblock-user end to end: real Prefect server (harness), real pause/resume, the emulator."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from emulator import Emulator

from ..handover_keys import secret_value
from ..helpers.runs import artifact_markdown, effective, resume, wait_until_paused
from .helpers import TENANT, run_unblock, start_unblock

pytestmark = pytest.mark.usefixtures("tenant_block", "served")

ROB = "rob@contoso.com"


def _user(emulator: Emulator, upn: str) -> Any:
    return emulator.state.user(TENANT, upn)


def test_approved_unblock_resets_once_and_removes_once(emulator: Emulator) -> None:
    t0 = datetime.now(UTC)
    wall = time.monotonic()
    run = start_unblock(account=ROB, approval_timeout_minutes=2)
    paused = wait_until_paused(run.name)
    block = f"unblock-handover-{paused.id}"
    password = secret_value(block)
    assert password and _user(emulator, ROB).password_matches(password)
    resets = effective(emulator, "graph.update_user")
    assert len(resets) == 1
    reset_after = (resets[0].time - t0).total_seconds()
    resume(paused, decision="approve", approver="bob", comment="user called, verified by phone")
    state = run.state()
    elapsed = time.monotonic() - wall

    assert state.is_completed() and state.name == "Unblocked", state.message
    removals = effective(emulator, "exo.Remove-BlockedSenderAddress")
    assert len(removals) == 1
    assert removals[0].parameters.get("SenderAddress") == ROB
    assert "INC-1001" in str(removals[0].parameters.get("Reason"))
    assert "bob" in str(removals[0].parameters.get("Reason"))
    assert len(effective(emulator, "graph.revoke_sessions")) == 1
    assert _user(emulator, ROB).force_change_password_next_sign_in
    # the secret stays for the hand-over until the follow-up check
    assert secret_value(block) == password
    md = artifact_markdown(paused.id, "unblock-user-report")
    assert "Outcome: Unblocked" in md and "bob" in md and "ann" in md
    assert password not in md
    assert resets[0].request_id and resets[0].request_id.replace("-", "\\-") in md
    print(f"\n[measure] start -> password reset: {reset_after:.2f}s; approve path: {elapsed:.2f}s")


def test_rejected_keeps_the_block_and_schedules_cleanup(emulator: Emulator) -> None:
    run = start_unblock(account=ROB, approval_timeout_minutes=2)
    paused = wait_until_paused(run.name)
    resume(paused, decision="reject", approver="carol", comment="<script>alert(1)</script>")
    state = run.state()
    assert state.is_cancelled() and state.name == "Rejected"
    assert emulator.state.is_restricted(TENANT, ROB)
    assert effective(emulator, "exo.Remove-BlockedSenderAddress") == []
    md = artifact_markdown(paused.id, "unblock-user-report")
    assert "carol" in md and "<script>" not in md and "&lt;script&gt;" in md
    assert "cleanup\\-" in md  # a cleanup-only follow-up run deletes the secret later


def test_invalid_approval_input_is_refused_and_run_stays_paused(emulator: Emulator) -> None:
    run = start_unblock(account=ROB, approval_timeout_minutes=2)
    paused = wait_until_paused(run.name)
    for bad in (
        {"decision": "approve", "approver": "bob\r\nInjected: yes"},
        {"decision": "approve", "approver": "x" * 101},
        {"decision": "approve", "approver": "bob", "comment": "a\nb"},
        {"decision": "approve"},
        {"decision": True, "approver": "bob"},
        {"decision": "yes", "approver": "bob"},
        {"approve": True, "approver": "bob"},
    ):
        with pytest.raises(RuntimeError, match="Validation failed"):
            resume(paused, **bad)
    resume(paused, decision="reject", approver="dave")
    assert run.state().name == "Rejected"


def test_approval_timeout_ends_as_approval_expired(emulator: Emulator) -> None:
    run = start_unblock(account=ROB, approval_timeout_minutes=0.05)
    state = run.state()
    assert state.is_failed() and state.name == "ApprovalExpired"
    assert emulator.state.is_restricted(TENANT, ROB)
    assert len(effective(emulator, "graph.update_user")) == 1


def test_dry_run_only_reads(emulator: Emulator) -> None:
    state = run_unblock(account=ROB, dry_run=True)
    assert state.is_completed() and state.name == "DryRun"
    assert emulator.writes() == []
    flow_run_id = state.state_details.flow_run_id
    assert secret_value(f"unblock-handover-{flow_run_id}") is None
    md = artifact_markdown(flow_run_id, "unblock-user-report")
    assert "What a real run would do" in md
    assert "remove rob\\@contoso\\.com from the Restricted users list" in md


def test_not_restricted_account_completes_after_the_reset(emulator: Emulator) -> None:
    state = run_unblock(account="alex@contoso.com")
    assert state.is_completed() and state.name == "NotRestricted"
    assert len(effective(emulator, "graph.update_user")) == 1
    assert effective(emulator, "exo.Remove-BlockedSenderAddress") == []


@pytest.mark.parametrize(
    ("account", "outcome"),
    [
        ("nobody@contoso.com", "AccountNotFound"),
        ("adele@contoso.com", "SyncedFromOnPremises"),
        ("diego@contoso.com", "AccountDisabled"),
    ],
)
def test_stops_before_any_write(emulator: Emulator, account: str, outcome: str) -> None:
    state = run_unblock(account=account)
    assert state.is_failed() and state.name == outcome
    assert emulator.writes() == []
    md = artifact_markdown(state.state_details.flow_run_id, "unblock-user-report")
    assert f"Outcome: {outcome}" in md


def test_entry_listed_under_the_upn_is_found_from_the_mail_address(emulator: Emulator) -> None:
    run = start_unblock(account="megan@contoso.com", approval_timeout_minutes=2)
    resume(wait_until_paused(run.name), decision="approve", approver="bob")
    assert run.state().name == "Unblocked"
    (removal,) = effective(emulator, "exo.Remove-BlockedSenderAddress")
    assert removal.parameters.get("SenderAddress") == "megan.bowen@contoso.onmicrosoft.com"


def test_unblock_cap_is_a_clear_terminal_failure(emulator: Emulator) -> None:
    emulator.state.update_settings(TENANT, unblock_cap=0)
    run = start_unblock(account=ROB, approval_timeout_minutes=2)
    paused = wait_until_paused(run.name)
    resume(paused, decision="approve", approver="bob")
    state = run.state()
    assert state.is_failed() and state.name == "UnblockLimitReached"
    assert "Microsoft Support" in (state.message or "")
    assert emulator.state.is_restricted(TENANT, ROB)
    # not retried: one attempt only
    attempts = [r for r in emulator.requests if r.cmdlet == "Remove-BlockedSenderAddress"]
    assert len(attempts) == 1
    assert "Microsoft Support" in artifact_markdown(paused.id, "unblock-user-report")


def test_tap_handover_stores_a_working_pass(emulator: Emulator) -> None:
    run = start_unblock(account="alex@contoso.com", handover="tap")
    state = run.state()
    assert state.name == "NotRestricted"
    tap = secret_value(f"unblock-handover-{state.state_details.flow_run_id}")
    assert tap and emulator.state.tap_matches("alex@contoso.com", tap, TENANT)
    assert len(effective(emulator, "graph.update_user")) == 1


def test_handover_none_creates_no_secret(emulator: Emulator) -> None:
    state = run_unblock(account="alex@contoso.com", handover="none")
    assert state.name == "NotRestricted"
    assert secret_value(f"unblock-handover-{state.state_details.flow_run_id}") is None
    assert len(effective(emulator, "graph.update_user")) == 1
