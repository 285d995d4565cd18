"""GraphClient against the emulator: real HTTPS, real MSAL, tenant state as the oracle."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from emulator import Emulator
from m365 import M365Clients, build_clients
from m365.errors import InvalidIdentifierError, NotFoundError, PermissionDeniedError
from m365.models import User

from .helpers import TENANT, calls

PASSWORD = SecretStr("Xq7#vR2!mP9$kL4@wZ")


@pytest.fixture
def alice(emulator: Emulator, domain: str) -> str:
    """A user whose UPN, primary address and an alias all differ."""
    upn = f"alice.liddell@{domain}"
    emulator.state.add_user(
        TENANT,
        upn,
        display_name="Alice Liddell",
        mail=f"alice@{domain}",
        proxy_addresses=[
            f"SMTP:alice@{domain}",
            f"smtp:a.liddell@{domain}",
            "X500:/o=ExchangeLabs",
        ],
        inbox_rules=[
            {"name": "fwd", "forward_to": ["mallory@evil.example"]},
            {"name": "hidden-move", "hidden": True, "move_to_folder": "RSS Feeds"},
        ],
    )
    return upn


def test_get_user_by_upn(clients: M365Clients, alice: str, domain: str) -> None:
    user = clients.graph.get_user(alice)
    assert isinstance(user, User)
    assert user.user_principal_name == alice
    assert user.mail == f"alice@{domain}"
    assert f"a.liddell@{domain}" in user.smtp_addresses
    assert user.account_enabled is True


def test_get_user_by_object_id(clients: M365Clients, alice: str) -> None:
    by_upn = clients.graph.get_user(alice)
    assert clients.graph.get_user(by_upn.id) == by_upn


@pytest.mark.parametrize("address", ["alice@{d}", "a.liddell@{d}", "A.LIDDELL@{D}", "  alice@{d} "])
def test_get_user_by_mail_or_proxy_address(
    clients: M365Clients, emulator: Emulator, alice: str, domain: str, address: str
) -> None:
    ident = address.format(d=domain, D=domain.upper())
    user = clients.graph.get_user(ident)
    assert user.user_principal_name == alice
    # /users/{address} is a 404 first, then the $filter lookup finds the user.
    assert [r.status for r in calls(emulator, "graph.get_user")] == [404]
    assert calls(emulator, "graph.list_users")


def test_get_user_not_found(clients: M365Clients, domain: str) -> None:
    with pytest.raises(NotFoundError) as info:
        clients.graph.get_user(f"nobody@{domain}")
    assert info.value.status == 404
    with pytest.raises(NotFoundError) as info:
        clients.graph.get_user("00000000-0000-0000-0000-000000000000")
    assert info.value.request_id  # Graph's request-id header is kept


def test_apostrophe_is_escaped_not_refused(
    clients: M365Clients, emulator: Emulator, domain: str
) -> None:
    upn = f"o'brien@{domain}"
    emulator.state.add_user(TENANT, upn, mail=upn)
    assert clients.graph.get_user(upn).user_principal_name == upn
    with pytest.raises(NotFoundError):
        clients.graph.get_user(f"o'neil@{domain}")  # the quote stays inside the literal


HOSTILE = [
    "alice@contoso.com' or 1 eq 1 or mail eq 'x",
    "' or true",
    "alice'@contoso.com'",
    "../../servicePrincipals",
    "alice/../bob@contoso.com",
    "alice@contoso.com/revokeSignInSessions",
    "alice@contoso.com\r\nX-Injected: 1",
    "alice@contoso.com\n",
    "alice@contoso.com?$select=passwordProfile",
    "alice@contoso.com#frag",
    'alice"@contoso.com',
    "alice\\bob@contoso.com",
    "alice@contoso.com\x00",
    "",
    "   ",
    "a" * 100_000 + "@contoso.com",
    "x" * 102_400,
]


@pytest.mark.parametrize("identifier", HOSTILE, ids=lambda s: repr(s[:30]))
def test_hostile_identifiers_rejected_before_any_request(
    clients: M365Clients, emulator: Emulator, identifier: str
) -> None:
    graph = clients.graph
    for call in (
        lambda: graph.get_user(identifier),
        lambda: graph.reset_password(identifier, PASSWORD),
        lambda: graph.revoke_sessions(identifier),
        lambda: graph.create_temporary_access_pass(identifier),
        lambda: graph.list_directory_roles(identifier),
        lambda: graph.get_service_principal_roles(identifier),
    ):
        with pytest.raises(InvalidIdentifierError) as info:
            call()
        assert isinstance(info.value, ValueError)
        assert identifier.strip() == "" or identifier[:20] not in str(info.value)
    assert emulator.requests == []  # not even a token request


def test_reset_password(clients: M365Clients, emulator: Emulator, alice: str) -> None:
    user = clients.graph.get_user(alice)
    receipt = clients.graph.reset_password(user.id, PASSWORD)
    assert receipt.status == 204
    assert receipt.operation == "reset_password"
    assert receipt.request_id
    assert PASSWORD.get_secret_value() not in repr(receipt)
    assert emulator.state.password_matches(alice, PASSWORD.get_secret_value(), TENANT)
    record = emulator.state.user(TENANT, alice)
    assert record.force_change_password_next_sign_in is True
    assert record.password_resets == 1
    (write,) = calls(emulator, "graph.update_user")
    assert "passwordProfile.password" in write.changed_fields


def test_reset_password_without_forced_change(
    clients: M365Clients, emulator: Emulator, alice: str
) -> None:
    clients.graph.reset_password(alice, PASSWORD, force_change=False)
    assert emulator.state.user(TENANT, alice).force_change_password_next_sign_in is False


def test_revoke_sessions(clients: M365Clients, emulator: Emulator, alice: str) -> None:
    receipt = clients.graph.revoke_sessions(alice)
    assert 200 <= receipt.status < 300
    assert emulator.state.user(TENANT, alice).session_revocations == 1


def test_temporary_access_pass(clients: M365Clients, emulator: Emulator, alice: str) -> None:
    tap = clients.graph.create_temporary_access_pass(alice, lifetime_minutes=30)
    assert isinstance(tap.temporary_access_pass, SecretStr)
    assert tap.lifetime_in_minutes == 30
    assert tap.is_usable_once is True
    secret = tap.temporary_access_pass.get_secret_value()
    assert secret not in repr(tap)
    assert emulator.state.tap_matches(alice, secret, TENANT)


@pytest.mark.parametrize("minutes", [0, 9, 43201])
def test_tap_lifetime_checked_before_any_request(
    clients: M365Clients, emulator: Emulator, alice: str, minutes: int
) -> None:
    with pytest.raises(ValueError):
        clients.graph.create_temporary_access_pass(alice, lifetime_minutes=minutes)
    assert emulator.requests == []


def test_list_directory_roles(clients: M365Clients, emulator: Emulator, domain: str) -> None:
    helpdesk = f"helpdesk@{domain}"
    emulator.state.add_user(TENANT, helpdesk, directory_roles=["Helpdesk Administrator"])
    roles = clients.graph.list_directory_roles(helpdesk)
    assert [r.display_name for r in roles] == ["Helpdesk Administrator"]
    assert roles[0].role_template_id == "729827e3-9c14-49f7-bb1b-9608f156bbb8"


def test_service_principal_roles(clients: M365Clients, emulator: Emulator, config) -> None:  # type: ignore[no-untyped-def]
    roles = clients.graph.get_service_principal_roles(config.client_id)
    app = emulator.state.tenant(TENANT).app(config.client_id)
    assert {r.role_template_id for r in roles} == set(app.wids)
    assert roles  # the playbook app holds Entra roles


def test_reset_password_denied_under_least_privilege(emulator: Emulator, alice: str) -> None:
    reader = build_clients(emulator.tenant_config(TENANT, app="reader"))
    assert reader.graph.get_user(alice).user_principal_name == alice  # reading is allowed
    with pytest.raises(PermissionDeniedError) as info:
        reader.graph.reset_password(alice, PASSWORD)
    assert info.value.status == 403
    assert info.value.code == "Authorization_RequestDenied"
    assert emulator.state.user(TENANT, alice).password_resets == 0
    assert [w for w in emulator.writes() if 200 <= w.status < 300] == []  # refused, not applied
