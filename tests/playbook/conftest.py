"""Fixtures for the playbook flows: the tenant block and a `flows.serve` process.

The run helpers are in ``tests.playbook.helpers`` and ``tests.helpers.runs``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ["UNBLOCK_APPROVAL_POLL_SECONDS"] = "1"
os.environ.setdefault("UNBLOCK_TASK_RETRIES", "3")

from devtools.localstack import ManagedProcess, wait_for
from emulator import Emulator

from ..handover_keys import PUBLIC_KEY
from .helpers import TENANT


@pytest.fixture(scope="session")
def api_url(prefect_api: str) -> str:
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    assert url and url.startswith("http://127.0.0.1"), url
    return str(url)


@pytest.fixture(scope="session")
def tenant_block(api_url: str, emulator_session: Emulator) -> str:
    """An M365Tenant block named 'contoso' pointing at the emulator."""
    from orchestration.blocks import M365Tenant, register_blocks

    register_blocks()
    M365Tenant.from_config(
        emulator_session.tenant_config(TENANT), handover_public_key=PUBLIC_KEY
    ).save(TENANT, overwrite=True)
    return TENANT


# Package scope: a serve process left running would execute the runs other test packages
# create on the same deployment names (the sweep's containment runs, for one).
@pytest.fixture(scope="package")
def served(api_url: str, tenant_block: str, prefect_home: Path) -> Iterator[Path]:
    """`python -m flows.serve` against the test server: executes the scheduled verify runs."""
    log = prefect_home / "serve.log"
    env = {
        **os.environ,
        "PREFECT_API_URL": api_url,
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "PREFECT_HOME": str(prefect_home),
    }
    argv = [sys.executable, "-m", "flows.serve", "--only", "unblock-user", "verify-unblock"]
    serve = ManagedProcess("serve", argv, env, log).start()
    try:
        wait_for(lambda: _deployment_exists("verify-unblock/verify-unblock"), 120, "serve")
        wait_for(lambda: _deployment_exists("unblock-user/unblock-user"), 30, "serve")
        yield log
    finally:
        serve.stop(term_timeout=30)


def _deployment_exists(name: str) -> bool:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_deployment_by_name(name)
        except ObjectNotFound:
            return False
    return True
