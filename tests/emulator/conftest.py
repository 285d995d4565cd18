"""Helpers for the emulator's own tests: a verifying HTTPS session, MSAL apps, raw calls."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msal
import pytest
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


@pytest.fixture
def http(emulator: Emulator) -> requests.Session:
    return https_session(emulator.info.ca_path)


@pytest.fixture
def graph(emulator: Emulator, http: requests.Session) -> Callable[..., requests.Response]:
    """graph(method, path, app="playbook", **kwargs) against graph_base with a Graph token."""
    tokens: dict[str, str] = {}

    def call(method: str, path: str, app: str = "playbook", **kwargs: Any) -> requests.Response:
        if app not in tokens:
            tokens[app] = token(emulator, GRAPH_SCOPE, app)
        headers = {"Authorization": f"Bearer {tokens[app]}", **kwargs.pop("headers", {})}
        return http.request(
            method, emulator.info.graph_base + path, headers=headers, timeout=10, **kwargs
        )

    return call


@pytest.fixture
def exo(emulator: Emulator, http: requests.Session) -> Callable[..., requests.Response]:
    """exo(cmdlet, params, app="playbook", url=None, headers=None) -> InvokeCommand response."""
    tokens: dict[str, str] = {}
    tenant = emulator.info.tenants["contoso"]

    def call(
        cmdlet: str,
        params: dict[str, Any] | None = None,
        app: str = "playbook",
        url: str | None = None,
        headers: dict[str, str] | None = None,
        anchor: bool = True,
    ) -> requests.Response:
        if app not in tokens:
            tokens[app] = token(emulator, EXO_SCOPE, app)
        hdrs = {"Authorization": f"Bearer {tokens[app]}"}
        if anchor:
            hdrs["X-AnchorMailbox"] = f"APP:{ANCHOR}@{tenant.tenant_id}"
        hdrs.update(headers or {})
        body = {"CmdletInput": {"CmdletName": cmdlet, "Parameters": params or {}}}
        target = url or f"{emulator.info.exchange_base}/{tenant.tenant_id}/InvokeCommand"
        return http.post(target, json=body, headers=hdrs, timeout=10)

    return call
