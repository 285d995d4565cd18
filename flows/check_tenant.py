"""check-tenant: the least-privilege preflight of one tenant profile.

Runbook:
1. Acquire a token for Microsoft Graph and one for Exchange Online; read the application
   permissions (``roles``) and directory roles (``wids``) they carry.
2. Read the directory roles of the app's service principal from Graph (falls back to ``wids``
   when the app may not read them).
3. Compare with what every playbook step needs (``playbook.preflight.REQUIREMENTS``) and report,
   step by step, which permission or role is missing: a markdown artifact and the return value.

It reads only: no write reaches the tenant. The run ends Completed with the summary as its
message whether or not gaps were found; an unknown profile or a malformed name fails the run.
"""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.client.schemas.objects import State
from prefect.states import Completed

from m365.errors import M365Error
from playbook.blocks import validate_profile_name
from playbook.clients import load_config
from playbook.params import TenantName
from playbook.preflight import (
    Api,
    ApiAccess,
    GrantedAccess,
    PreflightReport,
    Role,
    TokenProblem,
    analyse,
    render_report,
)
from tasks._logging import run_logger
from tasks.acquire_tokens import acquire_token_claims
from tasks.read_app_permissions import read_service_principal_roles


def _api_access(tenant: str, api: Api) -> ApiAccess:
    try:
        claims = acquire_token_claims(tenant, api)
    except (M365Error, TokenProblem) as exc:
        return ApiAccess(api=api, problem=f"{type(exc).__name__}: {exc}")
    return ApiAccess(api=api, permissions=claims.roles, wids=claims.wids)


def artifact_key(tenant: str) -> str:
    return f"check-tenant-{tenant}"


@flow(name="check-tenant", log_prints=False, persist_result=False)
def check_tenant(tenant: TenantName) -> State[PreflightReport]:
    """Report which permission or directory role each playbook step is missing in ``tenant``."""
    validate_profile_name(tenant)
    logger = run_logger()
    client_id = load_config(tenant).client_id

    graph = _api_access(tenant, Api.GRAPH)
    exchange = _api_access(tenant, Api.EXCHANGE)

    sp_roles: tuple[Role, ...] | None = None
    sp_problem: str | None = None
    if graph.permissions is None:
        sp_problem = "not read: no Graph token"
    else:
        try:
            sp_roles = read_service_principal_roles(tenant, client_id)
        except M365Error as exc:
            sp_problem = f"{type(exc).__name__}: {exc}"

    report: PreflightReport = analyse(
        tenant,
        GrantedAccess(
            graph=graph,
            exchange=exchange,
            service_principal_roles=sp_roles,
            service_principal_roles_problem=sp_problem,
        ),
        client_id=client_id,
    )
    create_markdown_artifact(
        key=artifact_key(tenant),
        markdown=render_report(report),
        description=f"Preflight of tenant profile {tenant}",
    )
    for gap in report.gaps:
        logger.warning("%s/%s: %s", gap.flow, gap.step, gap.explanation)
    logger.info("Preflight of %s: %s", tenant, report.summary())
    return Completed(message=report.summary(), data=report)
