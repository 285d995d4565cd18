"""Step 2b: revoke the account's sign-in sessions."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from m365.models import Receipt
from orchestration.clients import clients_for
from orchestration.logs import run_logger

from ._policy import RETRIES, RETRY_DELAYS, RETRY_JITTER, retry_if_transient


@task(
    name="revoke_sessions",
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS,
    retry_jitter_factor=RETRY_JITTER,
    retry_condition_fn=retry_if_transient,
    persist_result=False,
    cache_policy=NO_CACHE,
)
def revoke_sessions(tenant: str, user_id: str) -> Receipt:
    """Invalidate refresh tokens and session cookies (harmless to repeat)."""
    run_logger().info("Revoking the sign-in sessions of %s", user_id)
    return clients_for(tenant).graph.revoke_sessions(user_id)
