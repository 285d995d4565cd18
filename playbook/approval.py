"""The approval form shown to the approver while an unblock-user run is paused."""

from __future__ import annotations

from typing import Annotated

from prefect.input import RunInput
from pydantic import Field

from .params import NO_NEWLINE

# No control characters, no line/paragraph separators, no bidi overrides. Written with \u
# escapes so the same pattern works in pydantic (Rust regex), the server (Python re) and the UI.
SINGLE_LINE_TEXT = r"^[^\u0000-\u001F\u007F-\u009F\u2028\u2029\u202A-\u202E\u2066-\u2069]*$"
APPROVER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 ._@-]{0,99}$"

# The two free fields of every approval form (see playbook.privileged too).
ApproverName = Annotated[
    str,
    Field(min_length=1, max_length=100, pattern=APPROVER_PATTERN, json_schema_extra=NO_NEWLINE),
]
OneLineComment = Annotated[
    str, Field(max_length=500, pattern=SINGLE_LINE_TEXT, json_schema_extra=NO_NEWLINE)
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
