"""Fixtures for the emulator's own tests: raw Graph and Exchange calls (helpers: helpers.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests

from emulator import Emulator

from .helpers import ANCHOR, EXO_SCOPE, GRAPH_SCOPE, https_session, token


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
