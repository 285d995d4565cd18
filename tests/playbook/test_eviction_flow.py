"""Evicting the attacker in unblock-user, end to end: the real flow, a real pause and resume on a
real Prefect server, and the emulator seeded with the demo tenant (rob is the compromised
account: an attacker's Authenticator next to his own phone, a Mail.Send consent, a guest with
Full Access, Send As and Send on Behalf, sign-ins from a new country, a spam burst)."""

from __future__ import annotations

import html
import json
from collections.abc import Iterator
from typing import Any

import pytest

from emulator import Emulator, demo_seed_path, load_seed

from ..handover_keys import PUBLIC_KEY
from ..helpers.runs import (
    EVICT_ALL,
    artifact_markdown,
    effective,
    resume,
    run_input,
    wait_until_paused,
)
from .helpers import TENANT, start_unblock

pytestmark = pytest.mark.usefixtures("tenant_block", "served")

ROB = "rob@contoso.com"
GUEST = "rob.young.invoices_gmail.com#EXT#@contoso.onmicrosoft.com"
MEGAN_UPN = "megan.bowen@contoso.onmicrosoft.com"
UNBLOCK = "paused-approve-unblock-1"
EVICTIONS = ("remove_sign_in_methods", "revoke_oauth_grants", "remove_mailbox_delegates")
REENABLE = "Sign-in stays blocked (block_sign_in)"


def _input(run_id: Any, key: str) -> Any:
    return run_input(run_id, key)


def _plain(markdown: str) -> str:
    """The text as the reader sees it (values are escaped for Markdown)."""
    return html.unescape(markdown.replace("\\", ""))


def _description(run_id: Any) -> str:
    return _plain(_input(run_id, f"{UNBLOCK}-description"))


def _evidence(run_id: Any) -> str:
    return _plain(artifact_markdown(run_id, "unblock-evidence"))


def _report(run_id: Any) -> str:
    return _plain(artifact_markdown(run_id, "unblock-user-report"))


def _rob(emulator: Emulator) -> Any:
    return emulator.state.user(TENANT, ROB)


def _methods(emulator: Emulator) -> set[str]:
    return {m.kind for m in _rob(emulator).auth_methods}


def _grant_scopes(emulator: Emulator) -> list[list[str]]:
    rob = _rob(emulator)
    grants = emulator.state.tenant(TENANT).grants.values()
    return [g.scopes for g in grants if g.principal_id == rob.id]


def _delegates(emulator: Emulator) -> dict[str, Any]:
    rob = _rob(emulator)
    return {
        "full_access": {p.user for p in rob.mailbox_permissions},
        "send_as": set(rob.send_as),
        "send_on_behalf": set(rob.send_on_behalf),
    }


def _ok(emulator: Emulator, endpoint: str, cmdlet: str | None = None) -> int:
    return len(effective(emulator, endpoint, cmdlet))


EVICTION_WRITES = (
    ("graph.delete_auth_method", None),
    ("graph.delete_oauth2_grant", None),
    ("exo.Remove-MailboxPermission", None),
    ("exo.Remove-RecipientPermission", None),
    ("exo.Set-Mailbox", None),
)


def _eviction_writes(emulator: Emulator) -> int:
    return sum(_ok(emulator, e, c) for e, c in EVICTION_WRITES)


# -- approving with each action ticked -----------------------------------------------------------


