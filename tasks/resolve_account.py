"""Step 1: resolve the affected account in Entra ID (Graph)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from m365.models import User
from orchestration.clients import clients_for
from orchestration.logs import run_logger

from ._policy import RETRIES, RETRY_DELAYS, RETRY_JITTER, retry_if_transient


@task(
    name="resolve_account",
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS,
    retry_jitter_factor=RETRY_JITTER,
    retry_condition_fn=retry_if_transient,
    persist_result=False,
    cache_policy=NO_CACHE,
)
def resolve_account(tenant: str, account: str) -> User:
    """Look the account up by UPN or any SMTP address; raises NotFoundError if there is none."""
    run_logger().info("Resolving %s in tenant profile %s", account, tenant)
    return clients_for(tenant).graph.get_user(account)
