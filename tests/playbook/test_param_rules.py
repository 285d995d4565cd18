"""The parameter and approval-field rules, without a server: refusals in words, names of people,
one pattern that behaves the same in Python ``re``, pydantic, the server's JSON-schema validator and
JavaScript, run names, the tenant choice, and the Exchange Reason."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import unicodedata
from typing import Any

import pytest
from prefect.utilities.callables import parameter_schema
from prefect.utilities.schema_tools.validation import ValidationError as SchemaError
from prefect.utilities.schema_tools.validation import validate
from pydantic import BaseModel, ValidationError

from flows.deploy import CHOICE_NOTE, TENANT_FIELDS, choice_note, with_tenant_choices
from orchestration.approvals.forms import UnblockApproval
from orchestration.approvals.privileged import PrivilegedResetApproval
from playbook.decisions import REASON_MAX_LENGTH, unblock_reason
from playbook.params import (
    PERSON_NAME_PATTERN,
    Expected,
    HandoverMode,
    UnblockRequest,
    VerifyRequest,
)
from tests.security.hostile_inputs import CORPUS

GOOD = {
    "account": "rob@contoso.com",
    "tenant": "contoso",
    "ticket": "INC-42",
    "requested_by": "ann",
}
APPROVAL = {"decision": "approve", "approver": "bob"}
APPROVER_WORDS = "approver: your name such as Seán O\u2019Brien"

NAMES = [
    "Seán O'Brien",
    "Zoë Müller-Lüdenscheidt",
    "Nguyễn Văn A",
    unicodedata.normalize("NFD", "Nguyễn Văn A"),  # typed with separate accents
    "O\u2019Neill",  # the typographic apostrophe of phones and word processors
    "José María Aznar-López",
    "Łukasz Żółć",
    "Ægir Þórsson",
    "J. R. R. Tolkien",
    "ann",
    "ann@contoso.com",
    "Дмитрий Шостакович",
    "Γιώργος Παπαδόπουλος",
    "demo-analyst",
    "A",
]
NOT_NAMES = [
    "",
    " ann",
    "ann ",
    "'ann",
    "-ann",
    "\u0301ann",  # a lone accent first
    *[f"ann{c}bob" for c in '<>[]{}()|\\`*_#$%&!=;:,/"+~^?'],
    "{{ 7*7 }}",
    "{% if 1 %}",
    "ann\nbob",
    "ann\r",
    "ann\n",
    "ann\tbob",
    "ann\x00",
    "ann\x1b[31m",
    "ann\u200bbob",  # zero-width space
    "ann\u202ebob",  # bidi override
    "ann\u2066bob",
    "ann\u00a0bob",  # no-break space
    "\u05d0\u05d1",  # Hebrew (right-to-left)
    "\u0639\u0644\u064a",  # Arabic (right-to-left)
    "\uff41\uff4e\uff4e",  # full-width letters
    "a" * 101,
]


def _refusal(model: type[BaseModel], data: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return str(info.value)


def _unblock_schema() -> dict[str, Any]:
    from flows.unblock_user import unblock_user

    return parameter_schema(unblock_user).model_dump_for_openapi()


def _server_message(params: dict[str, Any], schema: dict[str, Any]) -> str:
    """What the server answers at run creation (its validator, raise_on_error, as in
    prefect/server/api/deployments.py create_flow_run_from_deployment)."""
    with pytest.raises(SchemaError) as info:
        validate(params, schema, raise_on_error=True)
    return str(info.value)


# -- refusals in words ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("account", "not-an-address", "account: an e-mail address such as rob@contoso.com"),
        ("account", "rob@contoso.com\n", "account: an e-mail address such as rob@contoso.com"),
        ("account", "rob..x@contoso.com", "account: an e-mail address such as rob@contoso.com"),
        ("tenant", "Contoso", "tenant: the name of an M365 Tenant profile such as contoso"),
        ("ticket", "INC-42\n", "ticket: a reference such as INC-12345"),
        ("ticket", "INC 42", "ticket: a reference such as INC-12345"),
        ("requested_by", "**ann**", "requested_by: a name or an e-mail address"),
    ],
)
def test_parameter_refusals_name_the_field_and_what_is_expected(
    field: str, value: str, words: str
) -> None:
    params = {**GOOD, field: value}
    server = _server_message({"request": params}, _unblock_schema())
    assert server.startswith(f"Validation failed for field 'request.{field}'. Failure reason: ")
    assert words in server and server.endswith(" was expected")
    assert "^" not in server and "[A-" not in server and "pattern" not in server
    assert words in _refusal(UnblockRequest, params)


def test_a_huge_value_is_not_echoed_back() -> None:
    server = _server_message({"request": {**GOOD, "ticket": "x" * 100_000}}, _unblock_schema())
    assert "ticket: a reference" in server and len(server) < 400


def test_a_missing_field_is_named() -> None:
    server = _server_message({"request": {}}, _unblock_schema())
    assert (
        server
        == "Validation failed for field 'request'. Failure reason: 'account' is a required property"
    )


@pytest.mark.parametrize(
    ("model", "field", "value", "words"),
    [
        (UnblockApproval, "approver", "<b>bob</b>", APPROVER_WORDS),
        (UnblockApproval, "comment", "ok\nApproved: yes", "comment: one line of text"),
        (PrivilegedResetApproval, "approver", "bob\n", APPROVER_WORDS),
    ],
)
def test_approval_refusals_name_the_field_and_what_is_expected(
    model: type[BaseModel], field: str, value: str, words: str
) -> None:
    data = {**APPROVAL, field: value}
    # the schema Prefect stores for the pause and validates the resume against
    server = _server_message(data, {"type": "object", **model.model_json_schema()})
    assert server.startswith(f"Validation failed for field '{field}'. Failure reason: ")
    assert words in server and "^" not in server
    assert words in _refusal(model, data)


def test_the_words_themselves_are_refused() -> None:
    """The schema's ``else`` names the rule as a constant; typing that text is still refused."""
    rule = UnblockRequest.model_json_schema()["properties"]["account"]["else"]["const"]
    assert validate({"request": {**GOOD, "account": rule}}, _unblock_schema())


