"""check-tenant: the least-privilege preflight of one tenant profile.

Runbook:
1. Acquire a token for Microsoft Graph and one for Exchange Online; read the application
   permissions (``roles``) and directory roles (``wids``) they carry.
2. Read the directory roles of the app's service principal from Graph (falls back to ``wids``
   when the app may not read them).
3. Compare with what every playbook step needs (``playbook.preflight.REQUIREMENTS``) and report,
   step by step, which permission or role is missing: a markdown artifact and the return value.
   The report also says where the profile keeps the app credential (warning when it is stored in
   the block, readable through the Prefect API) and whether it has a hand-over key.

It reads only: no write reaches the tenant. The run ends Completed with the summary as its
message whether or not gaps were found; an unknown profile or a malformed name fails the run.
"""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.client.schemas.objects import State
from prefect.states import Completed

from m365.errors import M365Error
from orchestration.blocks import M365Tenant
from orchestration.clients import load_tenant
from orchestration.logs import run_logger
from playbook.params import TenantName, validate_profile_name
from playbook.preflight import (
    Api,
    ApiAccess,
    CredentialCheck,
    GrantedAccess,
    PreflightReport,
    Role,
    TokenProblem,
    analyse,
    credential_check,
    render_report,
)
from playbook.sealing import SealError, fingerprint, parse_public_key
from tasks.acquire_tokens import acquire_token_claims
from tasks.read_app_permissions import read_service_principal_roles


def _api_access(tenant: str, api: Api) -> ApiAccess:
    try:
        claims = acquire_token_claims(tenant, api)
    except (M365Error, TokenProblem) as exc:
        return ApiAccess(api=api, problem=f"{type(exc).__name__}: {exc}")
    return ApiAccess(api=api, permissions=claims.roles, wids=claims.wids)


def _credential(profile: M365Tenant) -> CredentialCheck:
    key = None
    if profile.handover_public_key:
        try:
            key = fingerprint(parse_public_key(profile.handover_public_key))
        except SealError:
            key = None
    return credential_check(
        profile.credential_source,
        profile.credential_summary(),
        worker_side=profile.worker_side,
        handover_key=key,
    )


def artifact_key(tenant: str) -> str:
    return f"check-tenant-{tenant}"


@flow(name="check-tenant", log_prints=False, persist_result=False)
def check_tenant(tenant: TenantName) -> State[PreflightReport]:
    """Report which permission or directory role each playbook step is missing in ``tenant``."""
    validate_profile_name(tenant)
    logger = run_logger()
    profile = load_tenant(tenant)
    client_id = profile.client_id
    credential = _credential(profile)
    logger.info("Tenant profile %s: %s", tenant, credential.where)
    for warning in credential.warnings:
        logger.warning("%s: %s", tenant, warning)

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
        credential=credential,
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
