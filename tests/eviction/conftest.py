"""Fixtures for the eviction task tests: tenant profiles on the session emulator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from emulator import Emulator

from ..helpers.profiles import saved_profile

TENANT = "contoso"
READER = "contoso-reader"


@pytest.fixture
def tenant(prefect_api: str, emulator: Emulator) -> Iterator[str]:
    """The 'contoso' profile: the demo's playbook app (every eviction permission)."""
    with saved_profile(emulator.tenant_config(TENANT, app="playbook"), TENANT) as name:
        yield name


@pytest.fixture
def reader_tenant(prefect_api: str, emulator: Emulator) -> Iterator[str]:
    """A profile for the demo's reader app: User.Read.All, Exchange.ManageAsApp, Global Reader."""
    with saved_profile(emulator.tenant_config(TENANT, app="reader"), READER) as name:
        yield name
