"""Step 3: look for the account on the Restricted users list (Exchange Online)."""

from __future__ import annotations

from m365.models import RestrictedSender
from orchestration.clients import clients_for
from orchestration.logs import run_logger

from ._policy import step


@step("find_restricted_entry")
def find_restricted_entry(tenant: str, addresses: tuple[str, ...]) -> list[RestrictedSender]:
    """Get-BlockedSenderAddress for each address (UPN first); every entry found."""
    logger = run_logger()
    exchange = clients_for(tenant).exchange
    found: list[RestrictedSender] = []
    for address in addresses:
        entries = exchange.get_blocked_senders(sender_address=address)
        logger.info("Restricted users list, %s: %d entr(y/ies)", address, len(entries))
        found.extend(entries)
    return found
