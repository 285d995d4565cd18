"""Step 7a: re-read the Restricted users list after the removal."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from orchestration.clients import clients_for
from orchestration.logs import run_logger
from playbook.results import ConfirmResult

from ._policy import RETRIES, RETRY_DELAYS, RETRY_JITTER, retry_if_transient


@task(
    name="confirm_unblock",
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS,
    retry_jitter_factor=RETRY_JITTER,
    retry_condition_fn=retry_if_transient,
    persist_result=False,
    cache_policy=NO_CACHE,
)
def confirm_unblock(tenant: str, address: str) -> ConfirmResult:
    """Get-BlockedSenderAddress for the address: still listed or gone."""
    entries = clients_for(tenant).exchange.get_blocked_senders(sender_address=address)
    match = next((e for e in entries if e.sender_address.lower() == address.lower()), None)
    run_logger().info("%s still listed: %s", address, match is not None)
    return ConfirmResult(address=address, still_listed=match is not None, entry=match)
