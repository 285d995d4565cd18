"""Eviction evidence, plan and outcomes (playbook.eviction): plain functions, no Prefect."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from m365.errors import (
    ConnectionFailedError,
    InvalidRequestError,
    LicenseRequiredError,
    NotFoundError,
    PermissionDeniedError,
    ThrottledError,
)
from m365.models import (
    AuditTarget,
    AuthenticationMethod,
    DirectoryAudit,
    MailboxPermission,
    MessageTraceRow,
    OAuth2Grant,
    RecipientPermission,
    SignIn,
)
from playbook.eviction import (
    CHECKED,
    ActionKind,
    Check,
    CheckStatus,
    DelegatesReview,
    EvictionEvidence,
    GrantsReview,
    MethodsReview,
    SentMailSummary,
    SignInSummary,
    assess_delegates,
    assess_grants,
    assess_methods,
    confirm_gone,
    delegate_address,
    event_method_type,
    eviction_plan,
    key_findings,
    mail_scopes,
    not_checked,
    sign_in_record,
    split_pending,
    summarise_sent_mail,
    summarise_sign_ins,
    suspicion_window,
)
from playbook.rendering import render_eviction_evidence

RESTRICTED = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
NOW = RESTRICTED + timedelta(hours=6)
WINDOW = suspicion_window(RESTRICTED, NOW)
USER = "2b4c5d6e-7f80-4a1b-9c2d-3e4f5a6b7c8d"
OWN_APP = "5e7f1a2b-3c4d-4e6f-8a9b-0c1d2e3f4a5b"
DOMAINS = frozenset({"contoso.com", "contoso.onmicrosoft.com"})


def method(
    kind: str, mid: str, created: datetime | None = None, name: str | None = None
) -> AuthenticationMethod:
    return AuthenticationMethod(id=mid, method_type=kind, created=created, display_name=name)


def registered(
    when: datetime, reason: str, *, admin: bool = False, app_id: str | None = None
) -> DirectoryAudit:
    return DirectoryAudit(
        id=f"e-{when.timestamp()}-{reason}",
        activity="Admin registered security info" if admin else "User registered security info",
        activity_time=when,
        result_reason=reason,
        initiated_by_app_id=app_id,
        targets=(AuditTarget(id=USER, type="User"),),
    )


def sign_in(
    when: datetime, ip: str, country: str, *, failed: bool = False, app: str = "OWA"
) -> SignIn:
    return SignIn(
        id=f"{when.isoformat()}{ip}",
        created=when,
        ip_address=ip,
        country=country,
        app_display_name=app,
        error_code=50126 if failed else 0,
    )


# -- window and checks ---------------------------------------------------------------------------


def test_the_window_is_seven_days_before_the_restriction_until_now() -> None:
    assert WINDOW.start == RESTRICTED - timedelta(days=7) and WINDOW.end == NOW
    assert WINDOW.contains(RESTRICTED) and not WINDOW.contains(WINDOW.start - timedelta(seconds=1))
    assert suspicion_window(RESTRICTED, NOW, days_before=3).start == RESTRICTED - timedelta(days=3)
    assert suspicion_window(None, NOW).start == NOW - timedelta(days=7)
    with pytest.raises(ValueError):
        suspicion_window(RESTRICTED, NOW, days_before=0)
    with pytest.raises(ValueError):
        suspicion_window(RESTRICTED, NOW, days_before=31)


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (LicenseRequiredError("x", status=403), "needs Entra ID P1"),
        (PermissionDeniedError("x", status=403), "not checked: the app lacks AuditLog.Read.All"),
        (NotFoundError("x", status=404), "not checked: Microsoft found no such user or mailbox"),
        (
            ThrottledError("x", retry_after=30),
            "not checked: Microsoft did not answer in time (throttled or unavailable)",
        ),
        (
            ConnectionFailedError("x"),
            "not checked: Microsoft did not answer in time (throttled or unavailable)",
        ),
        (
            InvalidRequestError("rob@contoso.com is odd", status=400),
            "not checked: Microsoft refused the request (HTTP 400)",
        ),
    ],
)
def test_each_failure_has_a_reason_in_words(exc: Exception, reason: str) -> None:
    check = not_checked(exc, needs="AuditLog.Read.All")  # type: ignore[arg-type]
    assert check.status is CheckStatus.NOT_CHECKED and not check.ok
    assert check.reason == reason
    assert "rob@contoso.com" not in (check.reason or "")


# -- sign-in methods -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        ("User registered Authenticator App with Notification and Code", "microsoftAuthenticator"),
        ("User registered Mobile Phone", "phone"),
        ("User registered Software OATH token", "softwareOath"),
        ("Admin registered temporary access pass method for user", "temporaryAccessPass"),
        ("User registered FIDO2 Security Key", "fido2"),
        ("User registered Email", "email"),
        ("User registered something else", None),
    ],
)
def test_event_method_type(reason: str, kind: str | None) -> None:
    assert event_method_type(registered(NOW, reason)) == kind


def test_methods_registered_inside_the_window_are_flagged() -> None:
    methods = [
        method("password", "pw"),
        method("phone", "phone"),
        method("microsoftAuthenticator", "auth", name="Galaxy S21"),
        method("fido2", "key-new", created=RESTRICTED - timedelta(days=1), name="YubiKey"),
        method("fido2", "key-old", created=RESTRICTED - timedelta(days=40)),
    ]
    events = [registered(RESTRICTED - timedelta(days=3), "User registered Authenticator App")]
    review = assess_methods(USER, methods, events, WINDOW, own_app_id=OWN_APP)
    by_id = {m.id: m for m in review.methods}
    assert [m.id for m in review.flagged] == ["auth", "key-new"]
    assert by_id["auth"].date_source == "audit log"
    assert by_id["auth"].registered_by == "the user (self-service)"
    assert by_id["key-new"].date_source == "createdDateTime"
    assert by_id["key-old"].why == "registered before the suspicion window"
    assert "before the audit log's reach" in by_id["phone"].why
    assert not by_id["pw"].flagged and not by_id["pw"].removable
    assert by_id["auth"].removable


def test_methods_this_playbook_created_are_not_flagged() -> None:
    tap = method("temporaryAccessPass", "tap", created=NOW - timedelta(minutes=5))
    events = [
        registered(
            NOW - timedelta(minutes=5),
            "Admin registered Temporary Access Pass",
            admin=True,
            app_id=OWN_APP,
        )
    ]
    (finding,) = assess_methods(USER, [tap], events, WINDOW, own_app_id=OWN_APP).methods
    assert not finding.flagged and finding.why == "created by this playbook"


def test_two_undated_methods_of_one_type_are_both_flagged_and_say_so() -> None:
    methods = [method("microsoftAuthenticator", "a1"), method("microsoftAuthenticator", "a2")]
    events = [registered(RESTRICTED - timedelta(days=2), "User registered Authenticator App")]
    review = assess_methods(USER, methods, events, WINDOW)
    assert len(review.flagged) == 2
    assert all("the log names the type only" in m.why for m in review.flagged)


def test_without_the_audit_log_the_reason_is_kept() -> None:
    dates = Check(
        status=CheckStatus.NOT_CHECKED, reason="not checked: the app lacks AuditLog.Read.All"
    )
    review = assess_methods(USER, [method("phone", "p")], [], WINDOW, dates=dates)
    assert "the app lacks AuditLog.Read.All" in review.methods[0].why
    assert review.flagged == ()


# -- sign-ins -------------------------------------------------------------------------------------


def test_new_countries_and_addresses_are_against_the_baseline() -> None:
    day = timedelta(days=1)
    sign_ins = [
        sign_in(WINDOW.start - 10 * day, "198.51.100.23", "GB"),
        sign_in(WINDOW.start - 5 * day, "198.51.100.23", "GB"),
        sign_in(WINDOW.start - 4 * day, "192.0.2.1", "FR", failed=True),  # failures are not "known"
        sign_in(WINDOW.start + day, "198.51.100.23", "GB"),
        sign_in(WINDOW.start + 2 * day, "198.51.100.77", "GB"),
        sign_in(WINDOW.start + 3 * day, "192.0.2.1", "FR"),
        sign_in(WINDOW.start + 4 * day, "203.0.113.45", "NG", failed=True),
        sign_in(
            WINDOW.start + 4 * day + timedelta(minutes=5), "203.0.113.45", "NG", app="OfficeHome"
        ),
    ]
    summary = summarise_sign_ins(USER, sign_ins, WINDOW)
    assert summary.total == 5 and summary.failures == 1 and summary.baseline_sign_ins == 2
    assert set(summary.new_countries) == {"FR", "NG"}  # FR only failed before: not known
    assert set(summary.new_ips) == {"198.51.100.77", "192.0.2.1", "203.0.113.45"}
    ng = next(r for r in summary.countries if r.value == "NG")
    assert (ng.count, ng.failures, ng.new) == (2, 1, True)
    gb = next(r for r in summary.countries if r.value == "GB")
    assert not gb.new and gb.count == 2
    ip = next(r for r in summary.ips if r.value == "203.0.113.45")
    assert ip.country == "NG"
    assert summary.first == WINDOW.start + day and summary.note is None
    assert {r.value for r in summary.apps} == {"OWA", "OfficeHome"}


def test_without_a_baseline_nothing_is_called_new() -> None:
    summary = summarise_sign_ins(
        USER, [sign_in(WINDOW.start + timedelta(days=1), "203.0.113.45", "NG")], WINDOW
    )
    assert summary.new_countries == () and summary.new_ips == ()
    assert summary.note and "no successful sign-in" in summary.note


# -- grants ----------------------------------------------------------------------------------------


def test_grants_with_mail_scopes_are_flagged_with_the_consent_time() -> None:
    sp = "62b67df4-5675-5a93-85db-368385379e5b"
    grants = [
        OAuth2Grant(
            id="g1",
            client_id=sp,
            client_display_name="Mail Sync Pro",
            scopes=("openid", "mail.send", "MailboxSettings.ReadWrite", "User.Read"),
        ),
        OAuth2Grant(
            id="g2", client_id="other", client_display_name="Acrobat", scopes=("Files.Read.All",)
        ),
        OAuth2Grant(id="g3", client_id="imap", scopes=("IMAP.AccessAsUser.All",)),
    ]
    consent = DirectoryAudit(
        id="c",
        activity="Consent to application",
        activity_time=RESTRICTED - timedelta(days=3),
        targets=(AuditTarget(id=sp, display_name="Mail Sync Pro"),),
    )
    review = assess_grants(USER, grants, [consent], WINDOW)
    by_id = {g.id: g for g in review.grants}
    assert [g.id for g in review.flagged] == ["g1", "g3"]
    assert by_id["g1"].mail_scopes == ("mail.send", "MailboxSettings.ReadWrite")
    assert by_id["g1"].consented == consent.activity_time and by_id["g1"].consented_in_window
    assert by_id["g2"].consented is None and by_id["g2"].why == "no mail or mailbox-settings scope"
    assert by_id["g3"].app == "unnamed app (imap)"
    assert mail_scopes(["Mail.Read", "Calendars.Read", "EWS.AccessAsUser.All"]) == (
        "Mail.Read",
        "EWS.AccessAsUser.All",
    )


# -- delegates -------------------------------------------------------------------------------------


def test_delegates_outside_the_organisation_are_flagged() -> None:
    review = assess_delegates(
        "rob@contoso.com",
        [
            MailboxPermission(
                identity="rob",
                user="jo_fabrikam.com#EXT#@contoso.onmicrosoft.com",
                access_rights=("FullAccess",),
            ),
            MailboxPermission(
                identity="rob", user="megan@contoso.com", access_rights=("FullAccess",)
            ),
        ],
        [
            RecipientPermission(
                identity="rob", trustee="x@eu.contoso.com", access_rights=("SendAs",)
            )
        ],
        ["someone@fabrikam.com", "Megan Bowen"],
        DOMAINS,
    )
    flagged = [(d.kind, d.address) for d in review.flagged]
    assert flagged == [("FullAccess", "jo@fabrikam.com"), ("SendOnBehalf", "someone@fabrikam.com")]
    by_delegate = {d.delegate: d for d in review.delegates}
    assert by_delegate["x@eu.contoso.com"].why == "inside the organisation"  # subdomain
    assert "cannot tell" in by_delegate["Megan Bowen"].why
    assert delegate_address("a.b_c.example#EXT#@t.onmicrosoft.com") == ("a.b@c.example", True)


# -- sent mail -------------------------------------------------------------------------------------


def _rows() -> list[MessageTraceRow]:
    rows = []
    burst = RESTRICTED - timedelta(hours=5)
    for n in range(30):
        for k in range(4):
            rows.append(
                MessageTraceRow(
                    message_trace_id=f"m{n}",
                    received=burst + timedelta(minutes=4 * n),
                    recipient_address=f"c{(n * 4 + k) % 50}@example.com",
                    subject=["Updated banking details", "Invoice overdue"][n % 2],
                )
            )
    rows.append(
        MessageTraceRow(
            message_trace_id="own",
            received=RESTRICTED - timedelta(days=2),
            recipient_address="megan@contoso.com",
            subject="Lunch?",
        )
    )
    rows.append(  # outside the window: ignored
        MessageTraceRow(
            message_trace_id="old",
            received=WINDOW.start - timedelta(days=1),
            recipient_address="x@example.com",
            subject="old",
        )
    )
    return rows


def test_sent_mail_summary() -> None:
    summary = summarise_sent_mail("rob@contoso.com", _rows(), WINDOW, DOMAINS)
    assert summary.messages == 31 and summary.deliveries == 121
    assert summary.distinct_recipients == 51 and summary.external_recipients == 50
    assert round(summary.external_share, 3) == round(50 / 51, 3)
    assert [(s.subject, s.messages) for s in summary.top_subjects] == [
        ("Invoice overdue", 15),
        ("Updated banking details", 15),
        ("Lunch?", 1),
    ]
    assert summary.first == RESTRICTED - timedelta(days=2)
    assert summary.last == RESTRICTED - timedelta(hours=5) + timedelta(minutes=116)
    counts = [h.messages for h in summary.per_hour]
    assert sum(counts) == 31 and summary.busiest_hour == 15
    busiest = next(h for h in summary.per_hour if h.messages == 15)
    assert busiest.bar == "█" * 20
    assert next(h for h in summary.per_hour if h.messages == 1).bar == "█"
    assert not summary.clipped


def test_a_window_beyond_ninety_days_is_clipped() -> None:
    old = suspicion_window(NOW - timedelta(days=120), NOW)
    summary = summarise_sent_mail("rob@contoso.com", [], old, DOMAINS)
    assert summary.clipped and summary.searched_start is not None
    assert NOW - summary.searched_start < timedelta(days=90)


# -- plan, findings, outcomes -------------------------------------------------------------------


def _evidence(*, clean: bool = False, blocked: bool = False) -> EvictionEvidence:
    day = timedelta(days=1)
    methods = assess_methods(
        USER,
        [
            method("password", "pw"),
            method("phone", "ph"),
            method("microsoftAuthenticator", "au", name="Galaxy"),
        ],
        [] if clean else [registered(RESTRICTED - 3 * day, "User registered Authenticator App")],
        WINDOW,
    )
    baseline = [sign_in(WINDOW.start - 5 * day, "198.51.100.23", "GB")]
    inside = [sign_in(WINDOW.start + day, "198.51.100.23", "GB")]
    if not clean:
        inside.append(sign_in(WINDOW.start + 2 * day, "203.0.113.45", "NG"))
    grants = assess_grants(
        USER,
        [
            OAuth2Grant(
                id="g", client_id="sp", client_display_name="Mail Sync Pro", scopes=("Mail.Send",)
            )
        ]
        if not clean
        else [],
        [],
        WINDOW,
    )
    delegates = assess_delegates(
        "rob@contoso.com",
        []
        if clean
        else [
            MailboxPermission(identity="rob", user="jo@fabrikam.com", access_rights=("FullAccess",))
        ],
        [],
        [],
        DOMAINS,
    )
    return EvictionEvidence(
        account="rob@contoso.com",
        window=WINDOW,
        sign_in_enabled=not blocked,
        methods=methods,
        sign_ins=summarise_sign_ins(USER, baseline + inside, WINDOW),
        grants=grants,
        delegates=delegates,
        sent_mail=summarise_sent_mail("rob@contoso.com", [] if clean else _rows(), WINDOW, DOMAINS),
    )


def test_the_plan_lists_only_what_applies() -> None:
    plan = eviction_plan(_evidence(), sign_in_blocked=True)
    kinds = [a.kind for a in plan.actions]
    assert kinds == [
        ActionKind.REMOVE_SIGN_IN_METHODS,
        ActionKind.REVOKE_OAUTH_GRANTS,
        ActionKind.REMOVE_MAILBOX_DELEGATES,
        ActionKind.ENABLE_SIGN_IN,
    ]
    methods = plan.action(ActionKind.REMOVE_SIGN_IN_METHODS)
    assert methods is not None and [t.id for t in methods.targets] == ["au"]
    assert not methods.reversible and "Cannot be undone" in methods.undo
    delegates = plan.action(ActionKind.REMOVE_MAILBOX_DELEGATES)
    assert delegates is not None and delegates.targets[0].id == "FullAccess:jo@fabrikam.com"
    assert all(a.what and a.impact and a.undo for a in plan.actions)
    assert eviction_plan(_evidence(clean=True)).actions == ()


def test_key_findings_carry_no_ip_address_or_subject() -> None:
    lines = key_findings(_evidence())
    text = "\n".join(lines)
    assert 'Microsoft Authenticator "Galaxy"' in text
    assert "country not seen before: NG" in text
    assert "1 IP address not seen before" in text
    assert "Mail Sync Pro (Mail.Send)" in text
    assert "Delegate outside the organisation: jo@fabrikam.com (Full Access" in text
    assert "Sent 31 messages to 51 recipients (98% external)" in text
    for private in ("203.0.113.45", "198.51.100.23", "Updated banking details", "Invoice overdue"):
        assert private not in text


def test_key_findings_of_a_clean_account_and_of_unchecked_items() -> None:
    assert key_findings(_evidence(clean=True))[0].startswith("Nothing flagged at all")
    ev = _evidence(clean=True).model_copy(
        update={
            "sign_ins": SignInSummary(
                user_id=USER,
                check=Check(status=CheckStatus.NOT_CHECKED, reason="needs Entra ID P1"),
            ),
            "delegates": DelegatesReview(
                mailbox="rob@contoso.com",
                check=Check(
                    status=CheckStatus.NOT_CHECKED,
                    reason="not checked: the app lacks the Exchange Administrator role",
                ),
            ),
        }
    )
    lines = key_findings(ev)
    assert lines[0].startswith("Nothing flagged in what could be checked")
    assert (
        "Not checked: sign-ins (needs Entra ID P1); mailbox delegates (the app lacks the "
        "Exchange Administrator role)." in lines
    )


def test_outcomes_from_a_re_read() -> None:
    todo, already = split_pending(["A", "b", "c"], ["a", "c"])
    assert todo == ("A", "c") and already == ("b",)
    changed, failed = confirm_gone(todo, ["c"], {"c": "Microsoft refuses: default"})
    assert changed == ("A",) and failed == (("c", "Microsoft refuses: default"),)
    blocked = sign_in_record(
        "block_sign_in", "u", wanted_enabled=False, before=True, after=False, request_ids=("r",)
    )
    assert (
        blocked.changed == ("u",) and blocked.request_ids == ("r",) and blocked.detail == "1 done"
    )
    again = sign_in_record("block_sign_in", "u", wanted_enabled=False, before=False, after=False)
    assert again.already == ("u",) and again.detail == "1 already done"
    stuck = sign_in_record(
        ActionKind.ENABLE_SIGN_IN, "u", wanted_enabled=True, before=False, after=False
    )
    assert not stuck.ok and stuck.failed == (("u", "accountEnabled did not change"),)


# -- rendering ------------------------------------------------------------------------------------


def test_the_evidence_renders_personal_data_inert_and_only_there() -> None:
    hostile = "<script>alert(1)</script> [click](https://evil.example) | cell"
    ev = _evidence()
    rows = [
        *_rows(),
        MessageTraceRow(
            message_trace_id="h",
            received=RESTRICTED,
            recipient_address="z@example.com",
            subject=hostile,
        ),
    ]
    ev = ev.model_copy(
        update={"sent_mail": summarise_sent_mail("rob@contoso.com", rows, WINDOW, DOMAINS)}
    )
    text = render_eviction_evidence(ev, eviction_plan(ev, sign_in_blocked=False))
    assert "<script" not in text and "](https" not in text
    assert "&lt;script&gt;" in text
    assert "203\\.0\\.113\\.45" in text  # the IP is in the artifact, escaped
    assert "Updated banking details" in text
    assert "**FLAGGED**" in text and "**NEW**" in text
    assert "Remove the flagged sign\\-in methods" in text
    table_rows = [
        line for line in text.splitlines() if line.startswith("| ") and "Subject" not in line
    ]
    assert table_rows


def test_not_checked_items_render_their_reason() -> None:
    ev = _evidence().model_copy(
        update={
            "methods": MethodsReview(
                user_id=USER,
                check=Check(
                    status=CheckStatus.NOT_CHECKED,
                    reason="not checked: the app lacks UserAuthenticationMethod.Read.All",
                ),
            ),
            "grants": GrantsReview(
                user_id=USER,
                check=Check(
                    status=CheckStatus.NOT_CHECKED,
                    reason="not checked: the app lacks DelegatedPermissionGrant.ReadWrite.All",
                ),
            ),
            "sent_mail": SentMailSummary(
                mailbox="rob@contoso.com",
                check=Check(
                    status=CheckStatus.NOT_CHECKED, reason="not checked: the answer was lost"
                ),
            ),
        }
    )
    text = render_eviction_evidence(ev)
    assert "the app lacks UserAuthenticationMethod\\.Read\\.All" in text
    assert "the app lacks DelegatedPermissionGrant\\.ReadWrite\\.All" in text
    assert CHECKED.ok
