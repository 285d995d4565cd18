"""Step 1: resolve the affected account in Entra ID (Graph)."""

from __future__ import annotations

from m365.models import User
from orchestration.clients import clients_for
from orchestration.logs import run_logger

from ._policy import step


@step("resolve_account")
def resolve_account(tenant: str, account: str) -> User:
    """Look the account up by UPN or any SMTP address; raises NotFoundError if there is none."""
    run_logger().info("Resolving %s in tenant profile %s", account, tenant)
    return clients_for(tenant).graph.get_user(account)
