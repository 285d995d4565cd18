"""The approval form shown to the approver while an unblock-user run is paused.

The decision is a required choice with no default: a submission without one is refused by the
server's schema validation and the run stays paused. ``with_initial_data`` is never given a
value for it (it would rebuild the field as an optional one with that value as its default).
The clean-up and eviction checkboxes exist only on the form of a run that has something to act
on (``unblock_form``), and are never ticked in advance.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Annotated, Any, Literal

from prefect.input import RunInput
from pydantic import AfterValidator, Field, create_model

from playbook.eviction import ActionKind, PlannedAction
from playbook.evidence import CleanUp
from playbook.params import (
    PERSON_NAME_MAX,
    PERSON_NAME_PATTERN,
    PERSON_NAME_RULE,
    Expected,
    canonical_name,
)
from playbook.rendering import form_text

# No control characters, no line/paragraph separators, no bidi overrides. Written with \u
# escapes so the same pattern works in the server (Python re), pydantic (the same, through
# ``Expected``) and the UI (JavaScript).
SINGLE_LINE_TEXT = r"^[^\u0000-\u001F\u007F-\u009F\u2028\u2029\u202A-\u202E\u2066-\u2069]*$"

# The two free fields of every approval form (see orchestration.approvals.privileged too). The
# approver's name follows the same rule as requested_by (one definition:
# playbook.params.PERSON_NAME_PATTERN).
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


# "approve" or "reject"; the form shows it as a choice with neither selected.
Decision = Literal["approve", "reject"]


class UnblockApproval(RunInput):
    """Approve or reject removing the account from the Restricted users list."""

    decision: Decision = Field(
        title="Decision",
        description="approve: remove the account from the Restricted users list (after the "
        "clean-ups and eviction actions ticked below, if any). reject: leave it restricted; "
        "the password reset stands.",
    )
    approver: ApproverName = Field(
        description="Your name or username (recorded in the audit report and in the unblock "
        "reason).",
    )
    comment: OneLineComment = Field(
        default="",
        description="Why you approve or reject (one line, recorded in the audit report).",
    )

    @property
    def approved(self) -> bool:
        return self.decision == "approve"

    def cleanups(self) -> frozenset[CleanUp]:
        """The clean-ups the approver ticked (only fields this run's form has can be ticked)."""
        return frozenset(c for c in CleanUp if getattr(self, c.value, False) is True)

    def evictions(self) -> frozenset[ActionKind]:
        """The eviction actions the approver ticked (only those this run's form offers)."""
        return frozenset(a for a in ActionKind if getattr(self, a.value, False) is True)


CLEANUP_FIELDS: dict[CleanUp, tuple[str, str]] = {
    CleanUp.DISABLE_SUSPICIOUS_RULES: (
        "Disable suspicious inbox rules",
        "With approve: first disable the suspicious inbox rules listed in the evidence "
        "(forwarding, redirecting, deleting or hiding mail).",
    ),
    CleanUp.CLEAR_FORWARDING: (
        "Clear mailbox forwarding",
        "With approve: first remove the mailbox forwarding shown in the evidence (no copy kept).",
    ),
}


def unblock_form(
    cleanups: Iterable[CleanUp], actions: Sequence[PlannedAction] = ()
) -> type[UnblockApproval]:
    """This run's form: the decision fields plus one unticked checkbox per offered clean-up and
    per eviction action that has something to act on."""
    offered = set(cleanups)
    fields: dict[str, Any] = {
        c.value: (
            bool,
            Field(default=False, title=CLEANUP_FIELDS[c][0], description=CLEANUP_FIELDS[c][1]),
        )
        for c in CleanUp  # in the enum's order, whatever the caller's
        if c in offered
    }
    by_kind = {a.kind: a for a in actions}
    for kind in ActionKind:
        if (action := by_kind.get(kind)) is not None and action.targets:
            fields[kind.value] = (
                bool,
                Field(default=False, title=action.title, description=eviction_field_text(action)),
            )
    return create_model(UnblockApproval.__name__, __base__=UnblockApproval, **fields)


def eviction_field_text(action: PlannedAction) -> str:
    """The checkbox's description: on what, what it does, its impact, whether it can be undone."""
    # Labels carry names the attacker chose (a device, an app): inert as plain chat text.
    on = "; ".join(form_text(t.label) for t in action.targets[:5])
    more = f" and {len(action.targets) - 5} more" if len(action.targets) > 5 else ""
    return (
        f"With approve, first: {action.what} On: {on}{more}. Impact: {action.impact} {action.undo}"
    )
