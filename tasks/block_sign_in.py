"""Containment: block sign-in (``accountEnabled=false``) right after the password reset."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.variables import Variable

from playbook.clients import clients_for
from playbook.eviction import EvictionRecord, sign_in_record
from playbook.evidence import sign_in_block_variable_name
from playbook.report import utcnow

from ._logging import run_logger
from ._policy import RETRIES, RETRY_DELAYS, RETRY_JITTER, retry_if_transient


@task(
    name="block_sign_in",
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS,
    retry_jitter_factor=RETRY_JITTER,
    retry_condition_fn=retry_if_transient,
    persist_result=False,
    cache_policy=NO_CACHE,
)
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
    if record.changed:
        # Marks the account as disabled by the playbook, so a later run may still act on it.
        Variable.set(
            sign_in_block_variable_name(tenant, user_id),
            {"blocked": utcnow().isoformat(timespec="seconds")},
            overwrite=True,
            tags=["unblock-email", "sign-in-blocked"],
        )
    log.info("Block sign-in: %s", record.detail)
    return record


@task(name="read_sign_in_block", persist_result=False, cache_policy=NO_CACHE)
def read_sign_in_block(tenant: str, user_id: str) -> bool:
    """Whether this playbook blocked the user's sign-in (and no approval re-enabled it yet)."""
    return Variable.get(sign_in_block_variable_name(tenant, user_id), default=None) is not None
