"""Read-only smoke test against a real tenant. Skipped unless credentials are in the environment.

Set M365_LIVE_TENANT_ID, M365_LIVE_CLIENT_ID, M365_LIVE_CLIENT_SECRET and M365_LIVE_USER (a UPN or
SMTP address). Optional: M365_LIVE_TENANT_DOMAIN. It resolves the user and lists the Restricted
users; it changes nothing. This is the only test allowed to leave 127.0.0.1.
"""

from __future__ import annotations

import os

import pytest
from pydantic import SecretStr

from m365 import build_clients
from m365.config import TenantConfig

REQUIRED = (
    "M365_LIVE_TENANT_ID",
    "M365_LIVE_CLIENT_ID",
    "M365_LIVE_CLIENT_SECRET",
    "M365_LIVE_USER",
)

pytestmark = pytest.mark.live


def _live_config() -> tuple[TenantConfig, str]:
    missing = [name for name in REQUIRED if not os.environ.get(name)]
    if missing:
        pytest.skip(f"live tenant smoke test: set {', '.join(missing)} to run it")
    config = TenantConfig(
        tenant_id=os.environ["M365_LIVE_TENANT_ID"],
        tenant_domain=os.environ.get("M365_LIVE_TENANT_DOMAIN") or None,
        client_id=os.environ["M365_LIVE_CLIENT_ID"],
        client_secret=SecretStr(os.environ["M365_LIVE_CLIENT_SECRET"]),
    )
    return config, os.environ["M365_LIVE_USER"]


def test_live_resolve_user_and_list_restricted_senders() -> None:
    config, account = _live_config()
    clients = build_clients(config)
    user = clients.graph.get_user(account)
    assert user.id
    assert account.lower() in user.smtp_addresses or account.lower() == user.id.lower()
    senders = clients.exchange.get_blocked_senders()
    assert all(s.sender_address for s in senders)
    mine = clients.exchange.get_blocked_senders(user.user_principal_name)
    assert all(s.sender_address.lower() in user.smtp_addresses for s in mine)
