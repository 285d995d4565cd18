"""Preflight step: read the directory roles of the app's own service principal (Graph)."""

from __future__ import annotations

from orchestration.clients import clients_for
from orchestration.logs import run_logger
from playbook.preflight import Role

from ._policy import step


@step("read_service_principal_roles")
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
