"""The pre-reset approval form for accounts that hold an admin role (see playbook.evidence)."""

from __future__ import annotations

from prefect.input import RunInput
from pydantic import Field

from orchestration.approvals.forms import ApproverName, Decision, OneLineComment


class PrivilegedResetApproval(RunInput):
    """A second person agrees to reset the password of an account that holds an admin role."""

    decision: Decision = Field(
        title="Decision",
        description="approve: reset this admin account's password, revoke its sessions and "
        "continue with the procedure. reject: stop the run; nothing is changed.",
    )
    approver: ApproverName = Field(
        description="Your name or username. Must not be the person who requested the run.",
    )
    comment: OneLineComment = Field(
        default="", description="Why (one line, recorded in the audit report)."
    )

    @property
    def approved(self) -> bool:
        return self.decision == "approve"
