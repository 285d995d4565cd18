"""Flow parameter models. They become the run forms in the Prefect UI.

Every constraint that matters is expressed in JSON schema, so the server refuses bad values when the
run is created (``enforce_parameter_schema: true``) and when an approval form is submitted; pydantic
applies the same constraints again in Python. No field is ever a credential: flow parameters are
stored in plain text.

Refusals are worded for people (see ``Expected``): "account: an e-mail address such as
rob@contoso.com ..." rather than the regular expression that encodes the rule.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    ValidationError,
    WithJsonSchema,
)
from pydantic.config import JsonDict
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

# Every pattern is matched by Python's ``re`` (the Prefect server's JSON-schema validator and the
# ``Expected`` check below) and is also valid JavaScript: non-ASCII characters are written as \u
# escapes, no look-around, no possessive or atomic groups.

# Addresses: ASCII only (rejects unicode look-alikes), no quotes, slashes, braces or brackets
# (rejects OData/markdown/Jinja injection), one dot-separated domain with a TLD.
ADDRESS_PATTERN = (
    r"^[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,62}[A-Za-z0-9_%+-])?"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
# A tenant profile is an M365 Tenant block: its name is a block slug. The one definition, used by
# the flow parameters, the block loader (orchestration.clients), the unblock counters
# (playbook.evidence) and the notification block references.
PROFILE_SLUG = r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?"
PROFILE_PATTERN = rf"^{PROFILE_SLUG}$"
TICKET_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:#-]{0,63}$"

# What people are called: letters of the Latin (with every accent, and Vietnamese), Greek and
# Cyrillic scripts, combining accents after a letter, digits, spaces, apostrophes (' and the
# typographic U+2019), hyphens, dots and @ (a username or an e-mail address is a name too).
# Nothing else: no control, format, bidi or zero-width characters, no markup or template
# characters (< > [ ] { } ( ) | \ ` * _ # $ % & ...). Right-to-left scripts are left out on
# purpose: their letters reorder the text around them in the Exchange Reason and the reports.
_NAME_LETTERS = (
    r"A-Za-z\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u024F\u1E00-\u1EFF"  # Latin, Vietnamese
    r"\u0386\u0388-\u038A\u038C\u038E-\u03A1\u03A3-\u03CE"  # Greek
    r"\u0400-\u0481\u048A-\u04FF"  # Cyrillic
)
_NAME_ACCENTS = r"\u0300-\u036F"  # combining diacritical marks (names typed decomposed, NFD)
PERSON_NAME_MAX = 100
PERSON_NAME_PATTERN = (
    rf"^[{_NAME_LETTERS}0-9]"
    rf"(?:[{_NAME_LETTERS}{_NAME_ACCENTS}0-9 '\u2019.@-]{{0,{PERSON_NAME_MAX - 2}}}"
    rf"[{_NAME_LETTERS}{_NAME_ACCENTS}0-9.])?$"
)
# A notification block: '<type>/<name>' (type one of the three webhook block types) or a bare
# block name; the same grammar as ``orchestration.approvals.notify.parse_block_ref``.
NOTIFY_TARGET_PATTERN = rf"^(?:(?:slack-webhook|ms-teams-webhook|custom-webhook)/)?{PROFILE_SLUG}$"
MAX_NOTIFY_TARGETS = 5
HANDOVER_BLOCK_PATTERN = (
    r"^unblock-handover-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
)

# Python's ``re`` (used by the server's JSON-schema validator) lets ``$`` match before a final
# newline: every single-line rule also refuses any CR/LF outright.
LINE_BREAK = r"[\r\n]"
NO_NEWLINE: JsonDict = {"not": {"pattern": LINE_BREAK}}

_M = TypeVar("_M", bound=BaseModel)


class HandoverMode(StrEnum):
    """How the new credential reaches the user: the flow parameter ``handover``."""

    SECRET_BLOCK = "secret-block"  # noqa: S105 (the mode's name)
    TAP = "tap"
    NONE = "none"


# The parameter's JSON schema stays the plain string enum it always was (pydantic would render a
# StrEnum as a ``$ref`` to a definition): the served schema, the UI form and stored runs see the
# same values; Python code gets the enum member.
HandoverParam = Annotated[
    HandoverMode, WithJsonSchema({"enum": [m.value for m in HandoverMode], "type": "string"})
]


@dataclass(frozen=True)
class Expected:
    """A text rule whose refusal says in words what was expected, on the server and in Python.

    Prefect validates run parameters (``create_flow_run`` of a deployment) and approval forms
    (``resume``) with ``jsonschema`` and shows its message; for a failed ``pattern`` that message
    is the raw regular expression, and no schema keyword (``title``, ``description``,
    ``errorMessage``) reaches it. jsonschema words a failed ``const`` as "'<const>' was expected",
    so the JSON schema holds every constraint under ``if`` and an ``else`` no value satisfies::

        {"if": {"minLength": .., "maxLength": .., "pattern": .., "not": {"pattern": forbid}},
         "else": {"const": what, "not": {"const": what}}}

    A value that breaks any constraint is refused with "'<what>' was expected" and nothing else
    (the value itself is not echoed back). pydantic checks the same constraints with the same
    engine (Python ``re``) and raises the same words.
    """

    what: str
    pattern: str
    min_length: int = 1
    max_length: int = 100
    forbid: str = LINE_BREAK
    # Also publish ``pattern`` next to ``if``: pydantic derives ``patternProperties`` from it when
    # the type is a dict key (SweepRequest.tenant_policies).
    pattern_in_schema: bool = False

    def accepts(self, value: str) -> bool:
        return (
            self.min_length <= len(value) <= self.max_length
            and re.search(self.forbid, value) is None
            and re.fullmatch(self.pattern, value) is not None
        )

    def check(self, value: str) -> str:
        if not self.accepts(value):
            raise PydanticCustomError("expected", "{what}", {"what": self.what})
        return value

    def json_schema(self) -> JsonDict:
        condition: JsonDict = {"maxLength": self.max_length, "pattern": self.pattern}
        if self.min_length:
            condition = {"minLength": self.min_length, **condition}
        condition["not"] = {"pattern": self.forbid}
        schema: JsonDict = {
            "if": condition,
            "else": {"const": self.what, "not": {"const": self.what}},
        }
        if self.pattern_in_schema:
            schema["pattern"] = self.pattern
        return schema

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema.update(self.json_schema())
        return json_schema


def _lower(value: str) -> str:
    return value.lower()


_PROFILE_NAME = re.compile(PROFILE_PATTERN)


def validate_profile_name(name: str) -> str:
    """Return ``name`` if it is a valid block slug, else raise ``ValueError``.

    Block names are slugs; anything else (path traversal, spaces, markup) is refused before any
    I/O.
    """
    if not _PROFILE_NAME.fullmatch(name):
        raise ValueError(
            "tenant profile must be a block name: lower-case letters, digits and dashes, "
            "at most 64 characters"
        )
    return name


def canonical_name(value: str) -> str:
    """One spelling per name: composed accents (NFC) and the plain apostrophe, so 'Seán' typed
    with a separate accent, or O\u2019Brien from a phone, compare equal to how others typed it
    (the second-approver check compares names)."""
    return unicodedata.normalize("NFC", value).replace("\u2019", "'")


Account = Annotated[
    str,
    Field(
        description="The affected account: an e-mail address, its user principal name or any of "
        "its SMTP addresses, e.g. rob@contoso.com (ASCII only).",
        examples=["rob@contoso.com"],
    ),
    Expected(
        "account: an e-mail address such as rob@contoso.com (the user principal name or one of "
        "its SMTP addresses, ASCII only)",
        ADDRESS_PATTERN,
        min_length=3,
        max_length=254,
        forbid=r"[\r\n]|\.\.",
    ),
    AfterValidator(_lower),
]
TenantName = Annotated[
    str,
    Field(
        description="The tenant profile (M365 Tenant block) to act on, e.g. 'contoso'.",
        examples=["contoso"],
    ),
    Expected(
        "tenant: the name of an M365 Tenant profile such as contoso (lower-case letters, digits "
        "and dashes)",
        PROFILE_PATTERN,
        max_length=64,
        pattern_in_schema=True,
    ),
]
Ticket = Annotated[
    str,
    Field(
        description="Ticket or reference for the audit trail, e.g. INC-12345: letters, digits "
        "and . _ : # - (no spaces). Written into the unblock reason.",
        examples=["INC-12345"],
    ),
    Expected(
        "ticket: a reference such as INC-12345 (letters, digits and . _ : # -, no spaces, at "
        "most 64 characters)",
        TICKET_PATTERN,
        max_length=64,
    ),
]
# Spelled out in words (no quote marks: jsonschema quotes the text it shows with repr()).
PERSON_NAME_RULE = (
    "letters with or without accents, digits, spaces, apostrophes, hyphens, dots and @, "
    "at most 100 characters"
)
Person = Annotated[
    str,
    Field(
        description="Who asked for this: a name or an e-mail address, e.g. Seán O'Brien "
        f"({PERSON_NAME_RULE}).",
        examples=["Seán O'Brien"],
    ),
    Expected(
        f"requested_by: a name or an e-mail address such as Seán O\u2019Brien ({PERSON_NAME_RULE})",
        PERSON_NAME_PATTERN,
        max_length=PERSON_NAME_MAX,
    ),
    AfterValidator(canonical_name),
]

NotifyTarget = Annotated[
    str,
    Field(
        description="A Prefect notification block: 'slack-webhook/NAME', 'ms-teams-webhook/NAME', "
        "'custom-webhook/NAME', or a bare block name.",
        examples=["slack-webhook/soc-approvers"],
    ),
    Expected(
        "a notification block such as slack-webhook/soc-approvers (slack-webhook/, "
        "ms-teams-webhook/ or custom-webhook/ and a block name, or a bare block name)",
        NOTIFY_TARGET_PATTERN,
        max_length=80,
    ),
]
HandoverBlockName = Annotated[
    str,
    Expected(
        "handover_block: unblock-handover- followed by the id of the unblock-user run",
        HANDOVER_BLOCK_PATTERN,
        max_length=80,
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
    block_sign_in: bool = Field(
        default=False,
        description="Containment: block sign-in (accountEnabled=false) right after the password "
        "reset. Only the approval re-enables it (a checkbox); a rejected or expired run leaves it "
        "blocked. An account holding an admin role needs the Privileged Authentication "
        "Administrator role on the app.",
    )
    suspicion_window_days: int = Field(
        default=7,
        ge=1,
        le=30,
        description="The evidence covers this many days before the restriction, until now: "
        "sign-in methods registered, sign-ins, app consents and sent mail in it are examined.",
    )
    approval_timeout_minutes: float = Field(
        default=60,
        gt=0,
        le=1440,
        description="How long to wait for an approver before the run ends as ApprovalExpired.",
    )
    handover: HandoverParam = Field(
        default=HandoverMode.SECRET_BLOCK,
        title="Handover",  # the title pydantic gave the Literal; it omits it for WithJsonSchema
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

    def run_name(self) -> str:
        """What the Runs list shows, e.g. 'unblock rob@contoso.com INC-42'."""
        return f"unblock {self.account} {self.ticket}" + (" (dry run)" if self.dry_run else "")


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
    handover_block: HandoverBlockName | None = Field(
        default=None,
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

    def run_name(self, current: str) -> str:
        """A follow-up the playbook scheduled (``source_flow_run_id`` set) keeps the name it was
        scheduled under, which the unblock report refers to (e.g. 'verify-unblock
        rob@contoso.com INC-42'); a check started by hand is named after its account and ticket."""
        if self.source_flow_run_id is not None and current:
            return current
        kind = "clean-up" if self.mode == "cleanup" else "verify"
        return f"{kind} {self.account} {self.ticket}"


def parsed_or_none(model: type[_M], value: Any) -> _M | None:
    """``value`` as ``model``, or None when it does not validate (a run's raw parameters)."""
    if isinstance(value, model):
        return value
    try:
        return model.model_validate(value)
    except ValidationError:
        return None
