"""Optional clean-up on approval: remove the mailbox forwarding (Exchange ``Set-Mailbox``)."""

from __future__ import annotations

from orchestration.clients import clients_for
from orchestration.logs import run_logger
from playbook.evidence import RemediationRecord

from ._policy import step


@step("clear_forwarding")
def clear_forwarding(tenant: str, mailbox: str) -> RemediationRecord:
    """Empty ForwardingSmtpAddress and ForwardingAddress, DeliverToMailboxAndForward off.

    Idempotent: re-reads first and writes only when something still forwards.
    """
    exchange = clients_for(tenant).exchange
    before = exchange.get_mailbox_forwarding(mailbox)
    if not before.forwards and not before.deliver_to_mailbox_and_forward:
        run_logger().info("Mailbox forwarding of %s: nothing to clear", mailbox)
        return RemediationRecord(action="clear_forwarding", target=mailbox, already=(mailbox,))
    receipt = exchange.clear_mailbox_forwarding(mailbox)
    run_logger().info("Mailbox forwarding of %s cleared", mailbox)
    return RemediationRecord(
        action="clear_forwarding",
        target=mailbox,
        changed=(mailbox,),
        request_ids=(receipt.request_id,) if receipt.request_id else (),
    )
