"""Compromise check and guardrail input: the Entra directory roles the account holds (Graph)."""

from __future__ import annotations

from orchestration.clients import clients_for
from orchestration.logs import run_logger
from playbook.evidence import RolesReview, role_names

from ._policy import step


@step("review_admin_roles")
def review_admin_roles(tenant: str, user_id: str) -> RolesReview:
    """``memberOf`` directory roles of the user. Read-only."""
    review = RolesReview(
        user_id=user_id, roles=role_names(clients_for(tenant).graph.list_directory_roles(user_id))
    )
    run_logger().info(
        "Admin roles of %s: %s", user_id, ", ".join(review.roles) if review.roles else "none"
    )
    return review
