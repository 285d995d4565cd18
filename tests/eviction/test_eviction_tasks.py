"""The eviction tasks against the emulated tenant (demo seed) and a real Prefect API."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

from emulator import Emulator
from playbook.eviction import (
    ActionKind,
    ActionTarget,
    EvictionEvidence,
    SuspicionWindow,
    eviction_plan,
    key_findings,
    suspicion_window,
)
from playbook.evidence import tenant_domains
from playbook.rendering import render_eviction_evidence
from tasks.block_sign_in import block_sign_in
from tasks.enable_sign_in import enable_sign_in
from tasks.remove_mailbox_delegates import remove_mailbox_delegates
from tasks.remove_sign_in_methods import DEFAULT_REFUSED, remove_sign_in_methods
from tasks.review_mailbox_delegates import review_mailbox_delegates
from tasks.review_oauth_grants import review_oauth_grants
from tasks.review_sent_mail import review_sent_mail
from tasks.review_sign_in_methods import review_sign_in_methods
from tasks.review_sign_ins import review_sign_ins
from tasks.revoke_oauth_grants import revoke_oauth_grants

ROB = "rob@contoso.com"
MEGAN = "megan.bowen@contoso.onmicrosoft.com"
GUEST = "rob.young.invoices_gmail.com#EXT#@contoso.onmicrosoft.com"
PERSONAL = (
    "203.0.113.45",
    "198.51.100.23",
    "198.51.100.77",
    "Updated banking details",
    "Invoice INV-2291 overdue",
    "Shared document: Q2 payment schedule",
)


def _window(emulator: Emulator, address: str) -> SuspicionWindow:
    entry = emulator.state.entry("contoso", address)
    assert entry is not None
    return suspicion_window(entry.created, datetime.now(UTC))


def _gather(tenant: str, emulator: Emulator, upn: str) -> EvictionEvidence:
    user = emulator.state.user("contoso", upn)
    window = _window(emulator, upn)
    domains = tenant_domains(user.smtp_addresses())
    return EvictionEvidence(
        account=upn,
        window=window,
        sign_in_enabled=user.enabled,
        methods=review_sign_in_methods(tenant, user.id, window),
        sign_ins=review_sign_ins(tenant, user.id, window),
        grants=review_oauth_grants(tenant, user.id, window),
        delegates=review_mailbox_delegates(tenant, upn, domains),
        sent_mail=review_sent_mail(tenant, user.primary_smtp, window, domains),
    )


def test_the_compromised_account_is_flagged_and_nothing_is_written(
    tenant: str, emulator: Emulator
) -> None:
    ev = _gather(tenant, emulator, ROB)
    assert [(m.label, m.display_name) for m in ev.methods.flagged] == [
        ("Microsoft Authenticator", "Galaxy S21")
    ]
    assert ev.methods.flagged[0].date_source == "audit log"
    assert ev.sign_ins.new_countries == ("NG",)
    assert set(ev.sign_ins.new_ips) == {"203.0.113.45", "198.51.100.77"}
    assert [g.app for g in ev.grants.flagged] == ["Mail Sync Pro"]
    assert ev.grants.flagged[0].consented_in_window
    assert [(d.kind, d.address) for d in ev.delegates.flagged] == [
        ("FullAccess", "rob.young.invoices@gmail.com"),
        ("SendAs", "rob.young.invoices@gmail.com"),
        ("SendOnBehalf", "rob.young.invoices@gmail.com"),
    ]
    assert ev.sent_mail.messages == 135 and ev.sent_mail.distinct_recipients == 404
    assert ev.sent_mail.busiest_hour == 40
    assert emulator.writes() == []
    findings = key_findings(ev)
    assert (
        "Sign-ins from a country not seen before: NG (3 sign-ins, 1 failed); 2 IP addresses not "
        "seen before (see the evidence)." in findings
    )
    assert (
        "Delegate outside the organisation: rob.young.invoices@gmail.com (Full Access, Send As, "
        "Send on Behalf)." in findings
    )
    assert len(findings) == 5  # method, sign-ins, app, delegate, sent mail


def test_the_clean_account_shows_nothing_flagged(tenant: str, emulator: Emulator) -> None:
    ev = _gather(tenant, emulator, MEGAN)
    assert ev.methods.flagged == () and ev.grants.flagged == () and ev.delegates.flagged == ()
    assert ev.sign_ins.new_countries == () and ev.sign_ins.new_ips == ()
    assert ev.sent_mail.external_recipients == 0
    assert key_findings(ev)[0].startswith("Nothing flagged at all")
    assert eviction_plan(ev).actions == ()


def test_without_entra_id_p1_sign_ins_say_so_and_the_rest_is_read(
    tenant: str, emulator: Emulator
) -> None:
    emulator.state.update_settings("contoso", entra_id_p1=False)
    ev = _gather(tenant, emulator, ROB)
    assert ev.sign_ins.check.reason == "needs Entra ID P1"
    assert ev.methods.check.ok and ev.grants.check.ok and ev.delegates.check.ok
    assert "Not checked: sign-ins (needs Entra ID P1)." in key_findings(ev)


def test_an_app_without_the_permissions_gets_not_checked_lines(
    reader_tenant: str, emulator: Emulator
) -> None:
    ev = _gather(reader_tenant, emulator, ROB)
    assert ev.methods.check.reason == "not checked: the app lacks UserAuthenticationMethod.Read.All"
    assert ev.sign_ins.check.reason == (
        "not checked: the app lacks AuditLog.Read.All and Directory.Read.All"
    )
    assert ev.grants.check.reason == (
        "not checked: the app lacks DelegatedPermissionGrant.ReadWrite.All"
    )
    assert ev.delegates.check.ok and ev.sent_mail.check.ok  # Global Reader reads Exchange
    text = render_eviction_evidence(ev)
    assert "the app lacks UserAuthenticationMethod\\.Read\\.All" in text


def test_each_action_evicts_only_the_flagged_and_a_second_run_changes_nothing(
    tenant: str, emulator: Emulator
) -> None:
    ev = _gather(tenant, emulator, ROB)
    plan = eviction_plan(ev)
    rob = emulator.state.user("contoso", ROB)

    def targets(kind: ActionKind) -> tuple[ActionTarget, ...]:
        action = plan.action(kind)
        assert action is not None
        return action.targets

    first = [
        remove_sign_in_methods(tenant, rob.id, targets(ActionKind.REMOVE_SIGN_IN_METHODS)),
        revoke_oauth_grants(tenant, rob.id, targets(ActionKind.REVOKE_OAUTH_GRANTS)),
        remove_mailbox_delegates(tenant, ROB, targets(ActionKind.REMOVE_MAILBOX_DELEGATES)),
    ]
    assert [len(r.changed) for r in first] == [1, 1, 3]
    assert all(r.ok and r.request_ids and not r.already for r in first)
    assert [m.kind for m in rob.auth_methods] == ["phone"]  # the user's own method stays
    grants = [
        g for g in emulator.state.tenant("contoso").grants.values() if g.principal_id == rob.id
    ]
    assert len(grants) == 1 and "Mail.Send" not in grants[0].scopes
    assert rob.mailbox_permissions == [] and rob.send_as == []
    assert rob.send_on_behalf == [MEGAN]
    writes = len(emulator.writes())

    second = [
        remove_sign_in_methods(tenant, rob.id, targets(ActionKind.REMOVE_SIGN_IN_METHODS)),
        revoke_oauth_grants(tenant, rob.id, targets(ActionKind.REVOKE_OAUTH_GRANTS)),
        remove_mailbox_delegates(tenant, ROB, targets(ActionKind.REMOVE_MAILBOX_DELEGATES)),
    ]
    assert [len(r.already) for r in second] == [1, 1, 3]
    assert all(r.changed == () and r.detail.endswith("already done") for r in second)
    assert len(emulator.writes()) == writes  # nothing written the second time


def test_block_and_re_enable_sign_in_are_idempotent(tenant: str, emulator: Emulator) -> None:
    rob = emulator.state.user("contoso", ROB)
    blocked = block_sign_in(tenant, rob.id)
    assert blocked.changed == (rob.id,) and blocked.request_ids and rob.enabled is False
    assert block_sign_in(tenant, rob.id).already == (rob.id,)
    enabled = enable_sign_in(tenant, rob.id)
    assert enabled.action is ActionKind.ENABLE_SIGN_IN and enabled.changed == (rob.id,)
    assert rob.enabled is True
    assert enable_sign_in(tenant, rob.id).already == (rob.id,)
    assert [w.endpoint for w in emulator.writes()] == ["graph.set_account_enabled"] * 2


def _flagged_user(emulator: Emulator, upn: str, methods: list[dict[str, Any]]) -> Any:
    return emulator.state.add_user("contoso", upn, auth_methods=methods)


def test_the_default_method_is_removed_after_the_others(tenant: str, emulator: Emulator) -> None:
    recent = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    user = _flagged_user(
        emulator,
        "dee@contoso.com",
        [
            {"type": "microsoftAuthenticator", "registered": recent, "default": True},
            {"type": "fido2", "display_name": "Key", "registered": recent},
        ],
    )
    ids = [m.id for m in user.auth_methods]  # the default first: the task must defer it
    record = remove_sign_in_methods(
        tenant, user.id, tuple(ActionTarget(id=i, label=i) for i in ids)
    )
    assert set(record.changed) == set(ids) and record.ok
    assert user.auth_methods == []
    statuses = [w.status for w in emulator.writes()]
    assert statuses == [400, 204, 204]


def test_a_default_method_next_to_the_users_own_is_reported_not_forced(
    tenant: str, emulator: Emulator
) -> None:
    recent = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    user = _flagged_user(
        emulator,
        "eve@contoso.com",
        [
            {"type": "microsoftAuthenticator", "registered": recent, "default": True},
            {"type": "phone", "phone_number": "+44 7700 900111"},
        ],
    )
    attacker = user.auth_methods[0].id
    record = remove_sign_in_methods(tenant, user.id, (ActionTarget(id=attacker, label="x"),))
    assert record.failed == ((attacker, DEFAULT_REFUSED),)
    assert [m.kind for m in user.auth_methods] == ["microsoftAuthenticator", "phone"]


def _logs(flow_run_id: Any, marker: str, timeout: float = 20) -> list[str]:
    deadline = time.monotonic() + timeout
    messages: list[str] = []
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            logs = client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
            )
            messages = [log.message for log in logs]
            if any(marker in m for m in messages):
                return messages
            time.sleep(0.3)
    return messages


def test_ip_addresses_and_subjects_never_reach_the_logs(tenant: str, emulator: Emulator) -> None:
    rob = emulator.state.user("contoso", ROB)
    window = _window(emulator, ROB)
    domains = tenant_domains(rob.smtp_addresses())

    @flow(name="eviction-evidence-log-check")
    def gather() -> EvictionEvidence:
        return EvictionEvidence(
            account=ROB,
            window=window,
            methods=review_sign_in_methods(tenant, rob.id, window),
            sign_ins=review_sign_ins(tenant, rob.id, window),
            grants=review_oauth_grants(tenant, rob.id, window),
            delegates=review_mailbox_delegates(tenant, ROB, domains),
            sent_mail=review_sent_mail(tenant, rob.primary_smtp, window, domains),
        )

    state = gather(return_state=True)
    assert state.is_completed(), state.message
    ev = state.result()
    messages = _logs(state.state_details.flow_run_id, "Sent mail in the window")
    assert any("Sign-ins in the window: 10 (1 failed), 1 new country" in m for m in messages)
    assert any("Sent mail in the window: 135 message(s)" in m for m in messages)
    joined = "\n".join(messages)
    for private in PERSONAL:
        assert private not in joined, private
    # ...while the evidence artifact does carry them
    text = render_eviction_evidence(ev)
    assert "203\\.0\\.113\\.45" in text and "Updated banking details" in text
