"""The evidence and clean-up tasks against the emulated tenant (demo seed)."""

from __future__ import annotations

from prefect.variables import Variable

from emulator import Emulator
from playbook.evidence import Indicator, counter_variable_name, tenant_domains
from tasks.clear_forwarding import clear_forwarding
from tasks.count_unblocks import read_unblock_count, record_unblock
from tasks.disable_suspicious_rules import disable_suspicious_rules
from tasks.review_admin_roles import review_admin_roles
from tasks.review_inbox_rules import review_inbox_rules
from tasks.review_mailbox_forwarding import review_mailbox_forwarding

ROB = "rob@contoso.com"
DOMAINS = tenant_domains([ROB, "rob@contoso.onmicrosoft.com", "robert.young@contoso.com"])


def _rules(emulator: Emulator) -> dict[str, bool]:
    return {r.name: r.enabled for r in emulator.state.user("contoso", ROB).inbox_rules}


def test_rob_has_a_hidden_forwarding_rule_and_external_forwarding(
    tenant: str, emulator: Emulator
) -> None:
    review = review_inbox_rules(tenant, ROB, DOMAINS)
    by_name = {r.name: r for r in review.rules}
    assert set(by_name) == {"Newsletters", "."}
    attacker = by_name["."]
    assert attacker.hidden and attacker.active_threat
    assert attacker.external_recipients == ("invoices.rob.young@gmail.com",)
    assert Indicator.DELETES in attacker.indicators
    assert not by_name["Newsletters"].suspicious

    fwd = review_mailbox_forwarding(tenant, ROB, DOMAINS)
    assert fwd.forwards and fwd.external and fwd.deliver_to_mailbox_and_forward
    assert fwd.forwarding_smtp_address == "invoices.rob.young@gmail.com"
    cmdlets = [r.cmdlet for r in emulator.requests if r.cmdlet]
    assert cmdlets.count("Get-InboxRule") == 2 and "Get-Mailbox" in cmdlets
    assert emulator.writes() == []  # reviews are read-only


def test_admin_roles(tenant: str, emulator: Emulator) -> None:
    lee = emulator.state.user("contoso", "admin.lee@contoso.com")
    rob = emulator.state.user("contoso", ROB)
    assert review_admin_roles(tenant, lee.id).roles == ("Global Administrator",)
    assert review_admin_roles(tenant, rob.id).roles == ()


def test_disabling_suspicious_rules_is_idempotent(tenant: str, emulator: Emulator) -> None:
    attacker = next(r for r in review_inbox_rules(tenant, ROB, DOMAINS).rules if r.name == ".")
    first = disable_suspicious_rules(tenant, ROB, (attacker.identity,))
    assert first.changed == (attacker.identity,) and first.request_ids
    assert _rules(emulator) == {"Newsletters": True, ".": False}
    second = disable_suspicious_rules(tenant, ROB, (attacker.identity, f"{ROB}\\999"))
    assert second.changed == () and len(second.already) == 2
    assert [w.cmdlet for w in emulator.writes()] == ["Disable-InboxRule"]


def test_clearing_forwarding_is_idempotent(tenant: str, emulator: Emulator) -> None:
    first = clear_forwarding(tenant, ROB)
    assert first.changed == (ROB,) and first.detail == "forwarding cleared"
    user = emulator.state.user("contoso", ROB)
    assert user.forwarding_smtp_address is None and user.forwarding_address is None
    assert user.deliver_to_mailbox_and_forward is False
    second = clear_forwarding(tenant, ROB)
    assert second.changed == () and second.detail == "no forwarding was set"
    assert [w.cmdlet for w in emulator.writes()] == ["Set-Mailbox"]


def test_unblock_counter_lives_in_a_variable_per_tenant_and_account(tenant: str) -> None:
    address = "counter-test@contoso.com"
    name = counter_variable_name(tenant, address)
    Variable.unset(name)
    assert read_unblock_count(tenant, address) == 0
    assert record_unblock(tenant, address) == 1
    assert record_unblock(tenant, address.upper()) == 2
    assert read_unblock_count(tenant, address) == 2
    stored = Variable.get(name)
    assert isinstance(stored, dict) and stored["count"] == 2
    assert "counter-test" not in name
    assert read_unblock_count("fabrikam", address) == 0
