"""unblock-user with the compromise evidence, clean-ups, guards, notifications and escalation:
the real flow, a real pause/resume, the emulator seeded with the demo tenant, and a webhook
receiver on 127.0.0.1."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devtools.localstack import wait_for
from emulator import Emulator
from playbook.rendering import md_escape as md

from ..evidence.helpers import SLACK_PATH, TEAMS_PATH, save_webhook_blocks
from ..evidence.receiver import WebhookReceiver
from ..handover_keys import PUBLIC_KEY, secret_value
from ..helpers.runs import artifact_markdown, effective, read_run, resume, wait_until_paused
from .helpers import TENANT, run_unblock, start_unblock

pytestmark = pytest.mark.usefixtures("tenant_block", "served")

ROB = "rob@contoso.com"
LEE = "admin.lee@contoso.com"
UNBLOCK_KEY = "paused-approve-unblock-1-description"
PRIVILEGED_KEY = "paused-approve-privileged-reset-1-description"
PRIVILEGED_PROFILE = "contoso-privileged"
SECOND = 1 / 60  # minutes


# -- fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def receiver_module() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as r:
        yield r


@pytest.fixture
def hooks(api_url: str, receiver_module: WebhookReceiver) -> dict[str, Any]:
    """Custom-webhook blocks on 127.0.0.1: approvers (Teams-shaped), leads (Slack-shaped)."""
    save_webhook_blocks(receiver_module.reset(), "flow-approvers", "flow-leads")
    return {
        "receiver": receiver_module,
        "approvers": "custom-webhook/flow-approvers",
        "leads": "flow-leads",
        "teams": TEAMS_PATH,
        "slack": SLACK_PATH,
    }


@pytest.fixture
def privileged_profile(emulator: Emulator, tenant_block: str) -> str:
    """A tenant profile on the emulator's 'privileged' app (Privileged Authentication Admin)."""
    from orchestration.blocks import M365Tenant

    M365Tenant.from_config(
        emulator.tenant_config(TENANT, app="privileged"), handover_public_key=PUBLIC_KEY
    ).save(PRIVILEGED_PROFILE, overwrite=True)
    return PRIVILEGED_PROFILE


def _input(run_id: Any, key: str) -> str:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        raw = client.read_flow_run_input(run_id, key)
    value = json.loads(raw)
    assert isinstance(value, str)
    return value


def _set_count(tenant: str, address: str, count: int) -> None:
    from prefect.variables import Variable

    from playbook.evidence import counter_variable_name

    Variable.set(counter_variable_name(tenant, address), {"count": count}, overwrite=True)


def _count(tenant: str, address: str) -> int:
    from prefect.variables import Variable

    from playbook.evidence import counter_variable_name, read_count

    return read_count(Variable.get(counter_variable_name(tenant, address), default=None))


def _rules(emulator: Emulator, upn: str) -> dict[str, bool]:
    return {r.name: r.enabled for r in emulator.state.user(TENANT, upn).inbox_rules}


def _history(run_id: Any) -> list[tuple[str, str]]:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return [(s.type.value, s.name or "") for s in client.read_flow_run_states(run_id)]


# -- 1. evidence in the approval; unticked clean-ups change nothing ---------------------------


def test_rob_approval_shows_the_risk_the_hidden_rule_and_the_forwarding(
    emulator: Emulator,
) -> None:
    _set_count(TENANT, ROB, 2)
    run = start_unblock(account=ROB, approval_timeout_minutes=2)
    paused = wait_until_paused(run.name)
    description = _input(paused.id, UNBLOCK_KEY)

    # the short description: title, then the risk line, the entry, the key findings
    lines = [line for line in description.splitlines() if line.strip()]
    assert lines[0] == "### Unblock rob\\@contoso\\.com?"
    assert lines[1].startswith(
        "**" + md("Risk: HIGH. 1 suspicious inbox rule (1 hidden, 1 external)")
    )
    assert md("mailbox forwarding to an external address") in lines[1]
    # the seed dates the restriction relative to the emulator's start
    assert re.match(
        r"\*\*Restricted\*\* since \d{4}\\-\d\d\\-\d\d \d\d\\:\d\d\\:\d\d UTC", lines[2]
    )
    assert (
        "**" + md('Hidden inbox rule "." forwards to invoices.rob.young@gmail.com') in description
    )
    assert md("Mailbox forwarding to invoices.rob.young@gmail.com (external), keeping a copy.") in (
        description
    )
    assert md("reset confirmed.") in description
    assert md("probably the last unblock before Microsoft's cap") in description
    assert md("Tick a clean-up or an eviction action below") in description
    # the details live in the full evidence artifact
    evidence = artifact_markdown(paused.id, "unblock-evidence")
    assert '**Rule 2: "\\."** \\(suspicious\\)' in evidence
    assert md("hidden rule (only visible with -IncludeHidden)") in evidence
    assert "deletes mail" in evidence
    assert '**Rule 1: "Newsletters"**' in evidence
    assert "- ForwardingSmtpAddress: " + md("invoices.rob.young@gmail.com (external)") in evidence
    assert "- DeliverToMailboxAndForward (keep a copy): yes" in evidence
    assert "probably the last one before Microsoft" in evidence
    password = secret_value(f"unblock-handover-{paused.id}")
    assert password and password not in description and password not in evidence

    resume(paused, decision="approve", approver="bob")
    state = run.state()
    assert state.is_completed() and state.name == "Unblocked", state.message
    # unticked: the rule and the forwarding are left as they were
    assert _rules(emulator, ROB) == {"Newsletters": True, ".": True}
    assert emulator.state.user(TENANT, ROB).forwarding_smtp_address
    assert effective(emulator, "exo.Disable-InboxRule") == []
    assert effective(emulator, "exo.Set-Mailbox") == []
    assert _count(TENANT, ROB) == 3
    report = artifact_markdown(paused.id, "unblock-user-report")
    assert "| Compromise checks | " + md("Risk: HIGH.") in report
    assert md("not ticked: 1 rule(s) left as they are") in report
    assert md("not ticked: the mailbox forwarding stays") in report