def test_expected_is_the_whole_constraint() -> None:
    rule = Expected("x: digits", r"^[0-9]+$", min_length=2, max_length=4)
    assert [rule.accepts(v) for v in ("12", "1234", "1", "12345", "12a", "12\n")] == [
        True,
        True,
        False,
        False,
        False,
        False,
    ]
    schema = {"type": "object", "properties": {"x": {"type": "string", **rule.json_schema()}}}
    for value in ("12", "1234", "1", "12345", "12a", "12\n"):
        assert (not validate({"x": value}, schema)) is rule.accepts(value), value


# -- names of people: one pattern, the same everywhere -------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_names_people_have_are_accepted(name: str) -> None:
    request = UnblockRequest.model_validate({**GOOD, "requested_by": name})
    approval = UnblockApproval.model_validate({**APPROVAL, "approver": name})
    assert (
        request.requested_by
        == approval.approver
        == unicodedata.normalize("NFC", name).replace("\u2019", "'")
    )
    assert not validate({"request": {**GOOD, "requested_by": name}}, _unblock_schema())
    approval_schema = {"type": "object", **UnblockApproval.model_json_schema()}
    assert not validate({**APPROVAL, "approver": name}, approval_schema)


@pytest.mark.parametrize("name", NOT_NAMES, ids=lambda v: repr(v)[:24])
def test_control_bidi_markup_and_template_characters_are_refused(name: str) -> None:
    for model, data in (
        (UnblockRequest, {**GOOD, "requested_by": name}),
        (UnblockApproval, {**APPROVAL, "approver": name}),
        (PrivilegedResetApproval, {**APPROVAL, "approver": name}),
    ):
        with pytest.raises(ValidationError):
            model.model_validate(data)
    assert validate({"request": {**GOOD, "requested_by": name}}, _unblock_schema())


def test_the_person_name_pattern_is_defined_once() -> None:
    requested_by = UnblockRequest.model_json_schema()["properties"]["requested_by"]["if"]
    approver = UnblockApproval.model_json_schema()["properties"]["approver"]["if"]
    privileged = PrivilegedResetApproval.model_json_schema()["properties"]["approver"]["if"]
    assert requested_by["pattern"] == approver["pattern"] == privileged["pattern"]
    assert requested_by["pattern"] == PERSON_NAME_PATTERN


