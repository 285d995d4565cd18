"""Step 2b: revoke the account's sign-in sessions."""

from __future__ import annotations

from m365.models import Receipt
from orchestration.clients import clients_for
from orchestration.logs import run_logger

from ._policy import step


@step("revoke_sessions")
def revoke_sessions(tenant: str, user_id: str) -> Receipt:
    """Invalidate refresh tokens and session cookies (harmless to repeat)."""
    run_logger().info("Revoking the sign-in sessions of %s", user_id)
    return clients_for(tenant).graph.revoke_sessions(user_id)
