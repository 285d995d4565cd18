"""Eviction evidence: who else may read or send as the mailbox (Exchange)."""

from __future__ import annotations

from orchestration.clients import clients_for
from orchestration.logs import run_logger
from playbook.eviction import DEFINITE_ERRORS, DelegatesReview, assess_delegates, not_checked

from ._policy import step


@step("review_mailbox_delegates")
def review_mailbox_delegates(tenant: str, mailbox: str, domains: frozenset[str]) -> DelegatesReview:
    """Full Access (``Get-MailboxPermission``, without SELF and inherited entries), Send As
    (``Get-RecipientPermission``) and Send on Behalf (``GrantSendOnBehalfTo``); delegates outside
    ``domains`` are flagged. Read-only."""
    log = run_logger()
    exchange = clients_for(tenant).exchange
    try:
        full_access = exchange.get_mailbox_permissions(mailbox)
        send_as = exchange.get_recipient_permissions(mailbox)
        send_on_behalf = exchange.get_send_on_behalf(mailbox)
    except DEFINITE_ERRORS as exc:
        check = not_checked(exc, needs="the Exchange Administrator role")
        log.warning("Mailbox delegates: %s", check.reason)
        return DelegatesReview(mailbox=mailbox, check=check)
    review = assess_delegates(mailbox, full_access, send_as, send_on_behalf, domains)
    log.info(
        "Mailbox delegates: %d, %d outside the organisation",
        len(review.delegates),
        len(review.flagged),
    )
    return review
