"""Compromise check: mailbox-level forwarding (Exchange ``Get-Mailbox``)."""

from __future__ import annotations

from orchestration.clients import clients_for
from orchestration.logs import run_logger
from playbook.evidence import ForwardingFinding, classify_forwarding

from ._policy import step


@step("review_mailbox_forwarding")
def review_mailbox_forwarding(
    tenant: str, mailbox: str, domains: frozenset[str]
) -> ForwardingFinding:
    """ForwardingAddress, ForwardingSmtpAddress and DeliverToMailboxAndForward. Read-only."""
    forwarding = clients_for(tenant).exchange.get_mailbox_forwarding(mailbox)
    finding = classify_forwarding(forwarding, domains)
    run_logger().info(
        "Mailbox forwarding of %s: %s",
        mailbox,
        ("external" if finding.external else "internal") if finding.forwards else "none",
    )
    return finding
