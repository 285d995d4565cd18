"""Eviction: revoke the flagged delegated permission grants (Graph)."""

from __future__ import annotations

from orchestration.clients import clients_for
from orchestration.logs import run_logger
from playbook.eviction import (
    ActionKind,
    ActionTarget,
    EvictionRecord,
    split_pending,
)

from ._eviction_steps import delete_each, removal_record
from ._policy import step


@step("revoke_oauth_grants")
def revoke_oauth_grants(
    tenant: str, user_id: str, targets: tuple[ActionTarget, ...]
) -> EvictionRecord:
    """Re-read the user's grants, delete each target still present, re-read. Idempotent.
    Tokens already issued to the app stay valid until they expire."""
    log = run_logger()
    graph = clients_for(tenant).graph
    present = [g.id for g in graph.list_oauth2_grants(user_id)]
    todo, already = split_pending([t.id for t in targets], present)
    reasons, request_ids = delete_each(
        todo,
        graph.delete_oauth2_grant,
        refused="refused: the app lacks DelegatedPermissionGrant.ReadWrite.All",
    )
    after = [g.id for g in graph.list_oauth2_grants(user_id)]
    record = removal_record(
        ActionKind.REVOKE_OAUTH_GRANTS, user_id, todo, already, after, reasons, request_ids
    )
    log.info("Revoke flagged app consents: %s", record.detail)
    return record
