"""Containment: block sign-in (``accountEnabled=false``) right after the password reset."""

from __future__ import annotations

from orchestration.clients import clients_for
from orchestration.logs import run_logger
from playbook.eviction import EvictionRecord, sign_in_record

from ._policy import step


@step("block_sign_in")
def block_sign_in(tenant: str, user_id: str) -> EvictionRecord:
    """Re-read, block if still enabled, re-read. Idempotent: an account already blocked is
    reported as "already done". For an account holding a privileged admin role the app needs
    Privileged Authentication Administrator (else ``PermissionDeniedError``)."""
    log = run_logger()
    graph = clients_for(tenant).graph
    before = graph.get_user(user_id).account_enabled
    request_ids: tuple[str, ...] = ()
    if before:
        receipt = graph.block_sign_in(user_id)
        request_ids = (receipt.request_id,) if receipt.request_id else ()
    after = graph.get_user(user_id).account_enabled
    record = sign_in_record(
        "block_sign_in",
        user_id,
        wanted_enabled=False,
        before=before,
        after=after,
        request_ids=request_ids,
    )
    log.info("Block sign-in: %s", record.detail)
    return record