def test_approving_each_action_evicts_the_attacker_and_keeps_the_users_own(
    emulator: Emulator,
) -> None:
    run = start_unblock(account=ROB, block_sign_in=True, handover="none")
    paused = wait_until_paused(run.name)
    assert _rob(emulator).enabled is False  # contained right after the reset

    # the form offers each action, unticked, saying what it does and whether it can be undone
    form = _input(paused.id, f"{UNBLOCK}-schema")["properties"]
    for box in EVICT_ALL:
        assert form[box]["type"] == "boolean" and form[box]["default"] is False, box
    assert "Galaxy S21" in form["remove_sign_in_methods"]["description"]
    assert "Cannot be undone" in form["remove_sign_in_methods"]["description"]
    assert "Mail Sync Pro" in form["revoke_oauth_grants"]["description"]
    description = _description(paused.id)
    assert "Sign-in method registered inside the window" in description
    assert "203.0.113.45" not in description  # IP addresses stay in the evidence artifact
    evidence = _evidence(paused.id)
    for section in ("Sign-in methods", "Sign-ins in the window", "App consents", "Delegates"):
        assert section.lower() in evidence.lower(), section
    assert "203.0.113.45" in evidence and "FLAGGED" in evidence

    revocations = _rob(emulator).session_revocations
    resume(paused, decision="approve", approver="bob", **EVICT_ALL)
    state = run.state()
    assert state.name == "Unblocked", state.message

    assert _methods(emulator) == {"phone"}  # the attacker's Authenticator gone, Rob's phone kept
    assert [s for s in _grant_scopes(emulator) if "Mail.Send" in s] == []
    assert len(_grant_scopes(emulator)) == 1  # Adobe Acrobat (no mail scope) stays
    delegates = _delegates(emulator)
    assert GUEST not in delegates["full_access"] | delegates["send_as"]
    assert delegates["send_on_behalf"] == {MEGAN_UPN}  # the internal delegate stays
    assert _rob(emulator).enabled is True  # re-enabled by the approval
    assert _rob(emulator).session_revocations == revocations + 1  # revoked again after eviction

    report = _report(paused.id)
    assert "Eviction actions" in report and "request ids" in report
    assert "already done" not in report
    assert REENABLE not in report


def test_a_second_run_changes_nothing_and_reports_each_action_as_already_done(
    emulator: Emulator,
) -> None:
    # Two runs for the same account, both paused with the same evidence; the second one is
    # started first because a run stops at an account that is already disabled.
    second = start_unblock(account=ROB, handover="none", ticket="INC-1002")
    second_paused = wait_until_paused(second.name)
    first = start_unblock(account=ROB, block_sign_in=True, handover="none")
    first_paused = wait_until_paused(first.name)
    for paused in (first_paused, second_paused):
        assert set(EVICTIONS) <= set(_input(paused.id, f"{UNBLOCK}-schema")["properties"])

    resume(first_paused, decision="approve", approver="bob", **EVICT_ALL)
    assert first.state().name == "Unblocked"
    writes = _eviction_writes(emulator)
    revocations = _rob(emulator).session_revocations
    assert writes >= 5 and _rob(emulator).enabled is True

    resume(second_paused, decision="approve", approver="bob", **{b: True for b in EVICTIONS})
    state = second.state()
    assert state.name == "Unblocked", state.message
    assert _eviction_writes(emulator) == writes  # no method, grant or delegate write
    assert _rob(emulator).session_revocations == revocations  # nothing changed: no new revoke
    report = _report(second_paused.id)
    for title in (
        "Remove the flagged sign-in methods",
        "Revoke the flagged app consents",
        "Remove the flagged mailbox delegates",
    ):
        assert f"**{title}**: 0 done" not in report and f"**{title}**: " in report, title
    assert ": done" not in report and "NOT done" not in report
    # the Authenticator, the app consent and the guest's three permissions
    assert report.count("already done before this action") == 5
    assert _methods(emulator) == {"phone"}


# -- sign-in blocked at the start: only the approval re-enables it -------------------------------


@pytest.mark.parametrize("decision", ["reject", "approve"])
def test_sign_in_blocked_at_the_start_stays_blocked_unless_the_approval_ticks_it(
    emulator: Emulator, decision: str
) -> None:
    run = start_unblock(account=ROB, block_sign_in=True, handover="none")
    paused = wait_until_paused(run.name)
    resume(paused, decision=decision, approver="bob")  # nothing ticked
    state = run.state()
    assert state.name == ("Rejected" if decision == "reject" else "Unblocked"), state.message
    assert _rob(emulator).enabled is False
    assert _ok(emulator, "graph.set_account_enabled") == 1  # the block only
    report = _report(paused.id)
    assert REENABLE in report and "accountEnabled true" in report
    # nothing the approver left unticked was removed
    assert "microsoftAuthenticator" in _methods(emulator)
    assert _eviction_writes(emulator) == 0
    # a later run leaves the disabled account alone: re-enabling is an administrator's call
    writes = len(emulator.writes())
    again = start_unblock(account=ROB, handover="none", ticket="INC-1003").state()
    assert again.name == "AccountDisabled", again.message
    assert len(emulator.writes()) == writes


