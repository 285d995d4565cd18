"""ExchangeAdminClient against the emulator's InvokeCommand endpoint."""

from __future__ import annotations

from datetime import timedelta

import pytest

from emulator import Emulator
from m365 import M365Clients, build_clients
from m365.errors import (
    InvalidIdentifierError,
    NotFoundError,
    PermissionDeniedError,
    UnblockLimitError,
)

from .helpers import TENANT, calls

SPAM_REASON = (
    "OutboundSpamLast24Hours=12;OutboundMailLast24Hours=20;OutboundSpamPercent=60;"
    "Last Spam Message MessagetraceId:0b3f5d7e-2222-4c4c-8d8d-abcdef012345"
)
LIMIT_REASON = (
    "EmailSendingLimitExceeded;InternalRecipientCountToday=5;ExternalRecipientCountToday=501;"
    "ExceedingLimitType=External;Last MessagetraceId=6e7f1c2a;LastMessageRcptCount=1;"
)


@pytest.fixture
def bob(emulator: Emulator, domain: str) -> str:
    upn = f"bob@{domain}"
    emulator.state.add_user(
        TENANT,
        upn,
        display_name="Bob",
        mail=upn,
        forwarding={
            "forwarding_smtp_address": "smtp:drop@evil.example",
            "deliver_to_mailbox_and_forward": True,
        },
        inbox_rules=[
            {"name": "visible", "forward_to": ["drop@evil.example"]},
            {"name": "sneaky", "hidden": True, "delete_message": True},
        ],
    )
    emulator.state.restrict(TENANT, upn, reason=LIMIT_REASON)
    return upn


def test_get_blocked_senders_lists_and_parses(clients: M365Clients, bob: str) -> None:
    senders = {s.sender_address.lower(): s for s in clients.exchange.get_blocked_senders()}
    entry = senders[bob.lower()]
    assert entry.reason.kind == "EmailSendingLimitExceeded"
    assert entry.reason.external_recipient_count_today == 501
    assert entry.reason.exceeding_limit_type == "External"
    assert entry.created is not None
    # Exchange writes "...07.0000000+00:00": the zone must survive the 7-digit fraction, or the
    # password guard would compare a naive with an aware datetime.
    assert entry.created.utcoffset() == timedelta(0)


def test_request_wire_format(clients: M365Clients, emulator: Emulator, bob: str) -> None:
    clients.exchange.get_blocked_senders(bob)
    (record,) = calls(emulator, "exo.Get-BlockedSenderAddress")
    assert record.method == "POST"
    assert record.path.endswith(f"/{emulator.state.tenant(TENANT).tenant_id}/InvokeCommand")
    assert record.cmdlet == "Get-BlockedSenderAddress"
    assert record.parameters == {"SenderAddress": bob}
    assert record.status == 200


def test_filtered_get(clients: M365Clients, bob: str, domain: str) -> None:
    (only,) = clients.exchange.get_blocked_senders(bob.upper())
    assert only.sender_address.lower() == bob.lower()
    assert clients.exchange.get_blocked_senders(f"not-listed@{domain}") == []


def test_paging_follows_next_link(clients: M365Clients, emulator: Emulator, domain: str) -> None:
    for i in range(250):
        emulator.state.restrict(TENANT, f"bulk{i:03d}@{domain}", reason=SPAM_REASON)
    senders = clients.exchange.get_blocked_senders()
    addresses = {s.sender_address.lower() for s in senders}
    assert {f"bulk{i:03d}@{domain}" for i in range(250)} <= addresses
    assert len(senders) == len(addresses)  # no page read twice
    pages = calls(emulator, "exo.Get-BlockedSenderAddress")
    assert len(pages) >= 3  # the emulator serves at most 100 per page
    assert all(p.method == "POST" for p in pages)
    spam = next(s for s in senders if s.sender_address.lower() == f"bulk000@{domain}")
    assert spam.reason.kind == "OutboundSpam"
    assert spam.reason.outbound_spam_percent == 60.0


def test_remove_blocked_sender(clients: M365Clients, emulator: Emulator, bob: str) -> None:
    emulator.state.update_settings(TENANT, removal_delay_seconds=0)
    receipt = clients.exchange.remove_blocked_sender(bob, LIMIT_REASON)
    assert receipt.status in (200, 204)
    assert receipt.target == bob
    assert emulator.state.unblock_count(TENANT, bob) == 1
    assert not emulator.state.is_restricted(TENANT, bob)
    assert clients.exchange.get_blocked_senders(bob) == []
    (write,) = emulator.writes()
    assert write.cmdlet == "Remove-BlockedSenderAddress"
    assert write.parameters.get("SenderAddress") == bob


