"""Step 6: remove the account from the Restricted users list (idempotent)."""

from __future__ import annotations

from prefect import runtime

from orchestration.clients import clients_for
from orchestration.logs import run_logger
from playbook.decisions import is_listed
from playbook.reconcile import remove_entry
from playbook.results import UnblockResult

from ._policy import step


@step("unblock_sender")
def unblock_sender(tenant: str, address: str, reason: str) -> UnblockResult:
    """Remove-BlockedSenderAddress. A block that is already gone counts as success; a retry, or
    a request whose answer was lost, re-reads the list first. UnblockLimitError is terminal
    (Microsoft Support)."""
    logger = run_logger()
    exchange = clients_for(tenant).exchange
    retrying = runtime.task_run.run_count > 1
    if retrying and not is_listed(address, exchange.get_blocked_senders(sender_address=address)):
        logger.info("%s is no longer listed: the previous attempt took effect", address)
        return UnblockResult(address=address, already_removed=True)
    logger.info("Removing %s from the Restricted users list", address)
    removal = remove_entry(exchange, address, reason, log=logger)
    if removal.already_removed:
        logger.info("%s was already removed", address)
    return UnblockResult(
        address=address, request_id=removal.request_id, already_removed=removal.already_removed
    )
