"""Fixtures for the client tests: the real clients, real MSAL, the session emulator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from emulator import Emulator
from m365 import M365Clients, RequestLimiter, build_clients
from m365.auth import clear_app_cache
from m365.config import TenantConfig

from .helpers import TENANT


@pytest.fixture(autouse=True)
def fresh_msal_apps() -> Iterator[None]:
    """Each test starts without MSAL applications (and so without cached tokens)."""
    clear_app_cache()
    yield
    clear_app_cache()


@pytest.fixture
def config(emulator: Emulator) -> TenantConfig:
    return emulator.tenant_config(TENANT, app="playbook")


@pytest.fixture
def clients(config: TenantConfig) -> M365Clients:
    # Microsoft's per-app limits hold within a test; a fresh limiter keeps tests independent.
    return build_clients(config, limiter=RequestLimiter())


@pytest.fixture
def domain(emulator: Emulator) -> str:
    return str(emulator.state.tenant(TENANT).domain)
