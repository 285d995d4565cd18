"""Fixtures for the playbook flows: the tenant block, a `flows.serve` process, run helpers."""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

os.environ["UNBLOCK_APPROVAL_POLL_SECONDS"] = "1"
os.environ.setdefault("UNBLOCK_TASK_RETRIES", "3")

from devtools.localstack import ManagedProcess, wait_for
from emulator import Emulator

from ..handover_keys import PUBLIC_KEY
from ..handover_keys import secret_value as secret_value

TENANT = "contoso"


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


@dataclass
class Started:
    name: str
    thread: threading.Thread
    box: dict[str, Any] = field(default_factory=dict)
    started_at: float = 0.0

    def state(self, timeout: float = 90) -> Any:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"{self.name} did not finish in {timeout}s"
        if "error" in self.box:
            raise self.box["error"]
        return self.box["state"]


def start_unblock(**params: Any) -> Started:
    """Run unblock-user in a thread under a unique run name."""
    from flows.unblock_user import unblock_user
    from playbook.params import UnblockRequest

    request = UnblockRequest.model_validate(
        {"tenant": TENANT, "ticket": "INC-1001", "requested_by": "ann", **params}
    )
    name = f"test-{uuid.uuid4().hex[:10]}"
    box: dict[str, Any] = {}
    fl = unblock_user.with_options(flow_run_name=name)

    def target() -> None:
        try:
            box["state"] = fl(request=request, return_state=True)
        except BaseException as exc:  # surfaced by Started.state()
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    started = Started(name=name, thread=thread, box=box, started_at=time.time())
    thread.start()
    return started


def run_unblock(timeout: float = 90, **params: Any) -> Any:
    return start_unblock(**params).state(timeout)


def read_run(name: str) -> Any:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name]))
        )
    return runs[0] if runs else None


def wait_until_paused(name: str, timeout: float = 60) -> Any:
    def paused() -> Any:
        run = read_run(name)
        return run if run is not None and run.state is not None and run.state.is_paused() else None

    return wait_for(paused, timeout, f"{name} to pause", every=0.2)


def resume(run: Any, **run_input: Any) -> None:
    from prefect.flow_runs import resume_flow_run

    resume_flow_run(run.id, run_input=run_input)


def artifact_markdown(flow_run_id: Any, key: str) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
                key=ArtifactFilterKey(any_=[key]),
            )
        )
    assert arts, f"no artifact {key} for run {flow_run_id}"
    return str(arts[0].data)


def effective(emulator: Emulator, endpoint: str, cmdlet: str | None = None) -> list[Any]:
    """Write requests to ``endpoint`` that the emulator answered with success."""
    return [
        r
        for r in emulator.writes()
        if r.endpoint == endpoint
        and (cmdlet is None or r.cmdlet == cmdlet)
        and 200 <= r.status < 300
    ]
