"""Run the playbooks in-process against the session's Prefect API and read what they left.

One copy for every test package (playbook, reliability, security, warm): start an unblock-user
run in a thread, read a run by name, resume a paused one, read an artifact, count the writes
the emulator answered with success.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from devtools.localstack import wait_for
from emulator import Emulator


@dataclass
class Started:
    name: str
    thread: threading.Thread
    box: dict[str, Any] = field(default_factory=dict)
    timeout: float = 120

    def state(self, timeout: float | None = None) -> Any:
        """The run's final state, once the thread ends (``timeout`` s, default ``self.timeout``)."""
        timeout = self.timeout if timeout is None else timeout
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"{self.name} did not finish in {timeout}s"
        if "error" in self.box:
            raise self.box["error"]
        return self.box["state"]


def start_unblock(
    tenant: str,
    *,
    run_prefix: str = "rel",
    default_ticket: str = "INC-2001",
    timeout: float = 120,
    **params: Any,
) -> Started:
    """Run unblock-user in a thread under a unique run name ``<run_prefix>-<hex>``.

    ``params`` are the request's fields; ticket and requested_by have defaults.
    """
    from flows.unblock_user import unblock_user
    from playbook.params import UnblockRequest

    request = UnblockRequest.model_validate(
        {"tenant": tenant, "ticket": default_ticket, "requested_by": "ann", **params}
    )
    name = f"{run_prefix}-{uuid.uuid4().hex[:10]}"
    box: dict[str, Any] = {}
    fl = unblock_user.with_options(flow_run_name=name)

    def target() -> None:
        try:
            box["state"] = fl(request=request, return_state=True)
        except BaseException as exc:  # surfaced by Started.state()
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True, name=name)
    thread.start()
    return Started(name=name, thread=thread, box=box, timeout=timeout)


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


def wait_paused_or_done(started: Started, timeout: float = 90) -> Any:
    """The paused run, or None when the flow finished without pausing."""

    def check() -> Any:
        if not started.thread.is_alive():
            return "done"
        run = read_run(started.name)
        if run is not None and run.state is not None and run.state.is_paused():
            return run
        return None

    result = wait_for(check, timeout, f"{started.name} to pause or finish", every=0.2)
    return None if result == "done" else result


# Every eviction box of the approval form ticked (a form offers only those it has items for).
EVICT_ALL = {
    "remove_sign_in_methods": True,
    "revoke_oauth_grants": True,
    "remove_mailbox_delegates": True,
    "enable_sign_in": True,
}


def resume(run: Any, **run_input: Any) -> None:
    from prefect.flow_runs import resume_flow_run

    resume_flow_run(run.id, run_input=run_input)


def handover_events(flow_run_id: Any, name: str) -> list[Any]:
    """The hand-over audit events called ``name`` (``handover_audit.SEALED``, ...) of one run."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

    from orchestration import handover_audit

    with get_client(sync_client=True) as client:
        page = client.read_events(
            filter=EventFilter(
                event=EventNameFilter(name=[name]),
                resource=EventResourceFilter(id=[handover_audit.resource_id(str(flow_run_id))]),
            ),
            limit=50,  # the server's maximum (the client's default, 100, is refused)
        )
    return list(page.events)


def artifact_markdown(flow_run_id: Any, key: str) -> str:
    """The latest version of a run's Markdown artifact."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
                key=ArtifactFilterKey(any_=[key]),
            ),
            sort=ArtifactSort.CREATED_DESC,
        )
    assert artifacts, f"no artifact {key} for run {flow_run_id}"
    return str(artifacts[0].data)


def effective(emu: Emulator, endpoint: str, cmdlet: str | None = None) -> list[Any]:
    """Write requests to ``endpoint`` that the emulator answered with success."""
    return [
        r
        for r in emu.writes()
        if r.endpoint == endpoint
        and (cmdlet is None or r.cmdlet == cmdlet)
        and 200 <= r.status < 300
    ]


def effective_writes(emu: Emulator, endpoint: str, cmdlet: str | None = None) -> int:
    return len(effective(emu, endpoint, cmdlet))


def ensure_verify_deployment() -> None:
    """unblock-user schedules verify-unblock by deployment name; register it (nobody serves it,
    so the follow-up runs stay Scheduled hours ahead)."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    from flows.verify_unblock import verify_unblock

    with get_client(sync_client=True) as client:
        try:
            client.read_deployment_by_name("verify-unblock/verify-unblock")
            return
        except ObjectNotFound:
            pass
    verify_unblock.to_deployment(name="verify-unblock", enforce_parameter_schema=True).apply()


def run_input(run_id: Any, key: str, timeout: float = 60) -> Any:
    """A paused run's input ``key``, once it exists: Prefect sets the run Paused before it saves
    the form's schema and description, so a test that sees the pause can be a moment early."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

    def read() -> Any:
        with get_client(sync_client=True) as client:
            try:
                return json.loads(client.read_flow_run_input(run_id, key))
            except (ObjectNotFound, PrefectHTTPStatusError) as exc:
                if isinstance(exc, PrefectHTTPStatusError) and exc.response.status_code != 404:
                    raise
                return None

    return wait_for(read, timeout, f"input {key} of run {run_id}", every=0.2)
