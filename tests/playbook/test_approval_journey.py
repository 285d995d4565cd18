"""The approver's journey on a real server: a decision that is never made by default, the short
description with its link to the full evidence, the password change in force, plain text in the
terminal, and clean logs when a run ends Rejected or ApprovalExpired under a runner."""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import Any
from uuid import UUID

import pytest

from devtools.localstack import wait_for
from emulator import Emulator
from playbook.evidence import when
from playbook.rendering import md_escape as md

from ..helpers.runs import artifact_markdown, effective, resume, run_input, wait_until_paused
from .helpers import TENANT, start_unblock

pytestmark = pytest.mark.usefixtures("tenant_block", "served")

ROB = "rob@contoso.com"
MEGAN = "megan@contoso.com"  # restricted, no inbox rules, no forwarding
LEE = "admin.lee@contoso.com"
UNBLOCK = "paused-approve-unblock-1"
PRIVILEGED = "paused-approve-privileged-reset-1"
# What an approver typed in the issue: a comment that reads like a yes, and no decision.
NO_DECISION = {"approver": "x", "comment": "looks fine, go ahead"}
LINK = re.compile(r"\[Open the full evidence\]\((?P<url>[^)]+)\)")


def _input(run_id: Any, key: str) -> Any:
    return run_input(run_id, key)


def _state(run_id: Any) -> Any:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(run_id).state


def _run(run_id: Any) -> Any:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(run_id)


def _artifact(artifact_id: UUID) -> Any:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterId

    with get_client(sync_client=True) as client:
        (art,) = client.read_artifacts(
            artifact_filter=ArtifactFilter(id=ArtifactFilterId(any_=[artifact_id]))
        )
    return art


def _refused(run: Any, run_input: dict[str, Any]) -> str:
    with pytest.raises(RuntimeError, match="Validation failed") as refused:
        resume(run, **run_input)
    return str(refused.value)


# -- 1. a decision that is never made by default ----------------------------------------------


def test_a_comment_without_a_decision_is_refused_and_unblocks_nothing(emulator: Emulator) -> None:
    run = start_unblock(account=ROB, approval_timeout_minutes=2)
    paused = wait_until_paused(run.name)
    assert "decision" in _refused(paused, NO_DECISION)
    time.sleep(2)  # two poll intervals: a wrongly accepted answer would have been acted on
    assert _state(paused.id).is_paused()
    assert emulator.state.is_restricted(TENANT, ROB)
    assert effective(emulator, "exo.Remove-BlockedSenderAddress") == []
    # the same run still takes a real decision afterwards
    resume(paused, decision="approve", **NO_DECISION)
    state = run.state()
    assert state.is_completed() and state.name == "Unblocked", state.message
    assert len(effective(emulator, "exo.Remove-BlockedSenderAddress")) == 1


def test_the_stored_form_requires_a_decision_and_offers_only_applicable_clean_ups(
    emulator: Emulator,
) -> None:
    rob = start_unblock(account=ROB, approval_timeout_minutes=2)
    megan = start_unblock(account=MEGAN, approval_timeout_minutes=2)
    rob_paused, megan_paused = wait_until_paused(rob.name), wait_until_paused(megan.name)
    for paused in (rob_paused, megan_paused):
        schema = _input(paused.id, f"{UNBLOCK}-schema")
        decision = schema["properties"]["decision"]
        assert "decision" in schema["required"] and "approver" in schema["required"]
        assert "default" not in decision and decision["enum"] == ["approve", "reject"]
        assert "approve:" in decision["description"] and "reject:" in decision["description"]
        assert schema["additionalProperties"] is False
    rob_form = _input(rob_paused.id, f"{UNBLOCK}-schema")["properties"]
    for box in ("disable_suspicious_rules", "clear_forwarding"):
        assert rob_form[box]["type"] == "boolean" and rob_form[box]["default"] is False
    megan_form = _input(megan_paused.id, f"{UNBLOCK}-schema")["properties"]
    assert set(megan_form) == {"decision", "approver", "comment"}
    # a clean-up this run does not offer cannot be ticked
    _refused(megan_paused, {"decision": "approve", "approver": "bob", "clear_forwarding": True})
    resume(rob_paused, decision="reject", approver="bob")
    resume(megan_paused, decision="reject", approver="bob")
    assert rob.state().name == "Rejected" and megan.state().name == "Rejected"
    assert effective(emulator, "exo.Remove-BlockedSenderAddress") == []


def test_the_privileged_form_requires_a_decision_too(emulator: Emulator) -> None:
    run = start_unblock(account=LEE, allow_privileged_reset=True, approval_timeout_minutes=2)
    paused = wait_until_paused(run.name)
    schema = _input(paused.id, f"{PRIVILEGED}-schema")
    assert "decision" in schema["required"] and "default" not in schema["properties"]["decision"]
    assert set(schema["properties"]) == {"decision", "approver", "comment"}
    assert "decision" in _refused(paused, NO_DECISION)
    time.sleep(2)
    assert _state(paused.id).is_paused()
    assert emulator.writes() == []  # nothing before a real second approval
    resume(paused, decision="reject", approver="carol")
    state = run.state()
    assert state.is_failed() and state.name == "PrivilegedAccount"
    assert "declined" in (state.message or "")
    assert emulator.writes() == []


# -- 2. a short description and the full evidence one link away -------------------------------


