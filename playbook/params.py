"""Flow parameter models. They become the run forms in the Prefect UI.

Every constraint that matters is expressible in JSON schema (``pattern``, ``maxLength``, ``enum``,
``minimum``/``maximum``), so the server rejects bad values when the run is created
(``enforce_parameter_schema: true``); pydantic applies the same constraints again in Python.
No field is ever a credential: flow parameters are stored in plain text.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

# Addresses: ASCII only (rejects unicode look-alikes), no quotes, slashes, braces or brackets
# (rejects OData/markdown/Jinja injection), one dot-separated domain with a TLD.
ADDRESS_PATTERN = (
    r"^[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,62}[A-Za-z0-9_%+-])?"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
PROFILE_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"
TICKET_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:#-]{0,63}$"
PERSON_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 ._@-]{0,99}$"
# A notification block: '<type>/<name>' (type one of the three webhook block types) or a bare
# block name; the same grammar as ``playbook.notify.parse_block_ref``.
NOTIFY_TARGET_PATTERN = (
    r"^(?:(?:slack-webhook|ms-teams-webhook|custom-webhook)/)?[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"
)
MAX_NOTIFY_TARGETS = 5
HANDOVER_BLOCK_PATTERN = (
    r"^unblock-handover-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
)

# Python's ``re`` (used by the server's JSON-schema validator) lets ``$`` match before a final
# newline; this extra clause makes the schema refuse any CR/LF outright.
NO_NEWLINE: JsonDict = {"not": {"pattern": "[\\r\\n]"}}

HandoverMode = Literal["secret-block", "tap", "none"]


def _no_double_dots(value: str) -> str:
    if ".." in value:
        raise ValueError("an address cannot contain '..'")
    return value.lower()


def _strip_trailing_space(value: str) -> str:
    if value != value.strip():
        raise ValueError("no leading or trailing spaces")
    return value


Account = Annotated[
    str,
    Field(
        min_length=3,
        max_length=254,
        pattern=ADDRESS_PATTERN,
        description="The affected account: its user principal name or any of its SMTP addresses "
        "(e.g. rob@contoso.com). ASCII only.",
        examples=["rob@contoso.com"],
        json_schema_extra=NO_NEWLINE,
    ),
    AfterValidator(_no_double_dots),
]
TenantName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=PROFILE_PATTERN,
        description="Name of the M365 Tenant block (tenant profile) to act on, e.g. 'contoso'.",
        examples=["contoso"],
        json_schema_extra=NO_NEWLINE,
    ),
]
Ticket = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=TICKET_PATTERN,
        description="Ticket or reference for the audit trail (letters, digits, . _ : # -), "
        "e.g. INC-12345. Written into the unblock reason.",
        examples=["INC-12345"],
        json_schema_extra=NO_NEWLINE,
    ),
]
Person = Annotated[
    str,
    Field(
        min_length=1,
        max_length=100,
        pattern=PERSON_PATTERN,
        description="Who asked for this (analyst name or e-mail; letters, digits, space . _ @ -).",
        json_schema_extra=NO_NEWLINE,
    ),
    AfterValidator(_strip_trailing_space),
]

NotifyTarget = Annotated[
    str,
    Field(
        min_length=1,
        max_length=80,
        pattern=NOTIFY_TARGET_PATTERN,
        description="A Prefect notification block: 'slack-webhook/NAME', 'ms-teams-webhook/NAME', "
        "'custom-webhook/NAME', or a bare block name.",
        examples=["slack-webhook/soc-approvers"],
        json_schema_extra=NO_NEWLINE,
    ),
]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


class UnblockRequest(_Params):
    """Unblock one account that Microsoft 365 restricted from sending e-mail."""

    account: Account
    tenant: TenantName
    ticket: Ticket
    requested_by: Person
    dry_run: bool = Field(
        default=False,
        description="Only read: report what would be done, change nothing (no reset, no removal, "
        "no secret).",
    )
    approval_timeout_minutes: float = Field(
        default=60,
        gt=0,
        le=1440,
        description="How long to wait for an approver before the run ends as ApprovalExpired.",
    )
    handover: HandoverMode = Field(
        default="secret-block",
        description="How the new credential reaches the user: 'secret-block' stores the new "
        "password in a Prefect Secret block named after the run; 'tap' issues a one-time "
        "Temporary Access Pass stored the same way; 'none' discards the password (the user "
        "resets it through self-service). Never by e-mail.",
    )
    verification_delay_minutes: float = Field(
        default=240,
        ge=0,
        le=1440,
        description="When to check that the account has left the Restricted users list "
        "(Microsoft: sending resumes within hours). The hand-over secret is deleted then.",
    )
    allow_privileged_reset: bool = Field(
        default=False,
        description="Override for accounts that hold an admin role: without it the playbook "
        "refuses to reset their password. Even with it, a second person (not the requester) "
        "must approve the reset before anything changes.",
    )
    notify: list[NotifyTarget] = Field(
        default=[],  # an explicit default, so the UI form sends [] rather than nothing
        max_length=MAX_NOTIFY_TARGETS,
        description="Notification blocks told when an approval is needed (with a link to the "
        "paused run) and how the run ended.",
    )
    escalate_to: list[NotifyTarget] = Field(
        default=[],  # an explicit default, so the UI form sends [] rather than nothing
        max_length=MAX_NOTIFY_TARGETS,
        description="Notification blocks of the second group, told when nobody has answered "
        "after escalate_after_minutes; the run keeps waiting until approval_timeout_minutes.",
    )
    escalate_after_minutes: float = Field(
        default=15,
        gt=0,
        le=1440,
        description="Escalate to escalate_to after this long without a decision (only if it is "
        "shorter than approval_timeout_minutes).",
    )


class VerifyRequest(_Params):
    """Follow-up check of an unblock, scheduled by unblock-user (or run by hand)."""

    account: Account = Field(description="The address that was on the Restricted users list.")
    tenant: TenantName
    ticket: Ticket
    source_flow_run_id: UUID | None = Field(
        default=None, description="The unblock-user run this check follows up."
    )
    mode: Literal["verify", "cleanup"] = Field(
        default="verify",
        description="'verify': check the list, then clean up; 'cleanup': only delete the hand-over "
        "secret (runs where nothing was unblocked).",
    )
    handover_block: str | None = Field(
        default=None,
        max_length=80,
        pattern=HANDOVER_BLOCK_PATTERN,
        description="Secret block holding the hand-over credential, deleted when the checks end.",
    )
    approved_at: datetime | None = Field(
        default=None, description="When the unblock was approved (start of the escalation clock)."
    )
    escalate_after_hours: float = Field(
        default=24,
        gt=0,
        le=168,
        description="Escalate when the account is still restricted this long after approval.",
    )
    recheck_minutes: float = Field(
        default=60, gt=0, le=1440, description="Delay before re-checking a still-listed account."
    )
    attempt: int = Field(default=1, ge=1, le=100, description="Which check this is (1 = first).")
    max_attempts: int = Field(
        default=30, ge=1, le=100, description="Escalate after this many checks at the latest."
    )


def is_valid_address(value: str) -> bool:
    """True if ``value`` would be accepted as an account address."""
    return bool(re.fullmatch(ADDRESS_PATTERN, value)) and ".." not in value
