"""Containment: block sign-in (``accountEnabled=false``) right after the password reset."""

from __future__ import annotations

from orchestration.clients import clients_for
from orchestration.logs import run_logger
from playbook.eviction import EvictionRecord

from ._eviction_steps import set_sign_in
from ._policy import step


@step("block_sign_in")
def block_sign_in(tenant: str, user_id: str) -> EvictionRecord:
    """Re-read, block if still enabled, re-read. Idempotent: an account already blocked is
    reported as "already done". For an account holding a privileged admin role the app needs
    Privileged Authentication Administrator (else ``PermissionDeniedError``)."""
    log = run_logger()
    record = set_sign_in(clients_for(tenant).graph, user_id, "block_sign_in", enabled=False)
    log.info("Block sign-in: %s", record.detail)
    return record
