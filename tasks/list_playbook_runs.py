"""Step: find the unblock-user runs to show next to the sweep (in flight, or started by it)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.settings import get_current_settings

from orchestration.runs import flow_named, in_states, with_ids
from playbook.sweep.containment import UNBLOCK_DEPLOYMENT
from playbook.sweep.report import PlaybookRun

from ._policy import single_try
from .start_containment import SWEEP_TAG

_PAGE = 200
_IN_FLIGHT = [StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.PAUSED]


def ui_base_url() -> str:
    """Base URL of the Prefect UI (``PREFECT_UI_URL``, else derived from the API URL)."""
    settings = get_current_settings()
    base = settings.ui_url or (settings.api.url or "").removesuffix("/api")
    return base.rstrip("/")


def flow_run_url(run_id: str | UUID) -> str:
    return f"{ui_base_url()}/runs/flow-run/{run_id}"


def _request_field(parameters: dict[str, Any], name: str) -> str | None:
    request = parameters.get("request")
    value = request.get(name) if isinstance(request, dict) else None
    return value if isinstance(value, str) else None


def _view(run: FlowRun) -> PlaybookRun:
    state = run.state
    return PlaybookRun(
        id=str(run.id),
        name=run.name,
        tenant=_request_field(run.parameters, "tenant"),
        account=_request_field(run.parameters, "account"),
        state_type=state.type.value if state else "UNKNOWN",
        state_name=(state.name or state.type.value) if state else "Unknown",
        url=flow_run_url(run.id),
        started_by_sweep=SWEEP_TAG in (run.tags or []),
        expected_start=run.expected_start_time,
    )


@single_try("list_playbook_runs")
def list_playbook_runs(run_ids: Iterable[str]) -> list[PlaybookRun]:
    """unblock-user runs in flight (scheduled, pending, running, paused), plus the given runs."""
    flow_name = UNBLOCK_DEPLOYMENT.split("/", 1)[0]
    found: dict[UUID, FlowRun] = {}
    with get_client(sync_client=True) as client:
        offset = 0
        while True:
            page = client.read_flow_runs(
                flow_filter=flow_named(flow_name),
                flow_run_filter=in_states(_IN_FLIGHT),
                offset=offset,
                limit=_PAGE,
            )
            found.update((r.id, r) for r in page)
            if len(page) < _PAGE:
                break
            offset += _PAGE
        wanted = sorted({UUID(i) for i in run_ids} - set(found))
        for start in range(0, len(wanted), _PAGE):
            chunk = wanted[start : start + _PAGE]
            page = client.read_flow_runs(flow_run_filter=with_ids(chunk), limit=_PAGE)
            found.update((r.id, r) for r in page)
    return [_view(r) for r in sorted(found.values(), key=lambda r: (str(r.created), str(r.id)))]