def _rules() -> dict[str, dict[str, Any]]:
    """Every rule of the request and the approval form, as the JSON schema publishes it."""
    props = UnblockRequest.model_json_schema()["properties"]
    rules = {name: props[name]["if"] for name in ("account", "tenant", "ticket", "requested_by")}
    rules["comment"] = UnblockApproval.model_json_schema()["properties"]["comment"]["if"]
    return rules


def _python_accepts(rule: dict[str, Any], value: str) -> bool:
    """JSON-schema semantics in Python ``re``: ``pattern`` is a search, not a full match."""
    return (
        rule.get("minLength", 0) <= len(value) <= rule["maxLength"]
        and re.search(rule["not"]["pattern"], value) is None
        and re.search(rule["pattern"], value) is not None
    )


def _samples() -> list[str]:
    values = [h.value for h in CORPUS if len(h.value) < 1_000]
    return [*NAMES, *NOT_NAMES, *values, "rob@contoso.com", "INC-42", "contoso", "ok, go"]


def test_python_re_pydantic_and_the_server_agree() -> None:
    for field, rule in _rules().items():
        for value in _samples():
            python = _python_accepts(rule, value)
            if field == "comment":
                model: type[BaseModel] = UnblockApproval
                data = {**APPROVAL, "comment": value}
                schema = {"type": "object", **UnblockApproval.model_json_schema()}
                server_data = data
            else:
                model, data = UnblockRequest, {**GOOD, field: value}
                schema, server_data = _unblock_schema(), {"request": data}
            try:
                model.model_validate(data)
                pydantic = True
            except ValidationError:
                pydantic = False
            server = not validate(server_data, schema)
            assert python == pydantic == server, (field, value)


