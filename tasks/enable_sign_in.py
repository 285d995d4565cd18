"""Eviction: re-enable sign-in (``accountEnabled=true``) once the approver says so."""

from __future__ import annotations

from orchestration.clients import clients_for
from orchestration.logs import run_logger
from playbook.eviction import ActionKind, EvictionRecord

from ._eviction_steps import set_sign_in
from ._policy import step


@step("enable_sign_in")
def enable_sign_in(tenant: str, user_id: str) -> EvictionRecord:
    """Re-read, enable if blocked, re-read. Idempotent: an enabled account is "already done"."""
    log = run_logger()
    record = set_sign_in(
        clients_for(tenant).graph, user_id, ActionKind.ENABLE_SIGN_IN, enabled=True
    )
    log.info("Re-enable sign-in: %s", record.detail)
    return record
