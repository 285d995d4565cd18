"""Steps: load and save a tenant's sweep state (a Variable pointing at a table artifact)."""

from __future__ import annotations

import json
import logging
from typing import Any
from uuid import UUID

from prefect import runtime
from prefect.artifacts import create_table_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterId
from prefect.variables import Variable
from pydantic import ValidationError

from orchestration.logs import run_logger
from playbook.sweep.state import (
    LoadedState,
    StatePointer,
    TenantDiff,
    state_from_table,
    state_table,
    table_artifact_key,
    variable_name,
)

from ._policy import single_try


@single_try("load_sweep_state")
def load_sweep_state(tenant: str) -> LoadedState:
    """The last successful sweep's state, or none (first sweep, or the state is gone).

    An unreachable API raises (the tenant is then not swept) rather than pretending that
    nothing was stored, which would turn every entry into a false "first seen".
    """
    return read_sweep_state(tenant, run_logger())


def read_sweep_state(
    tenant: str, logger: logging.Logger | logging.LoggerAdapter[Any]
) -> LoadedState:
    """``load_sweep_state`` as a plain function (the watcher reads it without a task run)."""
    raw = Variable.get(variable_name(tenant), default=None)
    if raw is None:
        logger.info("%s: no stored state: first sweep", tenant)
        return LoadedState()
    try:
        pointer = StatePointer.model_validate(raw)
    except ValidationError:
        logger.warning("%s: stored state pointer is unreadable; treating as first sweep", tenant)
        return LoadedState(problem="stored state pointer unreadable")
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(id=ArtifactFilterId(any_=[UUID(pointer.artifact_id)])),
            limit=1,
        )
    if not found or not isinstance(found[0].data, str):
        problem = f"state artifact {pointer.artifact_id} is gone (retention?)"
        logger.warning("%s: %s; treating as first sweep", tenant, problem)
        return LoadedState(pointer=pointer, problem=problem)
    rows = json.loads(found[0].data)
    try:
        state = state_from_table(tenant, pointer.swept_at, rows)
    except ValidationError:
        problem = f"state artifact {pointer.artifact_id} is unreadable"
        logger.warning("%s: %s; treating as first sweep", tenant, problem)
        return LoadedState(pointer=pointer, problem=problem)
    logger.info(
        "%s: state of %s loaded: %d entries", tenant, pointer.swept_at.isoformat(), len(rows)
    )
    return LoadedState(pointer=pointer, state=state)


@single_try("save_sweep_state")
def save_sweep_state(diff: TenantDiff, commit: bool) -> str:
    """Publish the tenant's table artifact; with ``commit``, make it the tenant's state.

    The artifact is written first and the Variable moved to it last, so a crash in between
    leaves the previous state in place.
    """
    counts = diff.counts()
    artifact_id = create_table_artifact(
        key=table_artifact_key(diff.tenant),
        table=state_table(diff),
        description=(
            f"Restricted users of {diff.tenant} at {diff.swept_at:%Y-%m-%d %H:%M} UTC: "
            f"{len(diff.current)} listed ({counts['new']} new, {counts['first-seen']} first seen), "
            f"{counts['cleared']} cleared"
        ),
    )
    if commit:
        pointer = StatePointer(
            tenant=diff.tenant,
            swept_at=diff.swept_at,
            artifact_id=str(artifact_id),
            entries=len(diff.current),
            flow_run_id=runtime.flow_run.id,
        )
        Variable.set(variable_name(diff.tenant), pointer.model_dump(mode="json"), overwrite=True)
    run_logger().info(
        "%s: table artifact %s%s", diff.tenant, artifact_id, " (state saved)" if commit else ""
    )
    return str(artifact_id)