def test_a_run_without_block_sign_in_never_touches_account_enabled(emulator: Emulator) -> None:
    run = start_unblock(account=ROB, handover="none")
    paused = wait_until_paused(run.name)
    assert "enable_sign_in" not in _input(paused.id, f"{UNBLOCK}-schema")["properties"]
    resume(paused, decision="approve", approver="bob")
    assert run.state().name == "Unblocked"
    assert _ok(emulator, "graph.set_account_enabled") == 0 and _rob(emulator).enabled is True


# -- what cannot be read still reaches the approval -----------------------------------------------

# One app per missing permission (the emulator answers as Microsoft does without it).
LACKING: dict[str, dict[str, Any]] = {
    "no-methods": {"drop": ["UserAuthenticationMethod.ReadWrite.All"]},
    "no-audit": {"drop": ["AuditLog.Read.All"]},
    "no-grants": {"drop": ["DelegatedPermissionGrant.ReadWrite.All", "Directory.Read.All"]},
    "no-trace": {"hide": ["Get-MessageTraceV2"]},
    "no-delegates": {"hide": ["Get-MailboxPermission", "Get-RecipientPermission"]},
    # reads delegates, but its role lacks the cmdlet that removes Send As
    "no-remove-send-as": {"hide": ["Remove-RecipientPermission"]},
}
# What the approval's short description says about the item that could not be read.
EXPECTED_LINE = {
    "no-methods": "sign-in methods (the app lacks UserAuthenticationMethod.Read.All)",
    "no-audit": "sign-ins (the app lacks AuditLog.Read.All and Directory.Read.All)",
    "no-grants": "app consents (the app lacks DelegatedPermissionGrant.ReadWrite.All)",
    "no-trace": "sent mail (the app lacks the Exchange Administrator role)",
    "no-delegates": "mailbox delegates (the app lacks the Exchange Administrator role)",
}


@pytest.fixture(scope="module")
def lacking_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """The demo tenant with one extra app per missing eviction permission."""
    seed = load_seed(demo_seed_path())
    contoso = seed.tenants[0]
    base = next(a for a in contoso.apps if a.name == "playbook")
    for n, (name, lack) in enumerate(LACKING.items()):
        contoso.apps.append(
            base.model_copy(
                update={
                    "name": name,
                    "client_id": f"00000000-0000-4000-8000-00000000000{n}",
                    "client_secret": f"emulator-secret-{name}-not-real",
                    "certificate": False,
                    "roles": [r for r in base.roles if r not in lack.get("drop", [])],
                    "exchange_hidden_cmdlets": lack.get("hide", []),
                }
            )
        )
    yield from _serve(seed, tmp_path_factory)


def _serve(seed: Any, tmp: pytest.TempPathFactory) -> Iterator[Emulator]:
    """A second emulator, for the module, on a seed changed for its tests."""
    with Emulator(seed, state_dir=tmp.mktemp("emulator")) as emu:
        yield emu


def _profile(emu: Emulator, app: str) -> str:
    from orchestration import clients
    from orchestration.blocks import M365Tenant

    name = f"contoso-{app}"
    M365Tenant.from_config(
        emu.tenant_config(TENANT, app=app, credential="secret"), handover_public_key=PUBLIC_KEY
    ).save(name, overwrite=True)
    clients.forget(name)
    return name


@pytest.mark.parametrize("app", list(EXPECTED_LINE))
def test_an_app_without_a_new_permission_still_reaches_the_approval(
    lacking_emulator: Emulator, app: str
) -> None:
    lacking_emulator.reset()
    run = start_unblock(account=ROB, tenant=_profile(lacking_emulator, app), handover="none")
    paused = wait_until_paused(run.name)
    description = _description(paused.id)
    assert "Not checked: " in description and EXPECTED_LINE[app] in description, description
    assert "could not be read" in description  # in the risk line too
    assert "not checked: the app lacks" in _evidence(paused.id)
    resume(paused, decision="reject", approver="bob")
    assert run.state().name == "Rejected"


def test_a_ticked_action_that_cannot_be_completed_stops_the_unblock(
    lacking_emulator: Emulator,
) -> None:
    lacking_emulator.reset()
    tenant = _profile(lacking_emulator, "no-remove-send-as")
    run = start_unblock(account=ROB, tenant=tenant, handover="none")
    paused = wait_until_paused(run.name)
    resume(paused, decision="approve", approver="bob", remove_mailbox_delegates=True)
    state = run.state()
    assert state.name == "EvictionIncomplete", state.message
    assert lacking_emulator.state.is_restricted(TENANT, ROB)
    assert _ok(lacking_emulator, "exo.Remove-BlockedSenderAddress") == 0
    report = _report(paused.id)
    assert "NOT done" in report
    # the Full Access removal it could do was done; Send As was refused and is still there
    assert GUEST not in _delegates(lacking_emulator)["full_access"]
    assert GUEST in _delegates(lacking_emulator)["send_as"]


