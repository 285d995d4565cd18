"""One pause, an escalation from the in-process timer, and a clean ApprovalExpired (real pause)."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
from prefect.flow_runs import resume_flow_run
from prefect.states import Completed

from orchestration.approvals.forms import UnblockApproval
from orchestration.approvals.notify import (
    NotificationKind,
    render_notification,
    send,
)
from orchestration.approvals.wait import EXPIRED_STATE_NAME, wait_for_decision
from orchestration.logs import run_logger
from playbook.evidence import escalation_schedule

from .helpers import notification_context
from .receiver import WebhookReceiver

SECOND = 1 / 60  # minutes


@flow(persist_result=False)
def approval_only(escalate_to: str, escalate_s: float, expire_s: float) -> Any:
    schedule = escalation_schedule(expire_s * SECOND, escalate_s * SECOND, grace_seconds=30)
    ctx = notification_context(
        ticket="INC-9", flow_run_name="t", waited_minutes=round(escalate_s * SECOND, 2)
    )
    out = wait_for_decision(
        UnblockApproval,
        description="Approve?",
        key="approve-unblock-1",
        schedule=schedule,
        poll_interval=1,
        on_escalate=lambda: [
            send(escalate_to, render_notification(NotificationKind.ESCALATION, ctx))
        ],
        log=run_logger(),
    )
    verdict = "expired" if out.expired else ("approved" if out.decision.approved else "rejected")  # type: ignore[union-attr]
    return Completed(
        name="ApprovalExpired" if out.expired else "Decided",
        data={"verdict": verdict, "escalated": [d.delivered for d in out.escalation]},
    )


def _start(**params: Any) -> tuple[threading.Thread, dict[str, Any], str]:
    name = f"esc-{uuid.uuid4().hex[:8]}"
    box: dict[str, Any] = {}
    fl = approval_only.with_options(flow_run_name=name)
    th = threading.Thread(
        target=lambda: box.setdefault("state", fl(**params, return_state=True)), daemon=True
    )
    th.start()
    return th, box, name


def _paused_run_id(name: str, timeout: float = 60) -> uuid.UUID:
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            by_name = FlowRunFilter(name=FlowRunFilterName(any_=[name]))
            for run in client.read_flow_runs(flow_run_filter=by_name):
                if run.state is not None and run.state.is_paused():
                    return run.id
            time.sleep(0.2)
    raise TimeoutError(f"{name} never paused")


def _history(run_id: uuid.UUID) -> list[tuple[str, str]]:
    with get_client(sync_client=True) as client:
        return [(s.type.value, s.name or "") for s in client.read_flow_run_states(run_id)]


def test_unanswered_approval_escalates_then_expires_cleanly(
    notify_blocks: dict[str, str], receiver: WebhookReceiver
) -> None:
    th, box, name = _start(escalate_to=notify_blocks["leads"], escalate_s=2, expire_s=6)
    run_id = _paused_run_id(name)
    th.join(90)
    assert not th.is_alive()
    state = box["state"]
    assert state.is_completed() and state.name == "ApprovalExpired"
    assert state.result() == {"verdict": "expired", "escalated": [True]}
    (esc,) = receiver.wait_for(notify_blocks["slack_path"])
    assert esc.json()["text"].startswith("*Escalation: approval still pending for rob@contoso.com")
    history = _history(run_id)
    assert ("RUNNING", EXPIRED_STATE_NAME) in history
    assert not any(t == "FAILED" for t, _ in history)


def test_answer_after_the_escalation_is_honoured(
    notify_blocks: dict[str, str], receiver: WebhookReceiver
) -> None:
    th, box, name = _start(escalate_to=notify_blocks["leads"], escalate_s=1, expire_s=30)
    run_id = _paused_run_id(name)
    receiver.wait_for(notify_blocks["slack_path"])  # escalated, still paused
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(run_id).state.is_paused()  # type: ignore[union-attr]
    resume_flow_run(run_id, run_input={"decision": "approve", "approver": "bob"})
    th.join(60)
    state = box["state"]
    assert state.name == "Decided"
    assert state.result() == {"verdict": "approved", "escalated": [True]}
    assert len(receiver.on(notify_blocks["slack_path"])) == 1
