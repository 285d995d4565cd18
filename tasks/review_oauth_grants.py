"""Eviction evidence: the apps the account consented to, and when (Graph)."""

from __future__ import annotations

from orchestration.clients import clients_for
from orchestration.logs import run_logger
from playbook.eviction import (
    DEFINITE_ERRORS,
    GrantsReview,
    SuspicionWindow,
    assess_grants,
    not_checked,
)

from ._eviction_steps import read_audit_events
from ._policy import step


@step("review_oauth_grants")
def review_oauth_grants(tenant: str, user_id: str, window: SuspicionWindow) -> GrantsReview:
    """The user's delegated grants with app names; consent times from "Consent to application"
    events (a grant records none). Read-only."""
    log = run_logger()
    graph = clients_for(tenant).graph
    try:
        grants = graph.list_oauth2_grants(user_id)
    except DEFINITE_ERRORS as exc:
        check = not_checked(exc, needs="DelegatedPermissionGrant.ReadWrite.All")
        log.warning("App consents: %s", check.reason)
        return GrantsReview(user_id=user_id, check=check)
    events, consents = read_audit_events(graph.list_consent_events, user_id, window)
    review = assess_grants(user_id, grants, events, window, consents=consents)
    log.info(
        "App consents: %d, %d with mail scopes; consent times %s",
        len(review.grants),
        len(review.flagged),
        consents.reason or "read from the audit log",
    )
    return review
