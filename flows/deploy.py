"""Deploy the playbooks (prefect.yaml) and offer the tenant profiles as a choice in the run forms.

``python -m flows.deploy``                   ``prefect --no-prompt deploy --all``, then the choice
``python -m flows.deploy --name unblock-user``  the same for some deployments (``prefect deploy``
                                                arguments pass through)
``python -m flows.deploy --tenant-choices``  only refresh the choice (after adding or removing a
                                              tenant profile; deploying again also refreshes it)

The tenant field of unblock-user and check-tenant becomes an ``enum`` of the saved M365 Tenant
blocks in the deployment's parameter schema: the UI shows a drop-down, and the server refuses any
other profile when the run is created. ``python -m flows.serve`` applies the same choice to the
deployments it serves. With no profile saved yet the field stays free text (a run naming a profile
that does not exist then fails when it starts, with UnknownTenantProfile).
"""

from __future__ import annotations

import argparse
import copy
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import DeploymentUpdate
from prefect.exceptions import ObjectNotFound

from orchestration.blocks import M365Tenant

REPO = Path(__file__).resolve().parent.parent

# Where each deployment's parameter schema holds a tenant profile name that a person picks. Not
# verify-unblock (its runs are created by the playbook: refusing one because a profile was
# removed meanwhile would leave a hand-over secret behind) nor restricted-sweep ("all" or a list).
TENANT_FIELDS: Mapping[str, tuple[str, ...]] = {
    "unblock-user": ("definitions", "UnblockRequest", "properties", "tenant"),
    "check-tenant": ("properties", "tenant"),
}
CHOICE_NOTE = (
    " The list holds the profiles saved when the playbook was last served or deployed"
    " (python -m flows.deploy --tenant-choices refreshes it)."
)


def with_tenant_choices(
    schema: Mapping[str, Any], path: Sequence[str], profiles: Iterable[str]
) -> dict[str, Any]:
    """A copy of ``schema`` whose field at ``path`` offers exactly ``profiles`` (sorted), or is
    free text again when there are none. ``enum`` comes first, so a name that is not a profile is
    refused with "'x' is not one of [...]", the list of the profiles."""
    result = copy.deepcopy(dict(schema))
    parent: Any = result
    for key in path[:-1]:
        parent = parent.get(key) if isinstance(parent, dict) else None
    if not isinstance(parent, dict) or not isinstance(parent.get(path[-1]), dict):
        raise ValueError(f"the parameter schema has no field at {'/'.join(path)}")
    field = {k: v for k, v in parent[path[-1]].items() if k != "enum"}
    description = str(field.get("description", "")).replace(CHOICE_NOTE, "")
    choices = sorted(set(profiles))
    if choices:
        field["description"] = description + CHOICE_NOTE
        parent[path[-1]] = {"enum": choices, **field}
    else:
        field["description"] = description
        parent[path[-1]] = field
    return result


def tenant_profiles(client: SyncPrefectClient) -> list[str]:
    """Names of the saved M365 Tenant blocks, sorted (no secret is read)."""
    try:
        # One call: this route returns every document of the type and ignores offset and limit
        # (Prefect 3.9), so paging through it never ends once there are a page's worth.
        documents = client.read_block_documents_by_type(
            block_type_slug=M365Tenant.get_block_type_slug(), include_secrets=False
        )
    except ObjectNotFound:  # the block type is not registered yet: no profile
        return []
    return sorted({d.name for d in documents if d.name and not d.is_anonymous})


def choice_note(profiles: Sequence[str]) -> str:
    """One line for the operator: what the tenant field offers now."""
    if profiles:
        return "tenant field offers: " + ", ".join(profiles)
    return (
        "no M365 Tenant profile is saved yet: the tenant field stays free text. Save one "
        "(Blocks > M365 Tenant), then run python -m flows.deploy --tenant-choices"
    )


def refresh_tenant_choices(client: SyncPrefectClient) -> dict[str, list[str]]:
    """Apply the current profiles to the deployed unblock-user and check-tenant deployments;
    returns what each one offers now (deployments that do not exist are skipped)."""
    profiles = tenant_profiles(client)
    done: dict[str, list[str]] = {}
    for name, path in TENANT_FIELDS.items():
        try:
            deployment = client.read_deployment_by_name(f"{name}/{name}")
        except ObjectNotFound:
            continue
        schema = with_tenant_choices(deployment.parameter_openapi_schema or {}, path, profiles)
        client.update_deployment(deployment.id, DeploymentUpdate(parameter_openapi_schema=schema))
        done[f"{name}/{name}"] = profiles
    return done


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flows.deploy",
        description="prefect deploy (prefect.yaml), then offer the tenant profiles as a choice",
    )
    parser.add_argument(
        "--tenant-choices",
        action="store_true",
        help="only refresh the tenant choice of the deployments already on the server",
    )
    args, deploy_args = parser.parse_known_args(argv)
    if not args.tenant_choices:
        command = [sys.executable, "-m", "prefect", "--no-prompt", "deploy"]
        command += deploy_args or ["--all"]
        print("$", " ".join(command[1:]), flush=True)
        finished = subprocess.run(command, cwd=REPO, check=False)  # noqa: S603 (fixed argv)
        if finished.returncode != 0:
            return finished.returncode
    with get_client(sync_client=True) as client:
        done = refresh_tenant_choices(client)
        profiles = tenant_profiles(client)
    if not done:
        print("no unblock-user or check-tenant deployment on the server yet", file=sys.stderr)
        return 1
    for name in done:
        print(f"{name}: {choice_note(profiles)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
