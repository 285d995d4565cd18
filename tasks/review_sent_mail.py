"""Eviction evidence: what the account sent in the window (Exchange ``Get-MessageTraceV2``)."""

from __future__ import annotations

from orchestration.clients import clients_for
from orchestration.logs import run_logger
from playbook.eviction import (
    DEFINITE_ERRORS,
    SentMailSummary,
    SuspicionWindow,
    message_trace_span,
    not_checked,
    summarise_sent_mail,
)

from ._policy import step


@step("review_sent_mail")
def review_sent_mail(
    tenant: str, sender: str, window: SuspicionWindow, domains: frozenset[str]
) -> SentMailSummary:
    """Message count, recipients, external share, top subjects, first and last message and
    messages per hour. Read-only. Subjects are personal data: never in this log."""
    log = run_logger()
    start, end, _ = message_trace_span(window)
    try:
        trace = clients_for(tenant).exchange.get_message_trace(sender, start, end)
    except DEFINITE_ERRORS as exc:
        check = not_checked(exc, needs="the Exchange Administrator role")
        log.warning("Sent mail: %s", check.reason)
        return SentMailSummary(mailbox=sender, check=check)
    summary = summarise_sent_mail(sender, trace.rows, window, domains, complete=trace.complete)
    log.info(
        "Sent mail in the window: %d message(s) to %d recipient(s), %d external; %d query(ies)",
        summary.messages,
        summary.distinct_recipients,
        summary.external_recipients,
        trace.queries,
    )
    return summary
