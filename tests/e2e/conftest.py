"""Fixtures shared by the end-to-end suites (real servers: harness.py; helpers: helpers.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.harness import (
    PYTHON,
    ApiClient,
    EmulatorProcess,
    ManagedProcess,
    PrefectServer,
    wait_for,
)
from tests.e2e.helpers import AUTH, LOGS, UiStack, need_chromium, record_timing


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def e2e_logs() -> Path:
    """Where the suites' server, worker and emulator logs go (kept after the run)."""
    LOGS.mkdir(parents=True, exist_ok=True)
    return LOGS


@pytest.fixture(scope="module")
def tenant_process(e2e_logs: Path, request: pytest.FixtureRequest) -> Iterator[EmulatorProcess]:
    """The emulated tenant as a subprocess (``python -m emulator``), one per test module."""
    emu = EmulatorProcess(e2e_logs / f"{request.module.__name__.rsplit('.', 1)[-1]}-emulator.log")
    try:
        emu.start()
        yield emu
    finally:
        emu.stop()


# -- the browser suites: one real stack per module, driven through the V2 UI ------------------


@pytest.fixture(scope="module")
def ui_stack(
    tmp_path_factory: pytest.TempPathFactory,
    e2e_logs: Path,
    tenant_process: EmulatorProcess,
    request: pytest.FixtureRequest,
) -> Iterator[UiStack]:
    """A real server with basic auth, the "contoso" block and ``flows.serve`` running the
    unblock flows against this module's emulated tenant."""
    need_chromium()
    logs = request.module.__name__.rsplit(".", 1)[-1]
    from tests.e2e.harness import save_tenant_block

    t0 = time.monotonic()
    server = PrefectServer(
        home=tmp_path_factory.mktemp("ui-prefect-home"),
        log_path=e2e_logs / f"{logs}-server.log",
        auth_string=AUTH,
    )
    serve: ManagedProcess | None = None
    api: ApiClient | None = None
    try:
        server.start()
        record_timing("ui prefect server start", server.startup_seconds[-1])
        api = server.client()
        save_tenant_block(server, tenant_process.tenant_config("contoso", "playbook"), "contoso")
        serve = ManagedProcess(
            "flows.serve",
            [PYTHON, "-m", "flows.serve", "--only", "unblock-user", "verify-unblock"],
            server.client_env(
                {
                    "PREFECT_RUNNER_POLL_FREQUENCY": "1",
                    "UNBLOCK_APPROVAL_POLL_SECONDS": "1",
                    # The links the flows write (the evidence link) open the V2 UI.
                    "PREFECT_UI_URL": server.url + "/v2",
                }
            ),
            e2e_logs / f"{logs}-serve.log",
        ).start()
        client = api

        def deployed() -> dict[str, Any] | None:
            assert serve is not None
            if not serve.alive():
                raise RuntimeError(f"flows.serve exited; see {serve.log_path}")
            try:
                return client.deployment("unblock-user", "unblock-user")
            except httpx.HTTPStatusError:
                return None

        t1 = time.monotonic()
        deployment = wait_for(deployed, timeout=120, interval=0.5, what="unblock-user deployment")
        record_timing("ui flows.serve until deployment exists", time.monotonic() - t1)
        record_timing("ui stack start (server+block+serve)", time.monotonic() - t0)
        yield UiStack(server, api, tenant_process, deployment)
    finally:
        # Order matters: the runner pauses its deployments on shutdown, so stop it first.
        if serve is not None:
            serve.stop(term_timeout=10)
        if api is not None:
            api.close()
        server.stop()


@pytest.fixture(scope="module")
def browser(ui_stack: UiStack) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        yield pw
