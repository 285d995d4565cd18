"""Eviction evidence: the account's sign-in methods and when each was registered (Graph)."""

from __future__ import annotations

from orchestration.clients import clients_for
from orchestration.logs import run_logger
from playbook.eviction import (
    DEFINITE_ERRORS,
    MethodsReview,
    SuspicionWindow,
    assess_methods,
    not_checked,
)

from ._eviction_steps import read_audit_events
from ._policy import step


@step("review_sign_in_methods")
def review_sign_in_methods(tenant: str, user_id: str, window: SuspicionWindow) -> MethodsReview:
    """List the methods, then read the "registered security info" events for their dates.
    Read-only. Either read may fail alone: the review says "not checked" and why."""
    log = run_logger()
    clients = clients_for(tenant)
    graph = clients.graph
    try:
        methods = graph.list_authentication_methods(user_id)
    except DEFINITE_ERRORS as exc:
        check = not_checked(exc, needs="UserAuthenticationMethod.Read.All")
        log.warning("Sign-in methods: %s", check.reason)
        return MethodsReview(user_id=user_id, check=check)
    events, dates = read_audit_events(graph.list_security_info_events, user_id, window)
    review = assess_methods(
        user_id, methods, events, window, own_app_id=graph.client_id, dates=dates
    )
    log.info(
        "Sign-in methods: %d, %d registered inside the window; registration dates %s",
        len(review.methods),
        len(review.flagged),
        dates.reason or "read from the audit log",
    )
    return review
