"""Helpers for the emulator's own tests: a verifying HTTPS session, MSAL apps, tokens."""

from __future__ import annotations

from typing import Any

import msal
import requests

from emulator import Emulator

GRAPH_SCOPE = ["https://graph.microsoft.com/.default"]
EXO_SCOPE = ["https://outlook.office365.com/.default"]
ANCHOR = "SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}"


def https_session(ca_path: str) -> requests.Session:
    """REQUESTS_CA_BUNDLE is set on this machine: trust_env=False keeps verify= in force."""
    session = requests.Session()
    session.trust_env = False
    session.verify = ca_path
    return session


def msal_app(
    emu: Emulator,
    app: str = "playbook",
    credential: Any = None,
    tenant: str = "contoso",
    authority_tenant: str | None = None,
) -> msal.ConfidentialClientApplication:
    t = emu.info.tenants[tenant]
    a = t.apps[app]
    return msal.ConfidentialClientApplication(
        a.client_id,
        authority=f"{emu.info.authority_host}/{authority_tenant or t.tenant_id}",
        client_credential=credential if credential is not None else a.client_secret,
        instance_discovery=False,
        http_client=https_session(emu.info.ca_path),
    )


def token(emu: Emulator, scopes: list[str], app: str = "playbook") -> str:
    result = msal_app(emu, app).acquire_token_for_client(scopes=scopes)
    assert "access_token" in result, result.get("error_description")
    return str(result["access_token"])


def one_app_seed(
    tenant: str,
    tenant_id: str,
    app: str,
    client_id: str,
    client_secret: str,
    roles: list[str],
    *,
    app_fields: dict[str, Any] | None = None,
    **tenant_fields: Any,
) -> dict[str, Any]:
    """An emulator seed of one tenant (domain ``<tenant>.onmicrosoft.com``) with one app.

    ``app_fields``: further fields of the app (wids, token lifetime); ``tenant_fields``: further
    fields of the tenant (settings, generated lists)."""
    return {
        "tenants": [
            {
                "name": tenant,
                "tenant_id": tenant_id,
                "domain": f"{tenant}.onmicrosoft.com",
                **tenant_fields,
                "apps": [
                    {
                        "name": app,
                        "client_id": client_id,
                        "client_secret": client_secret,
                        "roles": roles,
                        **(app_fields or {}),
                    }
                ],
            }
        ]
    }
