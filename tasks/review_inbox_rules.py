"""Compromise check: the inbox rules, hidden ones included (Exchange ``Get-InboxRule``)."""

from __future__ import annotations

from orchestration.clients import clients_for
from orchestration.logs import run_logger
from playbook.evidence import RulesReview, classify_rules

from ._policy import step


@step("review_inbox_rules")
def review_inbox_rules(tenant: str, mailbox: str, domains: frozenset[str]) -> RulesReview:
    """Every rule, hidden ones included. Read-only.

    The client already reads the rules with ``-IncludeHidden`` and once without, and marks a
    rule only the first listing shows as hidden (Outlook does not display it).
    """
    log = run_logger()
    everything = clients_for(tenant).exchange.get_inbox_rules(mailbox, include_hidden=True)
    visible = [r for r in everything if not r.hidden]
    review = RulesReview(mailbox=mailbox, rules=classify_rules(everything, visible, domains))
    log.info(
        "Inbox rules of %s: %d rule(s), %d suspicious, %d hidden",
        mailbox,
        len(review.rules),
        sum(1 for r in review.rules if r.suspicious),
        sum(1 for r in review.rules if r.hidden),
    )
    return review
