"""Step: find every tenant profile (``M365Tenant`` block) the sweep may cover."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client

from playbook.blocks import M365Tenant

_PAGE = 200


@task(name="list_tenant_profiles", cache_policy=NO_CACHE)
def list_tenant_profiles() -> list[str]:
    """Names of all saved ``M365Tenant`` blocks, sorted (secrets are not read here)."""
    slug = M365Tenant.get_block_type_slug()
    names: list[str] = []
    with get_client(sync_client=True) as client:
        offset = 0
        while True:
            page = client.read_block_documents_by_type(
                block_type_slug=slug, offset=offset, limit=_PAGE, include_secrets=False
            )
            names.extend(d.name for d in page if d.name and not d.is_anonymous)
            if len(page) < _PAGE:
                break
            offset += _PAGE
    get_run_logger().info("%d tenant profile(s): %s", len(names), ", ".join(sorted(names)))
    return sorted(set(names))