# -- 2. ticked clean-ups, notifications with the deep link ------------------------------------


def test_ticked_boxes_disable_the_rule_and_clear_forwarding_and_notify(
    emulator: Emulator, hooks: dict[str, Any]
) -> None:
    receiver: WebhookReceiver = hooks["receiver"]
    run = start_unblock(account=ROB, approval_timeout_minutes=2, notify=[hooks["approvers"]])
    paused = wait_until_paused(run.name)
    (needed,) = receiver.wait_for(hooks["teams"])
    card = needed.json()["attachments"][0]["content"]
    title, body = (b["text"] for b in card["body"])
    assert title == "Approval needed: unblock rob@contoso.com (INC-1001)"
    assert f"/flow-run/{paused.id}\n" in body  # the deep link to the paused run
    assert "Risk: HIGH." in body and "\\" not in body

    resume(
        paused,
        decision="approve",
        approver="bob",
        disable_suspicious_rules=True,
        clear_forwarding=True,
    )
    state = run.state()
    assert state.name == "Unblocked", state.message
    assert _rules(emulator, ROB) == {"Newsletters": True, ".": False}
    user = emulator.state.user(TENANT, ROB)
    assert user.forwarding_smtp_address is None and user.forwarding_address is None
    assert not user.deliver_to_mailbox_and_forward
    assert len(effective(emulator, "exo.Disable-InboxRule")) == 1
    assert len(effective(emulator, "exo.Set-Mailbox")) == 1
    # the clean-ups come before the unblock
    writes = [r.cmdlet for r in emulator.writes() if r.cmdlet and 200 <= r.status < 300]
    assert writes.index("Set-Mailbox") < writes.index("Remove-BlockedSenderAddress")
    report = artifact_markdown(paused.id, "unblock-user-report")
    assert md("disabled 1 rule(s)") in report and "forwarding cleared" in report
    assert md("notify_outcome") in report

    outcome = receiver.wait_for(hooks["teams"], count=2)[1]
    title, body = (b["text"] for b in outcome.json()["attachments"][0]["content"]["body"])
    assert title == "Unblocked: rob@contoso.com (INC-1001)"
    assert "decided by bob" in body
    password = secret_value(f"unblock-handover-{paused.id}")
    assert password
    for got in receiver.received:
        assert password not in got.text and "emulator-secret" not in got.text


# -- 3. the password guard --------------------------------------------------------------------


def test_unblock_refused_when_the_password_change_is_not_newer_than_the_block(
    emulator: Emulator,
) -> None:
    # The restriction is newer than any reset this run can make (e.g. the account was
    # restricted again, or the clocks disagree): the guard must refuse, not pause.
    entry = emulator.state.entry(TENANT, ROB)
    assert entry is not None
    emulator.state.restrict(
        TENANT, ROB, reason=entry.reason, created=datetime.now(UTC) + timedelta(days=1)
    )
    state = run_unblock(account=ROB, approval_timeout_minutes=2)
    assert state.is_failed() and state.name == "PasswordNotReset", state.message
    assert len(effective(emulator, "graph.update_user")) == 1  # the reset itself happened
    assert effective(emulator, "exo.Remove-BlockedSenderAddress") == []
    assert emulator.state.is_restricted(TENANT, ROB)
    flow_run_id = state.state_details.flow_run_id
    assert not any(t == "PAUSED" for t, _ in _history(flow_run_id))
    report = artifact_markdown(flow_run_id, "unblock-user-report")
    assert "Outcome: PasswordNotReset" in report
    assert "the last password change is not newer than the restriction" in report


