"""What a run records for the audit trail (rendered by ``playbook.rendering``); never a secret."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal, Protocol

from pydantic import BaseModel, Field

from m365.models import RestrictedSender, User

from .eviction import EvictionRecord
from .outcomes import Outcome

StepStatus = Literal["done", "skipped", "failed", "would run"]


def utcnow() -> datetime:
    return datetime.now(UTC)


class StepRecord(BaseModel):
    """One documented step as it happened."""

    name: str
    status: StepStatus
    started: datetime | None = None
    finished: datetime | None = None
    detail: str = ""
    request_ids: list[str] = Field(default_factory=list)


class Answer(Protocol):
    """What every approval form says (``orchestration.approvals``)."""

    @property
    def approved(self) -> bool: ...
    @property
    def approver(self) -> str: ...
    @property
    def comment(self) -> str: ...


class ApprovalRecord(BaseModel):
    decision: Literal["approved", "rejected", "expired"]
    approver: str | None = None
    comment: str = ""
    at: datetime
    requested_at: datetime

    @classmethod
    def of(cls, answer: Answer | None, requested_at: datetime) -> ApprovalRecord:
        """The record of an answer; None is nobody deciding in time."""
        if answer is None:
            return cls(decision="expired", at=utcnow(), requested_at=requested_at)
        return cls(
            decision="approved" if answer.approved else "rejected",
            approver=answer.approver,
            comment=answer.comment,
            at=utcnow(),
            requested_at=requested_at,
        )


class RunReport(BaseModel):
    """Everything the audit report says about one run."""

    flow: str
    flow_run_id: str
    flow_run_name: str
    account: str
    tenant: str
    ticket: str
    requested_by: str
    dry_run: bool
    handover: str
    handover_block: str | None = None
    started: datetime = Field(default_factory=utcnow)
    finished: datetime | None = None
    user: User | None = None
    entry: RestrictedSender | None = None
    approval: ApprovalRecord | None = None
    # admin accounts: the second person's pre-reset decision (see playbook.evidence)
    privileged_approval: ApprovalRecord | None = None
    risk_summary: str = ""  # the compromise checks' one-line summary shown to the approver
    steps: list[StepRecord] = Field(default_factory=list)
    outcome: Outcome | None = None
    outcome_detail: str = ""
    next_steps: list[str] = Field(default_factory=list)
    planned: list[str] = Field(default_factory=list)  # dry run: what would have been done
    # block_sign_in: True while sign-in stays blocked by this run (only the approval re-enables it)
    sign_in_blocked: bool = False
    evictions: list[EvictionRecord] = Field(default_factory=list)  # the ticked eviction actions
    # flows._execution: the warm executor or a run process of its own (issue: warm path)
    executed_by: str = ""
    verification_run: str | None = None
    verification_at: datetime | None = None
