"""The run's audit journal: step records, the final named state, and the report artifact.

Each documented step runs inside ``journal.step(name)``; the journal notes its start, end,
status and Microsoft request ids. ``journal.finish(outcome)`` renders the report from
``templates/``, publishes it as a Markdown artifact and returns the named Prefect state the
flow ends in. Nothing here ever sees a secret; details pass through the redaction filter anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from prefect.artifacts import create_markdown_artifact
from prefect.client.schemas.objects import State
from prefect.states import Cancelled, Completed, Failed

from m365.errors import M365Error

from . import redaction
from .outcomes import Outcome
from .report import RunReport, StepRecord, utcnow

MAX_DETAIL = 300


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
        self.current: str | None = None
        self.finished_state: State[Any] | None = None
        # Called once in finish(), after the outcome is set and before the report is rendered
        # (e.g. to send the outcome notification and record it as a step). Must not raise.
        self.on_finish: Callable[[RunReport], None] | None = None

    @contextmanager
    def step(self, name: str) -> Iterator[Step]:
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

    def skipped(self, name: str, why: str) -> None:
        now = utcnow()
        self.report.steps.append(
            StepRecord(name=name, status="skipped", started=now, finished=now, detail=why)
        )

    def done(self, name: str) -> bool:
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
        data = {"outcome": outcome.value, "account": report.account}
        state: State[Any]
        if outcome.kind == "completed":
            state = Completed(name=outcome.value, message=message, data=data)
        elif outcome.kind == "cancelled":
            state = Cancelled(name=outcome.value, message=message, data=data)
        else:
            state = Failed(name=outcome.value, message=message)
        self.finished_state = state
        return state