def test_unblock_cap_gives_unblock_limit_error(
    clients: M365Clients, emulator: Emulator, bob: str
) -> None:
    emulator.state.update_settings(TENANT, unblock_cap=1)
    clients.exchange.remove_blocked_sender(bob)
    emulator.state.restrict(TENANT, bob, reason=LIMIT_REASON)
    with pytest.raises(UnblockLimitError) as info:
        clients.exchange.remove_blocked_sender(bob)
    assert info.value.status == 400
    assert "unblock limit" in str(info.value)
    assert info.value.request_id
    assert emulator.state.is_restricted(TENANT, bob)
    assert len(calls(emulator, "exo.Remove-BlockedSenderAddress")) == 2  # not retried


def test_mailbox_forwarding_read_and_clear(
    clients: M365Clients, emulator: Emulator, bob: str
) -> None:
    forwarding = clients.exchange.get_mailbox_forwarding(bob)
    assert forwarding.forwards
    assert forwarding.forwarding_smtp_address == "smtp:drop@evil.example"
    assert forwarding.deliver_to_mailbox_and_forward is True
    receipt = clients.exchange.clear_mailbox_forwarding(bob)
    assert receipt.status in (200, 204)
    user = emulator.state.user(TENANT, bob)
    assert user.forwarding_smtp_address is None
    assert user.forwarding_address is None
    assert user.deliver_to_mailbox_and_forward is False
    assert not clients.exchange.get_mailbox_forwarding(bob).forwards


def test_inbox_rules_include_hidden(clients: M365Clients, bob: str) -> None:
    rules = {r.name: r for r in clients.exchange.get_inbox_rules(bob)}
    assert set(rules) == {"visible", "sneaky"}
    assert rules["sneaky"].delete_message is True
    assert rules["sneaky"].hidden is True
    assert rules["visible"].hidden is False
    assert rules["visible"].forward_to
    assert all(r.identity for r in rules.values())
    visible_only = {r.name for r in clients.exchange.get_inbox_rules(bob, include_hidden=False)}
    assert visible_only == {"visible"}


def test_disable_inbox_rule(clients: M365Clients, emulator: Emulator, bob: str) -> None:
    rule = next(r for r in clients.exchange.get_inbox_rules(bob) if r.name == "visible")
    receipt = clients.exchange.disable_inbox_rule(bob, rule.identity)
    assert receipt.status in (200, 204)
    state_rules = {r.name: r for r in emulator.state.user(TENANT, bob).inbox_rules}
    assert state_rules["visible"].enabled is False
    assert state_rules["sneaky"].enabled is True


def test_unknown_mailbox_is_not_found(clients: M365Clients, domain: str) -> None:
    with pytest.raises(NotFoundError) as info:
        clients.exchange.get_mailbox_forwarding(f"ghost@{domain}")
    assert "couldn't be found" in str(info.value) or info.value.status == 404
    with pytest.raises(NotFoundError):
        clients.exchange.get_inbox_rules(f"ghost@{domain}")


def test_remove_denied_under_least_privilege(emulator: Emulator, bob: str) -> None:
    reader = build_clients(emulator.tenant_config(TENANT, app="reader"))
    assert reader.exchange.get_blocked_senders(bob)  # the reader may look
    with pytest.raises(PermissionDeniedError) as info:
        reader.exchange.remove_blocked_sender(bob)
    assert info.value.status == 403
    assert emulator.state.is_restricted(TENANT, bob)
    assert [w for w in emulator.writes() if 200 <= w.status < 300] == []  # refused, not applied


@pytest.mark.parametrize(
    "address",
    ["bob@contoso.com\r\nX: y", "bob", "bob@", "' or 1=1", "a" * 300 + "@contoso.com", 'b"@x.com'],
)
def test_malformed_sender_address_rejected_before_any_request(
    clients: M365Clients, emulator: Emulator, address: str
) -> None:
    with pytest.raises(InvalidIdentifierError):
        clients.exchange.get_blocked_senders(address)
    with pytest.raises(InvalidIdentifierError):
        clients.exchange.remove_blocked_sender(address)
    assert emulator.requests == []


def test_identity_with_control_characters_rejected(
    clients: M365Clients, emulator: Emulator
) -> None:
    with pytest.raises(InvalidIdentifierError):
        clients.exchange.get_mailbox_forwarding("bob\r\nSet-Mailbox")
    with pytest.raises(InvalidIdentifierError):
        clients.exchange.disable_inbox_rule("bob", "x" * 1000)
    assert emulator.requests == []
