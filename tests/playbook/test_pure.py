"""Prefect-free unit tests: parameter validation, decisions, passwords, redaction, rendering."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr, ValidationError

from m365.models import RestrictedSender, RestrictionReason, User
from playbook import redaction
from playbook.decisions import (
    VerifyAction,
    account_stop,
    match_restricted_entry,
    unblock_reason,
    verify_decision,
)
from playbook.evidence import Evidence, PasswordCheck
from playbook.outcomes import Outcome
from playbook.params import UnblockRequest, VerifyRequest
from playbook.passwords import ALPHABET, SYMBOLS, generate_password, meets_complexity
from playbook.rendering import (
    markdown_to_text,
    md_escape,
    render_approval,
    render_evidence,
    render_unblock_report,
)
from playbook.report import RunReport, StepRecord

GOOD = {"account": "rob@contoso.com", "tenant": "contoso", "ticket": "INC-1", "requested_by": "ann"}

MEGAN = User(
    id="u-megan",
    user_principal_name="megan@contoso.onmicrosoft.com",
    mail="Megan.Bowen@contoso.com",
    proxy_addresses=("SMTP:Megan.Bowen@contoso.com", "smtp:megan@contoso.onmicrosoft.com"),
)


# -- parameters -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("account", "rob@contoso.com\r\nBcc: x@evil.com"),
        ("account", "rob@contoso.com\n"),
        ("account", "r\u043eb@contoso.com"),  # Cyrillic o
        ("account", "rob@contoso.com'); drop"),
        ("account", "[click](http://evil)@contoso.com"),
        ("account", "{{7*7}}@contoso.com"),
        ("account", "a" * 100_000 + "@contoso.com"),
        ("account", "rob..x@contoso.com"),
        ("account", "rob"),
        ("tenant", "../../etc/passwd"),
        ("tenant", "Contoso"),
        ("tenant", "contoso\n"),
        ("ticket", "[click](http://evil)"),
        ("ticket", "<script>alert(1)</script>"),
        ("ticket", "{{ 7*7 }}"),
        ("ticket", "INC-1\r\n"),
        ("ticket", "x" * 100_000),
        ("requested_by", "ann\u202e"),
        ("requested_by", "**ann**"),
        ("requested_by", " ann"),
    ],
)
def test_hostile_parameters_are_rejected(field: str, value: str) -> None:
    with pytest.raises(ValidationError):
        UnblockRequest.model_validate({**GOOD, field: value})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("handover", "email"),
        ("approval_timeout_minutes", 0),
        ("approval_timeout_minutes", 10_000),
        ("verification_delay_minutes", -1),
        ("password", "x"),  # extra fields (credentials) are not parameters
    ],
)
def test_out_of_range_parameters_are_rejected(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        UnblockRequest.model_validate({**GOOD, field: value})


def test_good_parameters_and_schema_constraints() -> None:
    req = UnblockRequest.model_validate({**GOOD, "account": "Rob.Smith+x@Contoso.com"})
    assert req.account == "rob.smith+x@contoso.com"
    assert req.handover == "secret-block" and req.verification_delay_minutes == 240
    props = UnblockRequest.model_json_schema()["properties"]
    # The rule sits under "if"; a value that breaks it meets an "else" that says in words what
    # was expected (see playbook.params.Expected).
    assert props["account"]["if"]["pattern"] and props["account"]["if"]["maxLength"] == 254
    assert props["account"]["else"]["const"].startswith("account: an e-mail address")
    assert props["handover"]["enum"] == ["secret-block", "tap", "none"]
    assert props["approval_timeout_minutes"]["maximum"] == 1440
    assert props["ticket"]["if"]["not"] == {"pattern": "[\\r\\n]"}
    assert UnblockRequest.model_json_schema()["additionalProperties"] is False


def test_verify_request_refuses_foreign_block_names() -> None:
    base = {"account": "rob@contoso.com", "tenant": "contoso", "ticket": "INC-1"}
    VerifyRequest.model_validate(
        {
            **base,
            "handover_block": "unblock-handover-" + "0" * 8 + "-" + "0000-0000-0000-" + "0" * 12,
        }
    )
    with pytest.raises(ValidationError):
        VerifyRequest.model_validate({**base, "handover_block": "entra-client-secret"})


# -- decisions --------------------------------------------------------------------------------


def test_entry_listed_under_an_alias_matches_case_insensitively() -> None:
    entry = RestrictedSender(sender_address="MEGAN.bowen@contoso.com")
    other = RestrictedSender(sender_address="rob@contoso.com")
    assert match_restricted_entry(MEGAN, [other, entry]) == entry
    assert match_restricted_entry(MEGAN, [other]) is None


def test_upn_entry_wins_over_alias_entry() -> None:
    by_mail = RestrictedSender(sender_address="megan.bowen@contoso.com")
    by_upn = RestrictedSender(sender_address="Megan@contoso.onmicrosoft.com")
    assert match_restricted_entry(MEGAN, [by_mail, by_upn]) == by_upn


def test_account_stop_reasons() -> None:
    assert account_stop(MEGAN) is None
    assert (
        account_stop(MEGAN.model_copy(update={"account_enabled": False}))
        is Outcome.ACCOUNT_DISABLED
    )
    synced = MEGAN.model_copy(update={"on_premises_sync_enabled": True})
    assert account_stop(synced) is Outcome.SYNCED_FROM_ON_PREMISES


def test_unblock_reason_carries_ticket_and_approver() -> None:
    assert unblock_reason("INC-1", "bob") == "unblock-email: ticket INC-1; approved by bob"


def test_verify_decision() -> None:
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    kw = {
        "escalate_after": timedelta(hours=24),
        "recheck_after": timedelta(hours=1),
        "attempt": 1,
        "max_attempts": 30,
    }
    assert verify_decision(still_listed=False, now=now, approved_at=now, **kw).action is (
        VerifyAction.VERIFIED
    )
    d = verify_decision(still_listed=True, now=now, approved_at=now, **kw)
    assert d.action is VerifyAction.RECHECK and d.next_check_at == now + timedelta(hours=1)
    late = verify_decision(
        still_listed=True, now=now, approved_at=now - timedelta(hours=23.5), **kw
    )
    assert late.next_check_at == now + timedelta(minutes=30)  # never beyond the deadline
    gone = verify_decision(still_listed=True, now=now, approved_at=now - timedelta(hours=24), **kw)
    assert gone.action is VerifyAction.ESCALATE
    spent = verify_decision(still_listed=True, now=now, approved_at=now, **{**kw, "attempt": 30})
    assert spent.action is VerifyAction.ESCALATE


# -- passwords --------------------------------------------------------------------------------


def test_generated_passwords_meet_entra_complexity() -> None:
    seen = set()
    for _ in range(500):
        pw = generate_password().get_secret_value()
        assert len(pw) >= 20 and meets_complexity(pw) and pw.isascii()
        assert set(pw) <= set(ALPHABET)
        seen.add(pw)
    assert len(seen) == 500
    assert set(SYMBOLS) <= set("@#$%^&*-_!+=[]{}|\\:',.?/`~\"();<> ")
    with pytest.raises(ValueError):
        generate_password(12)


def test_generated_password_is_a_secretstr() -> None:
    pw = generate_password()
    assert isinstance(pw, SecretStr) and pw.get_secret_value() not in repr(pw)


# -- redaction --------------------------------------------------------------------------------


def test_redaction_filter_scrubs_messages_args_and_tracebacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = generate_password()
    value = secret.get_secret_value()
    redaction.register_secret(secret)
    logger = logging.getLogger("prefect.task_runs.unblock.test")
    logger.addFilter(redaction.RedactionFilter())
    with caplog.at_level(logging.INFO, logger="prefect.task_runs.unblock.test"):
        logger.info("the value is %s", value)
        try:
            raise RuntimeError(f"boom {value}")
        except RuntimeError:
            logger.exception("failed")
    assert value not in caplog.text
    assert redaction.REDACTED in caplog.text
    assert redaction.redact(f"x{value}y") == f"x{redaction.REDACTED}y"


# -- rendering --------------------------------------------------------------------------------

HOSTILE = [
    "[click](http://evil)",
    "<script>alert(1)</script>",
    "{{ 7*7 }}",
    "line\r\nbreak",
    "**bold** _it_ `code` | pipe",
    "http://evil.example/x",
    "# heading",
    "\u202eevil",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_md_escape_renders_hostile_text_inert(text: str) -> None:
    out = md_escape(text)
    assert "<script" not in out and "](" not in out and "\r" not in out and "\n" not in out
    assert "{{" not in out and "http://" not in out and "\u202e" not in out
    assert "**" not in out and "`" not in out.replace("\\`", "")


def _report(**kw: object) -> RunReport:
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    base: dict[str, object] = {
        "flow": "unblock-user",
        "flow_run_id": "r-1",
        "flow_run_name": "brave-fox",
        "account": "megan@contoso.onmicrosoft.com",
        "tenant": "contoso",
        "ticket": "INC-1",
        "requested_by": "ann",
        "dry_run": False,
        "handover": "secret-block",
        "handover_block": "unblock-handover-r-1",
        "user": MEGAN,
        "entry": RestrictedSender(
            sender_address="megan@contoso.onmicrosoft.com",
            reason=RestrictionReason(
                raw="ExceedingLimitType=External",
                kind="EmailSendingLimitExceeded",
                exceeding_limit_type="External",
                external_recipient_count_today=512,
            ),
            created=now - timedelta(hours=2),
        ),
        "steps": [
            StepRecord(
                name="reset_password",
                status="done",
                started=now,
                finished=now,
                request_ids=["req-123"],
            )
        ],
    }
    base.update(kw)
    return RunReport.model_validate(base)


def _evidence(**kw: object) -> Evidence:
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    base: dict[str, object] = {
        "account": "megan@contoso.onmicrosoft.com",
        "password": PasswordCheck(
            ok=True,
            last_password_change=now,
            restricted_since=now - timedelta(hours=2),
            reason="the password was changed after the restriction",
        ),
    }
    base.update(kw)
    return Evidence.model_validate(base)


def _approval(report: RunReport, removal_reason: str, link: str | None = None) -> str:
    return render_approval(
        report,
        evidence=_evidence(),
        removal_reason=removal_reason,
        timeout_minutes=60,
        evidence_link=link,
        evidence_key="unblock-evidence",
    )


@pytest.mark.parametrize("text", HOSTILE)
def test_templates_escape_every_user_supplied_value(text: str) -> None:
    report = _report(ticket=text, requested_by=text, outcome=Outcome.REJECTED)
    report.steps[0].detail = text
    for md in (
        _approval(report, text),
        render_evidence(report, evidence=_evidence(errors=(text,))),
        render_unblock_report(report),
    ):
        assert "<script" not in md and "](http" not in md and "{{" not in md and "\r" not in md
        assert "\u202e" not in md


def test_approval_description_is_short_and_says_what_approving_will_do() -> None:
    link = "http://127.0.0.1:4200/v2/artifacts/artifact/0b6f6a3e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
    md = _approval(_report(), unblock_reason("INC-1", "<approver>"), link)
    for expected in (
        "**Restricted** since 2026\\-01\\-01 10\\:00\\:00 UTC\\:",
        "EmailSendingLimitExceeded, external recipient limit exceeded",
        "reset confirmed",
        "**Approve** removes",
        "**Reject** leaves",
        f"[Open the full evidence]({link})",
    ):
        assert expected in md, expected
    assert "&lt;approver&gt;" in md
    # the risk line first, the link last; the details (steps, user table) are in the artifact
    lines = [line for line in md.splitlines() if line.strip()]
    assert lines[1].startswith("**Risk") and lines[-1].startswith("[Open the full evidence]")
    assert "req\\-123" not in md and "|" not in md
    assert len(lines) <= 16
    # without a UI address the description names the artifact instead
    assert "artifact **unblock\\-evidence**" in _approval(_report(), "x")


def test_full_evidence_has_one_section_per_kind_and_no_wide_table() -> None:
    md = render_evidence(_report(), evidence=_evidence())
    for heading in (
        "## Key findings",
        "## Password",
        "## Inbox rules (hidden rules included)",
        "## Mailbox forwarding",
        "## Admin roles",
        "## Earlier unblocks",
        "## The user",
        "## The Restricted users entry",
        "## Done so far",
    ):
        assert heading in md, heading
    assert "req\\-123" in md and "unblock\\-handover\\-r\\-1" in md
    # only two-column tables: long values wrap instead of widening the page
    table_rows = [line for line in md.splitlines() if line.startswith("|")]
    assert table_rows and all(line.replace("\\|", "").count("|") == 3 for line in table_rows)


def test_markdown_reads_back_as_plain_text_for_a_terminal() -> None:
    report = _report(requested_by="[click](http://evil) <script> {{7*7}}")
    text = markdown_to_text(_approval(report, "x", "http://127.0.0.1:4200/v2/artifacts/artifact/a"))
    assert "Restricted since 2026-01-01 10:00:00 UTC: EmailSendingLimitExceeded" in text
    assert "\\" not in text and "&lt;" not in text and "**" not in text
    assert "Open the full evidence (http://127.0.0.1:4200/v2/artifacts/artifact/a)" in text
    assert markdown_to_text(md_escape("[click](http://evil) <b> {{7*7}} \x1b[31m")) == (
        "[click](http://evil) <b> {{7*7}} \ufffd[31m"
    )


def test_report_names_the_outcome_and_never_a_password() -> None:
    md = render_unblock_report(_report(outcome=Outcome.UNBLOCKED))
    assert "Outcome: Unblocked" in md and "req\\-123" in md and "INC\\-1" in md