def test_a_tenant_without_entra_id_p1_shows_needs_p1_not_a_failure(emulator: Emulator) -> None:
    emulator.state.update_settings(TENANT, entra_id_p1=False)
    run = start_unblock(account=ROB, handover="none")
    paused = wait_until_paused(run.name)
    assert "Not checked: sign-ins (needs Entra ID P1)." in _description(paused.id)
    evidence = _evidence(paused.id)
    assert "needs Entra ID P1." in evidence
    assert 'Microsoft Authenticator "Galaxy S21"' in evidence  # the other items were still read
    resume(paused, decision="reject", approver="bob")
    assert run.state().name == "Rejected"


def test_key_findings_of_the_demo_account_fit_the_approval(emulator: Emulator) -> None:
    """The short description keeps to its eight lines however much was flagged."""
    run = start_unblock(account=ROB, handover="none")
    paused = wait_until_paused(run.name)
    description = _description(paused.id)
    resume(paused, decision="reject", approver="bob")
    assert run.state().name == "Rejected"
    findings = [line for line in description.splitlines() if line.startswith("- ")]
    assert 1 < len(findings) <= 8
    assert "more finding(s) in the full evidence" in description


def test_the_dry_run_plan_lists_the_containment_and_each_eviction_action(
    emulator: Emulator,
) -> None:
    from .helpers import run_unblock

    state = run_unblock(account=ROB, block_sign_in=True, dry_run=True)
    assert state.name == "DryRun", state.message
    assert emulator.writes() == []
    report = _report(state.state_details.flow_run_id)
    assert "Block sign-in (accountEnabled false) right after the reset" in report
    for title in (
        'Remove the flagged sign-in methods (Microsoft Authenticator "Galaxy S21")',
        "Revoke the flagged app consents (Mail Sync Pro",
        "Remove the flagged mailbox delegates (Full Access",
        "Re-enable sign-in",
    ):
        assert f"Offer in the approval form, unticked: {title}" in report, title
    assert "revoke the sessions again" in report
    assert "203.0.113.45" not in report  # personal data stays out of the report


# -- names the attacker chose are rendered inert -------------------------------------------------

# A device name and an app name are the attacker's to choose: links, HTML, template syntax and a
# line break that tries to start a list item of its own.
HOSTILE = "Pixel](https://evil.example/x) <img src=x onerror=alert(1)> **now** {{7*7}}\n- fake"


@pytest.fixture(scope="module")
def hostile_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    seed = load_seed(demo_seed_path()).model_dump()
    rob = next(u for u in seed["tenants"][0]["users"] if u["upn"] == ROB)
    next(m for m in rob["auth_methods"] if m["type"] == "microsoftAuthenticator")[
        "display_name"
    ] = HOSTILE
    next(g for g in rob["oauth_grants"] if "Mail.Send" in g["scopes"])["app"] = HOSTILE
    yield from _serve(seed, tmp_path_factory)


def test_names_the_attacker_chose_are_inert_in_the_form_the_evidence_and_the_report(
    hostile_emulator: Emulator,
) -> None:
    run = start_unblock(account=ROB, tenant=_profile(hostile_emulator, "playbook"), handover="none")
    paused = wait_until_paused(run.name)
    form = _input(paused.id, f"{UNBLOCK}-schema")["properties"]
    texts = {
        "form": json.dumps([form[b]["description"] for b in EVICTIONS[:2]]),
        "description": _input(paused.id, f"{UNBLOCK}-description"),
        "evidence": artifact_markdown(paused.id, "unblock-evidence"),
    }
    assert "Pixel" in texts["form"] and "Pixel" in texts["evidence"]  # shown, as text
    resume(paused, decision="reject", approver="bob")
    assert run.state().name == "Rejected"
    texts["report"] = artifact_markdown(paused.id, "unblock-user-report")
    for where, text in texts.items():
        for live in ("](https://evil", "<img", "**now**", "{{7*7}}", "\n- fake", "\\n- fake"):
            assert live not in text, (where, live)
