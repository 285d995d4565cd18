"""The run's audit journal: step records, the final named state, and the report artifact.

Each documented step runs inside ``journal.step(name)``, named by a ``playbook.steps.Step``; the
journal notes its start, end, status and Microsoft request ids. ``journal.finish(outcome)``
renders the report from ``templates/``, publishes it as a Markdown artifact and returns the named
Prefect state the flow ends in. Nothing here ever sees a secret; details pass through the
redaction filter anyway.

A named outcome that is not a success (Rejected, ApprovalExpired, ...) is a *decision*, not a
crash, so it must not log a traceback. Two things in Prefect 3.9.1 made it do so when the run
executes under a runner or worker (``prefect.flow_engine.run_flow``, which returns the flow's
*result*, not its state):

- the engine's ``result()`` raises the exception held by a returned Failed/Cancelled state
  (``prefect.states.get_state_exception``), and a dict in ``State.data`` "cannot be resolved into
  an exception": ``TypeError: Unexpected result for failed state``. So the non-completed states
  carry no data; Prefect then raises a plain ``FailedRun``/``CancelledRun`` with the state's
  message;
- ``run_flow`` logs whatever that raises at ERROR, with the traceback, on the run's logger
  ("Engine execution exited with unexpected exception"), before the process exits cleanly.
  ``NamedOutcomeFilter`` drops exactly that record when its exception is the wrapper of a state
  this journal returned; every other record, and that record for anything else, is kept.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from prefect.artifacts import create_markdown_artifact
from prefect.client.schemas.objects import State
from prefect.exceptions import CancelledRun, FailedRun
from prefect.states import Cancelled, Completed, Failed

from m365.errors import M365Error
from playbook import redaction, steps
from playbook.outcomes import Outcome
from playbook.report import RunReport, StepRecord, utcnow

MAX_DETAIL = 300
# The record Prefect's run_flow logs when the flow's returned state is not a success.
ENGINE_EXIT_MESSAGE = "Engine execution exited with unexpected exception"
RUN_LOGGER = "prefect.flow_runs"


class NamedOutcomeFilter(logging.Filter):
    """Drops Prefect's "unexpected exception" traceback for a state a journal ended the run in
    on purpose (see the module docstring); keeps everything else."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._expected: set[tuple[type[BaseException], str]] = set()

    def expect(self, state: State[Any]) -> None:
        wrapper: type[BaseException] | None = (
            FailedRun if state.is_failed() else CancelledRun if state.is_cancelled() else None
        )
        if wrapper is not None and state.message:
            with self._lock:
                self._expected.add((wrapper, state.message))

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR or not record.exc_info:
            return True
        exc = record.exc_info[1]
        if exc is None or record.msg != ENGINE_EXIT_MESSAGE:
            return True
        with self._lock:
            return (type(exc), str(exc)) not in self._expected


_NAMED_OUTCOMES = NamedOutcomeFilter()


def quiet_named_outcomes() -> None:
    """Install the filter on the flow-run logger of this process (idempotent)."""
    logger = logging.getLogger(RUN_LOGGER)
    if _NAMED_OUTCOMES not in logger.filters:
        logger.addFilter(_NAMED_OUTCOMES)


class Step:
    """Handle on the step being run, to add a detail line and request ids."""

    def __init__(self, record: StepRecord) -> None:
        self.record = record

    def note(self, detail: str, *request_ids: str | None) -> None:
        self.record.detail = redaction.redact(detail)[:MAX_DETAIL]
        self.record.request_ids.extend(i for i in request_ids if i)


class Journal:
    def __init__(
        self,
        report: RunReport,
        *,
        artifact_key: str,
        render: Callable[[RunReport], str],
        log: Callable[[str], Any] | None = None,
    ) -> None:
        self.report = report
        self.artifact_key = artifact_key
        self._render = render
        self._log = log
        self.current: steps.Step | None = None
        self.finished_state: State[Any] | None = None
        # Called once in finish(), after the outcome is set and before the report is rendered
        # (e.g. to send the outcome notification and record it as a step). Must not raise.
        self.on_finish: Callable[[RunReport], None] | None = None
        quiet_named_outcomes()

    @contextmanager
    def step(self, name: steps.Step) -> Iterator[Step]:
        record = StepRecord(name=name, status="done", started=utcnow())
        self.report.steps.append(record)
        self.current = name
        try:
            yield Step(record)
        except BaseException as exc:
            record.status = "failed"
            record.detail = redaction.redact(f"{type(exc).__name__}: {exc}")[:MAX_DETAIL]
            if isinstance(exc, M365Error) and exc.request_id:
                record.request_ids.append(exc.request_id)
            raise
        finally:
            record.finished = utcnow()

    def skipped(self, name: steps.Step, why: str) -> None:
        now = utcnow()
        self.report.steps.append(
            StepRecord(name=name, status="skipped", started=now, finished=now, detail=why)
        )

    def done(self, name: steps.Step) -> bool:
        return any(s.name == name and s.status == "done" for s in self.report.steps)

    def finish(
        self, outcome: Outcome, *, detail: str = "", next_steps: list[str] | None = None
    ) -> State[Any]:
        """Publish the report and return the named final state."""
        report = self.report
        report.outcome = outcome
        report.outcome_detail = redaction.redact(detail)[:1000]
        if next_steps:
            report.next_steps.extend(next_steps)
        if self.on_finish is not None:
            hook, self.on_finish = self.on_finish, None
            hook(report)
        report.finished = utcnow()
        create_markdown_artifact(
            key=self.artifact_key,
            markdown=self._render(report),
            description=f"{report.flow} {outcome.value}",
        )
        message = outcome.summary if not detail else f"{outcome.summary} {report.outcome_detail}"
        if self._log is not None:
            self._log(f"Outcome {outcome.value}: {message}")
        state: State[Any]
        if outcome.kind == "completed":
            data = {"outcome": outcome.value, "account": report.account}
            state = Completed(name=outcome.value, message=message, data=data)
        elif outcome.kind == "cancelled":
            # No data: Prefect turns a Cancelled/Failed state's data into the exception the
            # engine raises, and a dict is not one (see the module docstring).
            state = Cancelled(name=outcome.value, message=message)
        else:
            state = Failed(name=outcome.value, message=message)
        if outcome is not Outcome.STEP_FAILED:  # a failed step keeps Prefect's ERROR record
            _NAMED_OUTCOMES.expect(state)
        self.finished_state = state
        return state
