"""Step 7a: re-read the Restricted users list after the removal."""

from __future__ import annotations

from orchestration.clients import clients_for
from orchestration.logs import run_logger
from playbook.results import ConfirmResult

from ._policy import step


@step("confirm_unblock")
def confirm_unblock(tenant: str, address: str) -> ConfirmResult:
    """Get-BlockedSenderAddress for the address: still listed or gone."""
    entries = clients_for(tenant).exchange.get_blocked_senders(sender_address=address)
    match = next((e for e in entries if e.sender_address.lower() == address.lower()), None)
    run_logger().info("%s still listed: %s", address, match is not None)
    return ConfirmResult(address=address, still_listed=match is not None, entry=match)
