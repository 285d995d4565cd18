"""Preflight step: read the directory roles of the app's own service principal (Graph)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from orchestration.clients import clients_for
from orchestration.logs import run_logger
from playbook.preflight import Role

from ._policy import RETRIES, RETRY_DELAYS, RETRY_JITTER, retry_if_transient


@task(
    name="read_service_principal_roles",
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS,
    retry_jitter_factor=RETRY_JITTER,
    retry_condition_fn=retry_if_transient,
    persist_result=False,
    cache_policy=NO_CACHE,
)
def read_service_principal_roles(tenant: str, client_id: str) -> tuple[Role, ...]:
    """Directory roles assigned to the service principal of ``client_id``."""
    run_logger().info(
        "Reading the directory roles of app %s in tenant profile %s", client_id, tenant
    )
    roles = clients_for(tenant).graph.get_service_principal_roles(client_id)
    return tuple(
        Role(template_id=r.role_template_id.lower(), display_name=r.display_name)
        for r in roles
        if r.role_template_id
    )
