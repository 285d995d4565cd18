"""The pre-reset approval form for accounts that hold an admin role (see playbook.evidence)."""

from __future__ import annotations

from prefect.input import RunInput
from pydantic import Field

from .approval import ApproverName, OneLineComment


class PrivilegedResetApproval(RunInput):
    """A second person agrees to reset the password of an account that holds an admin role."""

    approve: bool = Field(
        default=False,
        description="Tick to let the playbook reset this admin account's password; leave "
        "unticked to stop the run before anything changes.",
    )
    approver: ApproverName = Field(
        description="Your name or username. Must not be the person who requested the run.",
    )
    comment: OneLineComment = Field(
        default="", description="Why (one line, recorded in the audit report)."
    )
