"""The new unblock-user parameters and approval fields: refused at run creation (the server's
JSON-schema validation of the real flow's schema) and again by pydantic."""

from __future__ import annotations

from typing import Any

import pytest
from prefect.utilities.callables import parameter_schema
from prefect.utilities.schema_tools.validation import validate
from pydantic import ValidationError

from orchestration.approvals.forms import UnblockApproval, unblock_form
from orchestration.approvals.notify import parse_block_ref
from playbook.evidence import CleanUp
from playbook.params import UnblockRequest

BASE: dict[str, Any] = {
    "account": "rob@contoso.com",
    "tenant": "contoso",
    "ticket": "INC-1",
    "requested_by": "ann",
}


def _schema() -> dict[str, Any]:
    from flows.unblock_user import unblock_user

    return parameter_schema(unblock_user).model_dump_for_openapi()


GOOD_TARGETS = ["slack-webhook/soc-approvers", "ms-teams-webhook/soc", "custom-webhook/x", "leads"]
BAD_TARGETS = [
    "https://hooks.slack.com/services/T/B/X",  # a URL (a credential) is never a parameter
    "secret/unblock-handover-1",  # another block type
    "Slack-webhook/soc",
    "soc\nleads",
    "soc-",
    "../soc",
    "",
    "a" * 81,
]


def test_notification_targets_accepted_and_parsed_alike() -> None:
    req = UnblockRequest.model_validate(
        {**BASE, "notify": GOOD_TARGETS, "escalate_to": ["leads"], "escalate_after_minutes": 5}
    )
    assert req.notify == GOOD_TARGETS and not req.allow_privileged_reset
    for target in GOOD_TARGETS:
        parse_block_ref(target)  # the runtime grammar agrees with the schema
    assert not validate({"request": {**BASE, "notify": GOOD_TARGETS}}, _schema())


@pytest.mark.parametrize("target", BAD_TARGETS)
@pytest.mark.parametrize("field", ["notify", "escalate_to"])
def test_bad_notification_targets_are_refused_at_run_creation(field: str, target: str) -> None:
    with pytest.raises(ValidationError):
        UnblockRequest.model_validate({**BASE, field: [target]})
    assert validate({"request": {**BASE, field: [target]}}, _schema(), raise_on_error=False)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("notify", ["a", "b", "c", "d", "e", "f"]),  # at most 5
        ("escalate_after_minutes", 0),
        ("escalate_after_minutes", 100_000),
        ("allow_privileged_reset", "maybe"),
    ],
)
def test_out_of_range_values_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        UnblockRequest.model_validate({**BASE, field: value})
    assert validate({"request": {**BASE, field: value}}, _schema(), raise_on_error=False)


def test_approval_form_offers_only_the_applicable_clean_ups_unticked() -> None:
    base = UnblockApproval.model_json_schema()
    assert "disable_suspicious_rules" not in base["properties"]
    assert "clear_forwarding" not in base["properties"]
    form = unblock_form([CleanUp.CLEAR_FORWARDING, CleanUp.DISABLE_SUSPICIOUS_RULES])
    schema = form.model_json_schema()
    for box in ("disable_suspicious_rules", "clear_forwarding"):
        assert schema["properties"][box] == {
            "default": False,
            "description": schema["properties"][box]["description"],
            "title": schema["properties"][box]["title"],
            "type": "boolean",
        }
    answer = form.model_validate({"decision": "approve", "approver": "bob"})
    assert answer.approved and answer.cleanups() == frozenset()
    ticked = form.model_validate(
        {"decision": "approve", "approver": "bob", "clear_forwarding": True}
    )
    assert ticked.cleanups() == {CleanUp.CLEAR_FORWARDING}
    # a box the run's form does not offer cannot be ticked
    with pytest.raises(ValidationError):
        unblock_form([CleanUp.CLEAR_FORWARDING]).model_validate(
            {"decision": "approve", "approver": "bob", "disable_suspicious_rules": True}
        )