@pytest.mark.skipif(shutil.which("node") is None, reason="node (JavaScript) is not installed")
def test_javascript_agrees() -> None:
    """The UI's language: every rule compiles as an ECMAScript RegExp (with and without the 'u'
    flag JSON-schema validators use) and accepts exactly what Python accepts."""
    rules, samples = _rules(), _samples()
    script = """
const {rules, samples} = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const out = {};
for (const [field, r] of Object.entries(rules)) {
  out[field] = {};
  for (const flags of ['', 'u']) {
    const pattern = new RegExp(r.pattern, flags), forbid = new RegExp(r.not.pattern, flags);
    out[field][flags] = samples.map(v =>
      [...v].length >= (r.minLength || 0) && [...v].length <= r.maxLength &&
      !forbid.test(v) && pattern.test(v));
  }
}
console.log(JSON.stringify(out));
"""
    done = subprocess.run(
        ["node", "-e", script],
        input=json.dumps({"rules": rules, "samples": samples}),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    js = json.loads(done.stdout)
    for field, rule in rules.items():
        python = [_python_accepts(rule, v) for v in samples]
        for flags in ("", "u"):
            diff = [v for v, p, j in zip(samples, python, js[field][flags], strict=True) if p != j]
            assert not diff, (field, flags, diff)


# -- run names ---------------------------------------------------------------------------------


def test_run_names_say_the_account_and_the_ticket() -> None:
    request = UnblockRequest.model_validate({**GOOD, "account": "Rob@Contoso.com"})
    assert request.run_name() == "unblock rob@contoso.com INC-42"
    dry = UnblockRequest.model_validate({**GOOD, "dry_run": True})
    assert dry.run_name() == "unblock rob@contoso.com INC-42 (dry run)"


def test_a_scheduled_follow_up_keeps_its_name_a_manual_check_gets_one() -> None:
    base = {"account": "rob@contoso.com", "tenant": "contoso", "ticket": "INC-42"}
    scheduled = VerifyRequest.model_validate(
        {**base, "source_flow_run_id": "6f0e0bb4-9c55-4d51-9a6c-6f0b5f2b9a11"}
    )
    assert scheduled.run_name("verify-unblock rob@contoso.com INC-42") == (
        "verify-unblock rob@contoso.com INC-42"
    )
    manual = VerifyRequest.model_validate(base)
    assert manual.run_name("brave-fox") == "verify rob@contoso.com INC-42"
    cleanup = VerifyRequest.model_validate({**base, "mode": "cleanup"})
    assert cleanup.run_name("brave-fox") == "clean-up rob@contoso.com INC-42"


# -- the tenant choice ---------------------------------------------------------------------------


def test_the_tenant_field_offers_the_profiles_and_refuses_others_in_words() -> None:
    schema = with_tenant_choices(
        _unblock_schema(), TENANT_FIELDS["unblock-user"], ["fabrikam", "contoso"]
    )
    tenant = schema["definitions"]["UnblockRequest"]["properties"]["tenant"]
    assert tenant["enum"] == ["contoso", "fabrikam"] and next(iter(tenant)) == "enum"
    assert tenant["description"].endswith(CHOICE_NOTE)
    again = with_tenant_choices(schema, TENANT_FIELDS["unblock-user"], ["contoso"])
    assert (
        again["definitions"]["UnblockRequest"]["properties"]["tenant"]["description"]
        == (tenant["description"])
    )
    assert not validate({"request": GOOD}, schema)
    message = _server_message({"request": {**GOOD, "tenant": "acme"}}, schema)
    assert message == (
        "Validation failed for field 'request.tenant'. Failure reason: "
        "'acme' is not one of ['contoso', 'fabrikam']"
    )
    # no profile at all: free text again (the flow then names the missing profile at start)
    free = with_tenant_choices(schema, TENANT_FIELDS["unblock-user"], [])
    assert "enum" not in free["definitions"]["UnblockRequest"]["properties"]["tenant"]
    assert (
        CHOICE_NOTE
        not in free["definitions"]["UnblockRequest"]["properties"]["tenant"]["description"]
    )
    assert not validate({"request": {**GOOD, "tenant": "acme"}}, free)
    assert "free text" in choice_note([]) and "contoso" in choice_note(["contoso"])


def test_check_tenant_gets_the_same_choice() -> None:
    from flows.check_tenant import check_tenant

    schema = parameter_schema(check_tenant).model_dump_for_openapi()
    chosen = with_tenant_choices(schema, TENANT_FIELDS["check-tenant"], ["contoso"])
    assert chosen["properties"]["tenant"]["enum"] == ["contoso"]
    assert validate({"tenant": "acme"}, chosen)


# -- the Exchange Reason -------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_names_stay_inert_in_the_exchange_reason(name: str) -> None:
    approver = UnblockApproval.model_validate({**APPROVAL, "approver": name}).approver
    reason = unblock_reason("INC-42", approver)
    assert reason == f"unblock-email: ticket INC-42; approved by {approver}"
    assert unicodedata.is_normalized("NFC", reason)
    assert not any(unicodedata.category(c) in {"Cc", "Cf", "Zl", "Zp"} for c in reason)


def test_the_reason_never_carries_a_control_or_a_dangling_accent() -> None:
    assert "\n" not in unblock_reason("INC-1", "ann\nApproved: yes")
    assert "\u202e" not in unblock_reason("INC-1", "ann\u202e")
    long = unblock_reason("INC-1", "x" * 200 + "e\u0301\u0323" * 20)
    assert len(long) <= REASON_MAX_LENGTH and not unicodedata.combining(long[-1])


def test_the_handover_mode_is_an_enum_in_python_and_a_plain_string_enum_in_the_schema() -> None:
    """HandoverMode is a StrEnum for the code; the served schema keeps the inline string enum the
    Literal gave (no $ref to a definition), so the UI form and stored runs see the same values."""
    assert UnblockRequest.model_validate({**GOOD, "handover": "tap"}).handover is HandoverMode.TAP
    assert UnblockRequest.model_validate(GOOD).handover is HandoverMode.SECRET_BLOCK
    served = _unblock_schema()["definitions"]["UnblockRequest"]["properties"]["handover"]
    assert {k: v for k, v in served.items() if k != "description"} == {
        "default": "secret-block",
        "enum": ["secret-block", "tap", "none"],
        "title": "Handover",
        "type": "string",
    }
    assert "HandoverMode" not in json.dumps(_unblock_schema())
