"""Eviction evidence: the account's sign-in methods and when each was registered (Graph)."""

from __future__ import annotations

from m365.errors import M365Error, TransientError
from m365.models import DirectoryAudit
from orchestration.clients import clients_for
from orchestration.logs import run_logger
from playbook.eviction import (
    CHECKED,
    DEFINITE_ERRORS,
    MethodsReview,
    SuspicionWindow,
    assess_methods,
    not_checked,
)

from ._policy import step

# The audit log only dates what was read: a transient failure that outlived the client's retries
# is "not checked" too, since a task retry would throw the list already read away with it.
AUDIT_ERRORS: tuple[type[M365Error], ...] = (*DEFINITE_ERRORS, TransientError)


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
    events: list[DirectoryAudit] = []
    dates = CHECKED
    try:
        events = graph.list_security_info_events(user_id, window.baseline_start, window.end)
    except AUDIT_ERRORS as exc:
        dates = not_checked(exc, needs="AuditLog.Read.All and Directory.Read.All")
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
