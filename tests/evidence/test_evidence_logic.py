"""Prefect-free: classification, risk summary, guards, counters, escalation plan, rendering."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from m365.models import InboxRule, MailboxForwarding
from orchestration.approvals.notify import (
    NotificationKind,
    artifact_link,
    deep_link,
    parse_block_ref,
    render_notification,
)
from playbook.evidence import (
    DEFAULT_ASSUMED_CAP,
    MAX_KEY_FINDINGS,
    CleanUp,
    Evidence,
    Indicator,
    PasswordCheck,
    PrivilegedVerdict,
    available_cleanups,
    cap_warning,
    classify_forwarding,
    classify_rules,
    counter_value,
    counter_variable_name,
    escalation_schedule,
    key_findings,
    password_reset_guard,
    privileged_guard,
    read_count,
    tenant_domains,
)
from playbook.rendering import chat_text, render
from playbook.report import RunReport

from .helpers import notification_context

DOMAINS = tenant_domains(["rob@contoso.com", "rob@contoso.onmicrosoft.com"])
T0 = datetime(2024, 5, 14, 6, 12, 31, tzinfo=UTC)
HOSTILE = "<img src=x onerror=alert(1)> [click](http://evil.example) {{7*7}} | @here"
RUN_ID = "0b6f6a3e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"


def rule(identity: str, name: str, **kw: object) -> InboxRule:
    return InboxRule(identity=identity, name=name, **kw)  # type: ignore[arg-type]


RULES = [
    rule("r1", "Newsletters", move_to_folder="Newsletters"),
    rule("r2", ".", forward_to=('"x" [SMTP:invoices.rob.young@gmail.com]',), delete_message=True),
    rule("r3", "Team", redirect_to=("smtp:ann@contoso.com",)),
    rule("r4", "Hide", move_to_folder="RSS Feeds"),
    rule("r5", "Old", forward_to=("x@gmail.com",), enabled=False),
    rule("r6", "Notes", move_to_folder="\\Notes"),
    rule("r7", "Junk it", move_to_folder="Junk Email"),
    rule("r8", "Sub", forward_as_attachment_to=("a@sales.contoso.com",)),
]
VISIBLE = [r for r in RULES if r.identity != "r2"]


def findings() -> dict[str, object]:
    return {f.identity: f for f in classify_rules(RULES, VISIBLE, DOMAINS)}


def test_rules_are_classified_by_what_they_do_to_mail() -> None:
    f = findings()
    assert f["r1"].indicators == ()  # type: ignore[attr-defined]
    r2 = f["r2"]
    assert r2.hidden and r2.active_threat  # type: ignore[attr-defined]
    assert r2.recipients == ("invoices.rob.young@gmail.com",)  # type: ignore[attr-defined]
    assert set(r2.indicators) >= {  # type: ignore[attr-defined]
        Indicator.FORWARDS,
        Indicator.FORWARDS_EXTERNAL,
        Indicator.DELETES,
        Indicator.HIDDEN,
        Indicator.BLANK_NAME,
    }
    assert Indicator.REDIRECTS in f["r3"].indicators  # type: ignore[attr-defined]
    assert Indicator.FORWARDS_EXTERNAL not in f["r3"].indicators  # type: ignore[attr-defined]
    for hiding in ("r4", "r6", "r7"):
        assert Indicator.MOVES_TO_HIDING_FOLDER in f[hiding].indicators  # type: ignore[attr-defined]
    assert f["r5"].suspicious and not f["r5"].active_threat  # type: ignore[attr-defined]
    # a subdomain of the organisation is internal
    assert f["r8"].external_recipients == ()  # type: ignore[attr-defined]


def test_forwarding_classification() -> None:
    ext = classify_forwarding(
        MailboxForwarding(
            identity="rob",
            forwarding_smtp_address="smtp:Invoices@Gmail.com",
            deliver_to_mailbox_and_forward=True,
        ),
        DOMAINS,
    )
    assert ext.forwards and ext.external and ext.target == "invoices@gmail.com"
    internal = classify_forwarding(
        MailboxForwarding(identity="rob", forwarding_address="Ann Lee"), DOMAINS
    )
    assert internal.forwards and not internal.external
    none = classify_forwarding(MailboxForwarding(identity="alex"), DOMAINS)
    assert not none.forwards


def test_risk_summary_is_one_line_and_names_the_drivers() -> None:
    ev = Evidence(
        account="rob@contoso.com",
        rules=classify_rules(RULES, VISIBLE, DOMAINS),
        forwarding=classify_forwarding(
            MailboxForwarding(identity="rob", forwarding_smtp_address="smtp:x@gmail.com"), DOMAINS
        ),
        roles=("Global Administrator",),
        password=password_reset_guard(T0 - timedelta(days=1), T0),
    )
    s = ev.summary
    assert "\n" not in s
    assert s.startswith("Risk: HIGH.")
    assert "6 suspicious inbox rules (1 hidden, 1 external)" in s
    assert "mailbox forwarding to an external address" in s
    assert "Global Administrator" in s
    assert "password not reset after the restriction" in s
    clean = Evidence(
        account="alex@contoso.com", password=password_reset_guard(T0, T0 - timedelta(1))
    )
    assert clean.risk == "none"
    assert clean.summary.startswith("Risk: NONE.")


@pytest.mark.parametrize(
    ("changed", "created", "ok"),
    [
        (T0 + timedelta(seconds=1), T0, True),
        (T0, T0, False),
        (T0 - timedelta(days=90), T0, False),
        (None, T0, False),
        (T0, None, False),
    ],
)
def test_password_guard_requires_a_change_newer_than_the_block(
    changed: datetime | None, created: datetime | None, ok: bool
) -> None:
    check = password_reset_guard(changed, created)
    assert check.ok is ok
    assert check.reason


def test_privileged_guard() -> None:
    roles = ("Global Administrator",)
    kw = {"requested_by": "ann"}
    assert privileged_guard((), override=False, **kw) is PrivilegedVerdict.NOT_PRIVILEGED
    assert privileged_guard(roles, override=False, **kw) is PrivilegedVerdict.REFUSED
    assert privileged_guard(roles, override=True, **kw) is PrivilegedVerdict.NEEDS_SECOND_APPROVER
    for same in ("ann", "ANN", " ann ", "ann@contoso.com"):
        verdict = privileged_guard(roles, override=True, approver=same, approved=True, **kw)
        assert verdict is PrivilegedVerdict.SAME_PERSON
    assert (
        privileged_guard(roles, override=True, approver="bob", approved=False, **kw)
        is PrivilegedVerdict.DECLINED
    )
    assert (
        privileged_guard(roles, override=True, approver="bob", approved=True, **kw)
        is PrivilegedVerdict.ALLOWED
    )


def test_cap_warning_levels() -> None:
    assert cap_warning(0).level == "none"
    assert cap_warning(1).level == "warn"
    assert cap_warning(DEFAULT_ASSUMED_CAP - 1).level == "last"
    assert cap_warning(DEFAULT_ASSUMED_CAP).level == "over"
    assert "Microsoft Support" in cap_warning(DEFAULT_ASSUMED_CAP).message


def test_counter_names_are_safe_and_per_tenant() -> None:
    a = counter_variable_name("contoso", "Rob@Contoso.com")
    assert a == counter_variable_name("contoso", " rob@contoso.com")
    assert a != counter_variable_name("fabrikam", "rob@contoso.com")
    assert "rob" not in a and a.startswith("unblock-count-contoso-")
    hostile = counter_variable_name("contoso", "../../x'; drop {{7*7}}@evil")
    assert set(hostile) <= set("abcdefghijklmnopqrstuvwxyz0123456789-")
    for bad in ("../x", "Contoso", "a b", "", "x" * 65):
        with pytest.raises(ValueError):
            counter_variable_name(bad, "rob@contoso.com")
    assert read_count(None) == 0
    assert read_count({"count": "7"}) == 0
    assert read_count({"count": True}) == 0
    assert read_count(counter_value(2, T0)) == 3


def test_escalation_schedule() -> None:
    s = escalation_schedule(60, 15, grace_seconds=120)
    assert s.escalate_after == timedelta(minutes=15)
    assert s.pause_timeout_seconds == 3600 + 120
    assert escalation_schedule(10, 10).escalate_after is None  # would coincide with the expiry
    assert escalation_schedule(10, None).escalate_after is None
    with pytest.raises(ValueError):
        escalation_schedule(0, None)


def _report() -> RunReport:
    return RunReport(
        flow="unblock-user",
        flow_run_id="r-1",
        flow_run_name="brave-fox",
        account="rob@contoso.com",
        tenant="contoso",
        ticket="INC-1",
        requested_by="ann",
        dry_run=False,
        handover="secret-block",
    )


def test_evidence_renders_hostile_rule_names_inert() -> None:
    hostile_rules = [
        rule("h1", HOSTILE, forward_to=(f'"{HOSTILE}" [SMTP:evil@gmail.com]',)),
        rule("h2", "x", forward_to=("smtp:a|b<script>@evil.com",)),
    ]
    ev = Evidence(
        account="rob@contoso.com",
        rules=classify_rules(hostile_rules, hostile_rules, DOMAINS),
        forwarding=classify_forwarding(
            MailboxForwarding(identity="rob", forwarding_address=HOSTILE), DOMAINS
        ),
    )
    text = render("evidence.md.j2", r=_report(), ev=ev, findings=key_findings(ev))
    for raw in ("<img", "<script", "[click](", "{{7*7}}", "](http", "| @here"):
        assert raw not in text
    assert "&lt;img src\\=x onerror\\=alert\\(1\\)&gt;" in text
    # rules are list lines, not table rows: a long or hostile value cannot widen a table
    assert not any(line.startswith("|") and "evil" in line for line in text.splitlines())


def test_key_findings_put_what_needs_attention_first_and_stay_short() -> None:
    rules = classify_rules(RULES, VISIBLE, DOMAINS)
    fwd = classify_forwarding(
        MailboxForwarding(
            identity="rob",
            forwarding_smtp_address="smtp:invoices.rob.young@gmail.com",
            deliver_to_mailbox_and_forward=True,
        ),
        DOMAINS,
    )
    ok = PasswordCheck(
        ok=True, last_password_change=T0 + timedelta(days=1), restricted_since=T0, reason="ok"
    )
    ev = Evidence(account="rob@contoso.com", rules=rules, forwarding=fwd, password=ok)
    lines = key_findings(ev)
    assert len(lines) == MAX_KEY_FINDINGS  # more than eight findings: cut, with a pointer
    assert lines[-1].text.endswith("more finding(s) in the full evidence.")
    # the fact the unblock rests on comes first, then what needs attention
    assert lines[0].text.startswith("Password changed") and not lines[0].alert
    assert lines[1].text == (
        'Hidden inbox rule "." forwards to invoices.rob.young@gmail.com (external) '
        "and deletes mail."
    )
    assert lines[1].alert
    clean = key_findings(Evidence(account="rob@contoso.com", password=ok))
    assert [f.text for f in clean] == [
        "Password changed 2024-05-15 06:12:31 UTC, after the restriction: reset confirmed.",
        "No inbox rules.",
        "No admin roles.",
    ]
    assert not any(f.alert for f in clean)
    with_fwd = key_findings(Evidence(account="rob@contoso.com", forwarding=fwd, password=ok))
    assert with_fwd[1].text == (
        "Mailbox forwarding to invoices.rob.young@gmail.com (external), keeping a copy."
    )
    assert available_cleanups(ev) == (CleanUp.DISABLE_SUSPICIOUS_RULES, CleanUp.CLEAR_FORWARDING)
    assert available_cleanups(Evidence(account="rob@contoso.com", password=ok)) == ()


def test_notifications_are_plain_text_with_a_checked_deep_link() -> None:
    link = deep_link(f"http://127.0.0.1:4200/runs/flow-run/{RUN_ID}")
    assert link is not None
    for bad in (
        f"javascript:alert(1)//runs/flow-run/{RUN_ID}",
        f"http://127.0.0.1:4200/runs/flow-run/{RUN_ID})[x](http://evil",
        "http://127.0.0.1:4200/runs/flow-run/not-a-uuid",
        None,
        "",
    ):
        assert deep_link(bad) is None
    ctx = notification_context(link=link, risk_summary=HOSTILE, wait_minutes=60)
    n = render_notification(NotificationKind.APPROVAL_NEEDED, ctx)
    assert n.subject == "Approval needed: unblock rob@contoso.com (INC-1)"
    assert "rob@contoso.com is on the Restricted users list" in n.body
    assert f"Open the paused run to approve or reject: {link}\n" in n.body
    assert "\\" not in n.body and "**" not in n.body  # plain text: no Markdown escapes, no bold
    # hostile text: no tag, no Markdown link, no Slack control sequence; still readable
    assert "<" not in n.body.replace(str(link), "") and "](" not in n.body
    assert "\u2039img src=x onerror=alert(1)\u203a" in n.body and "{{7*7}}" in n.body
    no_link = render_notification(
        NotificationKind.ESCALATION, ctx.model_copy(update={"link": None, "waited_minutes": 15})
    )
    assert "http" not in no_link.body.replace("http://evil.example", "") and "15" in no_link.body


def test_chat_text_neutralises_chat_markup_without_backslashes() -> None:
    assert chat_text("rob@contoso.com 18:25:08 INC-1_a*b") == "rob@contoso.com 18:25:08 INC-1_a*b"
    slack = chat_text("<!channel> <http://evil|click> &lt;!here&gt; [click](http://evil)")
    assert not set(slack) & set("<>&[]") and "\\" not in slack
    assert chat_text("a\x1b[31mb\u202ec\nd") == "a\ufffd\uff3b31mb\ufffdc\ufffdd"


def test_artifact_links_point_at_the_v2_ui() -> None:
    art = "1c2d3e4f-0000-4a5b-8c9d-0e1f2a3b4c5d"
    assert artifact_link(f"http://127.0.0.1:4200/flow-runs/flow-run/{RUN_ID}", art) == (
        f"http://127.0.0.1:4200/v2/artifacts/artifact/{art}"
    )
    assert artifact_link(f"https://prefect.example/ui/runs/flow-run/{RUN_ID}", art) == (
        f"https://prefect.example/ui/v2/artifacts/artifact/{art}"
    )
    assert artifact_link(f"http://h:1/v2/runs/flow-run/{RUN_ID}", art) == (
        f"http://h:1/v2/artifacts/artifact/{art}"
    )
    assert artifact_link(None, art) is None
    assert artifact_link(f"http://h/runs/flow-run/{RUN_ID}", "x)[y](http://evil") is None


def test_block_references() -> None:
    assert parse_block_ref("slack-webhook/soc") == ("slack-webhook", "soc")
    assert parse_block_ref("soc-leads") == (None, "soc-leads")
    for bad in ("secret/x", "../x", "slack-webhook/", "Soc", "a/b/c", "x y"):
        with pytest.raises(ValueError):
            parse_block_ref(bad)