# -- 4. escalation and expiry on the real flow ------------------------------------------------


def test_unanswered_approval_escalates_then_expires_in_its_named_state(
    emulator: Emulator, hooks: dict[str, Any]
) -> None:
    receiver: WebhookReceiver = hooks["receiver"]
    run = start_unblock(
        account=ROB,
        notify=[hooks["approvers"]],
        escalate_to=[hooks["leads"]],
        escalate_after_minutes=3 * SECOND,
        approval_timeout_minutes=9 * SECOND,
    )
    paused = wait_until_paused(run.name)
    (escalation,) = receiver.wait_for(hooks["slack"], timeout=30)
    text = escalation.json()["text"]
    assert text.startswith("*Escalation: approval still pending for rob@contoso.com (INC-1001)*")
    assert f"/flow-run/{paused.id}\n" in text
    state = run.state()
    assert state.name == "ApprovalExpired", state.message
    assert emulator.state.is_restricted(TENANT, ROB)
    assert effective(emulator, "exo.Remove-BlockedSenderAddress") == []
    history = _history(paused.id)
    assert ("RUNNING", "ApprovalExpired") in history
    # never the bare "paused and never resumed" failure: every failed state is the named one
    assert [name for kind, name in history if kind == "FAILED"] == ["ApprovalExpired"]
    titles = [
        r.json()["attachments"][0]["content"]["body"][0]["text"]
        for r in receiver.wait_for(hooks["teams"], count=2)
    ]
    assert titles == [
        "Approval needed: unblock rob@contoso.com (INC-1001)",
        "ApprovalExpired: rob@contoso.com (INC-1001)",
    ]
    report = artifact_markdown(paused.id, "unblock-user-report")
    assert "Outcome: ApprovalExpired" in report
    assert "| escalate | done |" in report and md("flow-leads: sent") in report
    assert len(receiver.on(hooks["slack"])) == 1


# -- 5. the privileged-account guardrail ------------------------------------------------------


def test_admin_is_not_reset_without_the_override(emulator: Emulator) -> None:
    state = run_unblock(account=LEE)
    assert state.is_failed() and state.name == "PrivilegedAccount", state.message
    assert "Global Administrator" in (state.message or "")
    assert emulator.writes() == []


def test_admin_reset_refused_when_the_second_approver_is_the_requester(
    emulator: Emulator,
) -> None:
    run = start_unblock(account=LEE, allow_privileged_reset=True, approval_timeout_minutes=2)
    paused = wait_until_paused(run.name)
    description = _input(paused.id, PRIVILEGED_KEY)
    assert "Second approval needed" in description and "Global Administrator" in description
    assert emulator.writes() == []  # nothing before the second approval
    resume(paused, decision="approve", approver="Ann")  # the requester is "ann"
    state = run.state()
    assert state.is_failed() and state.name == "PrivilegedAccount"
    assert "requester" in (state.message or "")
    assert emulator.writes() == []


def test_admin_reset_with_a_different_approver_then_the_unblock_approval(
    emulator: Emulator, privileged_profile: str
) -> None:
    run = start_unblock(
        account=LEE,
        tenant=privileged_profile,
        allow_privileged_reset=True,
        approval_timeout_minutes=2,
    )
    first = wait_until_paused(run.name)
    _input(first.id, PRIVILEGED_KEY)
    assert emulator.writes() == []
    resume(first, decision="approve", approver="carol", comment="confirmed with Lee by phone")

    # the reset is the first write, after the second approval; then the unblock approval
    wait_for(lambda: effective(emulator, "graph.update_user"), 60, "the reset")
    second = wait_for(
        lambda: (
            (r := read_run(run.name)) is not None
            and r.state.is_paused()
            and r.state.state_details.pause_key == "approve-unblock-1"
            and r
        ),
        60,
        "the unblock approval",
    )
    assert len(effective(emulator, "graph.update_user")) == 1
    description = _input(second.id, UNBLOCK_KEY)
    assert md("holds admin role: Global Administrator") in description
    assert md("Holds admin roles: Global Administrator.") in description
    resume(second, decision="reject", approver="carol")
    state = run.state()
    assert state.name == "Rejected"
    report = artifact_markdown(second.id, "unblock-user-report")
    assert "| Admin-account reset | approved by carol at " in report


def test_admin_reset_with_a_user_administrator_app_is_a_named_failure(
    emulator: Emulator,
) -> None:
    # The 'playbook' app is only User Administrator: Entra refuses to reset a Global Admin.
    run = start_unblock(account=LEE, allow_privileged_reset=True, approval_timeout_minutes=2)
    resume(wait_until_paused(run.name), decision="approve", approver="carol")
    state = run.state()
    assert state.is_failed() and state.name == "StepFailed"
    assert "reset_password failed: PermissionDeniedError" in (state.message or "")
    assert effective(emulator, "graph.update_user") == []
