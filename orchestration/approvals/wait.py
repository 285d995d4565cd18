"""Wait for a human decision with one pause, an escalation, and a clean expiry.

Why one pause and an in-process timer (verified on Prefect 3.9.1, see docs/evidence.md):

- once a pause's deadline has passed, the server rejects *every* transition out of Paused and
  forces ``Failed("The flow was <state> and never resumed.")``, even when the flow catches
  ``FlowPauseTimeout`` and returns normally; and a second ``pause_flow_run`` after a timeout
  raises ``Pause("Cannot pause flows that are not currently running.")``. So neither "catch the
  timeout" nor "re-pause to escalate" can end in a clean state;
- a paused flow cannot start tasks (the server answers ``Paused("NotReady")``).

So the run pauses once with a deadline ``expire_after + grace``. A daemon thread in the flow
process sends the escalation at ``escalate_after`` (plain code, not a task), and at
``expire_after`` moves the still-paused run to ``Running("ApprovalExpired")`` itself: that
transition is accepted because the deadline has not passed, the pause returns, and the flow
finishes with its own named state and report. If the process dies, the server's deadline still
fails the run ``grace`` later.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.responses import OrchestrationResult
from prefect.context import FlowRunContext
from prefect.exceptions import FlowPauseTimeout, ObjectNotFound, PrefectHTTPStatusError
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from prefect.states import Running
from pydantic import ValidationError

from orchestration.approvals.notify import Delivery
from playbook.evidence import EscalationSchedule
from playbook.report import utcnow

EXPIRED_STATE_NAME = "ApprovalExpired"

T = TypeVar("T", bound=RunInput)


@dataclass
class WaitOutcome(Generic[T]):
    """What the wait produced: a decision, or ``expired``; and whether it escalated."""

    decision: T | None
    expired: bool = False
    # True only if the server's own pause deadline fired (the timer could not end the wait):
    # the run must then be forced out of the expired pause before it can finish cleanly.
    pause_timed_out: bool = False
    escalated_at: datetime | None = None
    escalation: list[Delivery] = field(default_factory=list)


def response_key(key: str) -> str:
    """The flow-run input key under which Prefect stores the approver's answer."""
    return f"paused-{key}-response"


def wait_for_decision(
    form: type[T],
    *,
    description: str,
    key: str,
    schedule: EscalationSchedule,
    poll_interval: int,
    on_escalate: Callable[[], Sequence[Delivery]] | None,
    log: logging.LoggerAdapter[Any],
) -> WaitOutcome[T]:
    """Pause once for ``form``; escalate and expire on ``schedule`` (see the module docstring).

    The form gets its description and nothing else: ``with_initial_data`` turns every value it
    is given into the field's default, and the decision must never have one."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        raise RuntimeError("wait_for_decision must run inside a flow run")
    run_id = context.flow_run.id
    outcome: WaitOutcome[T] = WaitOutcome(decision=None)
    answered = threading.Event()
    expired = threading.Event()

    def timer() -> None:
        start = time.monotonic()
        if schedule.escalate_after is not None and not answered.wait(
            schedule.escalate_after.total_seconds()
        ):
            outcome.escalated_at = utcnow()
            minutes = schedule.escalate_after.total_seconds() / 60
            log.warning("No decision after %.1f minutes: escalating", minutes)
            if on_escalate is not None:
                outcome.escalation = list(on_escalate())
        remaining = schedule.expire_after.total_seconds() - (time.monotonic() - start)
        if not answered.wait(max(0.0, remaining)) and _expire(run_id, key):
            expired.set()
            log.warning("No decision in time: the approval expired")

    thread = threading.Thread(target=timer, name=f"approval-timer-{key}", daemon=True)
    thread.start()
    try:
        decision = pause_flow_run(
            wait_for_input=form.with_initial_data(description=description),
            timeout=schedule.pause_timeout_seconds,
            poll_interval=poll_interval,
            key=key,
        )
    except ValidationError:
        # Resumed by the timer: there is no response to load, so the form's required fields
        # are missing. Anything else is a real error.
        if not expired.is_set():
            raise
        decision = None
    except FlowPauseTimeout:
        # The timer could not end the wait (API unreachable); the server fails the run anyway.
        log.error("The approval pause timed out before the flow could end it")
        outcome.expired = outcome.pause_timed_out = True
        return outcome
    finally:
        answered.set()
        thread.join(timeout=30)
    if expired.is_set() and not _has_response(run_id, key):
        outcome.expired = True
        return outcome
    assert isinstance(decision, form)
    outcome.decision = decision
    return outcome


def _expire(run_id: UUID, key: str) -> bool:
    """Move the run out of *this* pause; False if it was answered (or the API refused)."""
    try:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(run_id).state
            if (
                state is None
                or state.type != StateType.PAUSED
                or state.state_details.pause_key != key
            ):
                return False
            result: OrchestrationResult[Any] = client.set_flow_run_state(
                run_id,
                Running(
                    name=EXPIRED_STATE_NAME,
                    message="No decision before the approval timeout; ending the wait.",
                ),
            )
    except (PrefectHTTPStatusError, OSError) as exc:
        logging.getLogger(__name__).warning("could not end the approval wait: %s", exc)
        return False
    return result.status.value == "ACCEPT"


def _has_response(run_id: UUID, key: str) -> bool:
    try:
        with get_client(sync_client=True) as client:
            client.read_flow_run_input(run_id, response_key(key))
    except ObjectNotFound:
        return False
    except PrefectHTTPStatusError as exc:
        if exc.response.status_code == 404:
            return False
        raise
    return True