def test_the_evidence_artifact_exists_before_the_pause_and_the_description_links_it(
    emulator: Emulator,
) -> None:
    from prefect.settings import PREFECT_UI_URL

    run = start_unblock(account=ROB, approval_timeout_minutes=2)
    paused = wait_until_paused(run.name)
    description = _input(paused.id, f"{UNBLOCK}-description")
    match = LINK.search(description)
    assert match, description
    url = match.group("url")
    assert url.startswith(f"{PREFECT_UI_URL.value()}/v2/artifacts/artifact/")
    art = _artifact(UUID(url.rsplit("/", 1)[1]))
    assert art.key == "unblock-evidence" and art.type == "markdown"
    assert str(art.flow_run_id) == str(paused.id)
    assert art.created < paused.state.timestamp  # published before the run paused
    for section in ("## Key findings", "## Inbox rules", "## Mailbox forwarding", "## The user"):
        assert section in str(art.data)
    # the description is the short version: no tables, no step list, a dozen lines or so
    lines = [line for line in description.splitlines() if line.strip()]
    assert len(lines) <= 16 and not any(line.startswith("|") for line in lines)
    assert lines[-1].startswith("[Open the full evidence]")
    resume(paused, decision="reject", approver="bob")
    assert run.state().name == "Rejected"


# -- 7. one truth per fact: the password change in force --------------------------------------


def test_the_password_change_shown_is_the_one_in_force(emulator: Emulator) -> None:
    before = emulator.state.user(TENANT, ROB).last_password_change
    run = start_unblock(account=ROB, approval_timeout_minutes=2)
    paused = wait_until_paused(run.name)
    after = emulator.state.user(TENANT, ROB).last_password_change
    assert isinstance(after, datetime) and after > before
    in_force, stale = md(when(after)), md(when(before))
    description = _input(paused.id, f"{UNBLOCK}-description")
    evidence = artifact_markdown(paused.id, "unblock-evidence")
    assert in_force in description and stale not in description
    assert f"| Last password change | {in_force} |" in evidence and stale not in evidence
    resume(paused, decision="approve", approver="bob")
    assert run.state().name == "Unblocked"
    report = artifact_markdown(paused.id, "unblock-user-report")
    assert f"| Last password change | {in_force} |" in report and stale not in report


def test_a_run_that_is_not_restricted_reports_the_change_in_force(emulator: Emulator) -> None:
    before = emulator.state.user(TENANT, "alex@contoso.com").last_password_change
    state = start_unblock(account="alex@contoso.com").state()
    assert state.name == "NotRestricted"
    after = emulator.state.user(TENANT, "alex@contoso.com").last_password_change
    report = artifact_markdown(state.state_details.flow_run_id, "unblock-user-report")
    assert f"| Last password change | {md(when(after))} |" in report
    assert md(when(before)) not in report


# -- 8. plain text in the terminal ------------------------------------------------------------


def test_the_terminal_prints_plain_text(emulator: Emulator, capsys: Any) -> None:
    from devtools.demo import print_approval, print_report

    run = start_unblock(account=ROB, approval_timeout_minutes=2)
    paused = wait_until_paused(run.name)
    print_approval(paused.id)
    approval = capsys.readouterr().out
    assert "### Unblock rob@contoso.com?" in approval
    assert 'Hidden inbox rule "." forwards to invoices.rob.young@gmail.com (external)' in approval
    assert "Open the full evidence (http://" in approval
    resume(paused, decision="reject", approver="carol", comment="<script>alert(1)</script>")
    assert run.state().name == "Rejected"
    print_report(paused.id)
    report = capsys.readouterr().out
    assert "| Approver comment | <script>alert(1)</script> |" in report  # shown, not run
    for text in (approval, report):
        assert "\\" not in text and "&lt;" not in text and "&amp;" not in text
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", text)


# -- 4. no traceback on a human decision ------------------------------------------------------


def _run_deployment(**request: Any) -> Any:
    from prefect.deployments import run_deployment

    return run_deployment(
        "unblock-user/unblock-user",
        parameters={
            "request": {"tenant": TENANT, "ticket": "INC-1", "requested_by": "ann", **request}
        },
        timeout=0,
        as_subflow=False,
    )


def _logs(run_id: Any) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    with get_client(sync_client=True) as client:
        return list(
            client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
        )


def _final_logs(run_id: Any, state_name: str) -> list[Any]:
    """The run's logs once its process has finished: Prefect's "Finished in state" line has
    arrived, and then a few seconds more for anything the engine logs on its way out."""
    wait_for(
        lambda: any(f"Finished in state {state_name}" in r.message for r in _logs(run_id)),
        90,
        f"{run_id} to log its final state",
    )
    time.sleep(4)
    return _logs(run_id)


def test_rejection_and_expiry_under_the_runner_log_no_error(emulator: Emulator) -> None:
    rejected = _run_deployment(account=ROB, approval_timeout_minutes=2)
    expired = _run_deployment(account=MEGAN, approval_timeout_minutes=0.05)
    paused = wait_for(
        # By id: a served run is renamed after its account and ticket when it starts.
        lambda: (r := _run(rejected.id)).state is not None and r.state.is_paused() and r,
        120,
        "the served run to pause",
    )
    resume(paused, decision="reject", approver="carol", comment="not convinced")
    for run, name, kind in (
        (rejected, "Rejected", "CANCELLED"),
        (expired, "ApprovalExpired", "FAILED"),
    ):
        logs = _final_logs(run.id, name)
        state = _state(run.id)
        assert state.name == name and state.type.value == kind
        errors = [f"{r.level} {r.message[:300]}" for r in logs if r.level >= 40]
        assert errors == [], errors
        assert not any("Traceback" in r.message or "Unexpected result" in r.message for r in logs)
    assert emulator.state.is_restricted(TENANT, ROB)
    assert emulator.state.is_restricted(TENANT, "megan.bowen@contoso.onmicrosoft.com")
