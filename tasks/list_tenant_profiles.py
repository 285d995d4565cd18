"""Step: find every tenant profile (``M365Tenant`` block) the sweep may cover."""

from __future__ import annotations

from prefect.client.orchestration import get_client

from orchestration.blocks import M365Tenant
from orchestration.logs import run_logger

from ._policy import single_try


@single_try("list_tenant_profiles")
def list_tenant_profiles() -> list[str]:
    """Names of all saved ``M365Tenant`` blocks, sorted (secrets are not read here)."""
    slug = M365Tenant.get_block_type_slug()
    # One read: the server answers this endpoint with every document and ignores offset and
    # limit, so paging by them would read the same documents forever past 200 profiles.
    with get_client(sync_client=True) as client:
        documents = client.read_block_documents_by_type(block_type_slug=slug, include_secrets=False)
    names = [d.name for d in documents if d.name and not d.is_anonymous]
    run_logger().info("%d tenant profile(s): %s", len(names), ", ".join(sorted(names)))
    return sorted(set(names))
