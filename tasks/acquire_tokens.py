"""Preflight step: acquire an access token for one API and read what it grants.

Only the token's claims leave this task (``roles``, ``wids``, audience, tenant, app id); the
token itself is never logged, returned or persisted.
"""

from __future__ import annotations

from orchestration.clients import clients_for
from orchestration.logs import run_logger
from playbook.preflight import Api, TokenClaims, read_claims

from ._policy import step


@step("acquire_token_claims")
def acquire_token_claims(tenant: str, api: Api) -> TokenClaims:
    """A client-credentials token for Graph or Exchange, decoded (no signature check: our own)."""
    clients = clients_for(tenant)
    resource = clients.graph.resource if api is Api.GRAPH else clients.exchange.resource
    run_logger().info(
        "Acquiring a token for %s (%s) in tenant profile %s", api.value, resource, tenant
    )
    # The transport's retry policy covers throttling and 5xx of the token endpoint, as for any call.
    token = clients.transport.retry_policy.run(
        lambda: clients.tokens.token(resource), operation=f"token for {api.value}"
    )
    claims = read_claims(token)
    del token
    run_logger().info(
        "%s token: %d application permission(s), %d directory role(s)",
        api.value,
        len(claims.roles),
        len(claims.wids),
    )
    return claims
