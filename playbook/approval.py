"""The approval form shown to the approver while an unblock-user run is paused."""

from __future__ import annotations

from typing import Annotated

from prefect.input import RunInput
from pydantic import AfterValidator, Field

from .params import (
    PERSON_NAME_MAX,
    PERSON_NAME_PATTERN,
    PERSON_NAME_RULE,
    Expected,
    canonical_name,
)

# No control characters, no line/paragraph separators, no bidi overrides. Written with \u
# escapes so the same pattern works in the server (Python re), pydantic (the same, through
# ``Expected``) and the UI (JavaScript).
SINGLE_LINE_TEXT = r"^[^\u0000-\u001F\u007F-\u009F\u2028\u2029\u202A-\u202E\u2066-\u2069]*$"

# The two free fields of every approval form (see playbook.privileged too). The approver's name
# follows the same rule as requested_by (one definition: playbook.params.PERSON_NAME_PATTERN).
ApproverName = Annotated[
    str,
    Expected(
        f"approver: your name such as Seán O\u2019Brien ({PERSON_NAME_RULE})",
        PERSON_NAME_PATTERN,
        max_length=PERSON_NAME_MAX,
    ),
    AfterValidator(canonical_name),
]
OneLineComment = Annotated[
    str,
    Expected(
        "comment: one line of text, at most 500 characters (no line breaks or control characters)",
        SINGLE_LINE_TEXT,
        min_length=0,
        max_length=500,
    ),
]


class UnblockApproval(RunInput):
    """Approve or reject removing the account from the Restricted users list."""

    approve: bool = Field(
        default=False,
        description="Tick to approve removing the account from the Restricted users list; "
        "leave unticked to reject.",
    )
    approver: ApproverName = Field(
        description="Your name or username (recorded in the audit report and in the unblock "
        "reason).",
    )
    comment: OneLineComment = Field(
        default="",
        description="Why you approve or reject (one line, recorded in the audit report).",
    )
    disable_suspicious_rules: bool = Field(
        default=False,
        description="With an approval: also disable the suspicious inbox rules listed above "
        "(forwarding, redirecting, deleting or hiding mail).",
    )
    clear_forwarding: bool = Field(
        default=False,
        description="With an approval: also remove the mailbox forwarding shown above.",
    )
