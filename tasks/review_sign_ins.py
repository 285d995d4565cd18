"""Eviction evidence: the account's sign-ins in the window and the 30 days before (Graph)."""

from __future__ import annotations

from orchestration.clients import clients_for
from orchestration.logs import run_logger
from playbook.eviction import (
    DEFINITE_ERRORS,
    SignInSummary,
    SuspicionWindow,
    not_checked,
    summarise_sign_ins,
)

from ._policy import step


@step("review_sign_ins")
def review_sign_ins(tenant: str, user_id: str, window: SuspicionWindow) -> SignInSummary:
    """Countries, IP addresses, apps and failures; new ones flagged. Read-only.

    Without Entra ID P1 the summary says "needs Entra ID P1". IP addresses are personal data:
    they go to the evidence artifact only, never to this log.
    """
    log = run_logger()
    try:
        sign_ins = clients_for(tenant).graph.list_sign_ins(
            user_id, window.baseline_start, window.end
        )
    except DEFINITE_ERRORS as exc:
        check = not_checked(exc, needs="AuditLog.Read.All and Directory.Read.All")
        log.warning("Sign-ins: %s", check.reason)
        return SignInSummary(user_id=user_id, check=check)
    summary = summarise_sign_ins(user_id, sign_ins, window)
    log.info(
        "Sign-ins in the window: %d (%d failed), %d new country(ies), %d new address(es)",
        summary.total,
        summary.failures,
        len(summary.new_countries),
        len(summary.new_ips),
    )
    return summary
