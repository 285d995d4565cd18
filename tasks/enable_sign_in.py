"""Eviction: re-enable sign-in (``accountEnabled=true``) once the approver says so."""

from __future__ import annotations

from orchestration.clients import clients_for
from orchestration.logs import run_logger
from playbook.eviction import ActionKind, EvictionRecord, sign_in_record

from ._policy import step


@step("enable_sign_in")
def enable_sign_in(tenant: str, user_id: str) -> EvictionRecord:
    """Re-read, enable if blocked, re-read. Idempotent: an enabled account is "already done"."""
    log = run_logger()
    graph = clients_for(tenant).graph
    before = graph.get_user(user_id).account_enabled
    request_ids: tuple[str, ...] = ()
    if not before:
        receipt = graph.enable_sign_in(user_id)
        request_ids = (receipt.request_id,) if receipt.request_id else ()
    after = graph.get_user(user_id).account_enabled
    record = sign_in_record(
        ActionKind.ENABLE_SIGN_IN,
        user_id,
        wanted_enabled=True,
        before=before,
        after=after,
        request_ids=request_ids,
    )
    log.info("Re-enable sign-in: %s", record.detail)
    return record
