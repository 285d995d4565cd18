"""Single-machine mode: register the blocks and serve the playbook deployments from this process.

``python -m flows.serve`` serves unblock-user and verify-unblock, plus restricted-sweep and
check-tenant when their modules are present. ``--only NAME ...`` limits what is served. Flow runs
execute as subprocesses of this process; stop it with one SIGTERM/Ctrl-C (Prefect then pauses the
served deployments' schedules until they are served again).

The tenant field of unblock-user and check-tenant offers the M365 Tenant profiles saved when this
process starts (see flows.deploy); after adding a profile, serve again or run
``python -m flows.deploy --tenant-choices``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from prefect import get_client, serve
from prefect.utilities.callables import ParameterSchema

from flows.deploy import TENANT_FIELDS, choice_note, tenant_profiles, with_tenant_choices
from playbook.blocks import register_blocks


@dataclass(frozen=True)
class Served:
    """One deployment this process can serve; add a line to ``SERVED`` for a new playbook."""

    name: str
    module: str
    function: str
    cron: str | None = None
    tags: tuple[str, ...] = ("unblock-email",)
    options: dict[str, Any] = field(default_factory=dict)


SERVED: tuple[Served, ...] = (
    Served(
        "unblock-user", "flows.unblock_user", "unblock_user", tags=("unblock-email", "on-demand")
    ),
    Served("verify-unblock", "flows.verify_unblock", "verify_unblock", tags=("unblock-email",)),
    Served("restricted-sweep", "flows.restricted_sweep", "restricted_sweep", cron="*/15 * * * *"),
    Served("check-tenant", "flows.check_tenant", "check_tenant"),
)


def available(only: Sequence[str] | None = None) -> list[Served]:
    """The entries whose module exists (optionally restricted to ``only``)."""
    chosen = [s for s in SERVED if not only or s.name in only]
    return [s for s in chosen if importlib.util.find_spec(s.module) is not None]


def deployments(entries: Sequence[Served], profiles: Sequence[str] = ()) -> list[Any]:
    """The runner deployments; the tenant field offers ``profiles`` (free text if there are
    none)."""
    result = []
    for entry in entries:
        flow_obj = getattr(importlib.import_module(entry.module), entry.function)
        deployment = flow_obj.to_deployment(
            name=entry.name,
            tags=list(entry.tags),
            cron=entry.cron,
            enforce_parameter_schema=True,
            **entry.options,
        )
        path = TENANT_FIELDS.get(entry.name)
        if path is not None:
            schema = deployment._parameter_openapi_schema.model_dump_for_openapi()
            deployment._parameter_openapi_schema = ParameterSchema(
                **with_tenant_choices(schema, path, profiles)
            )
        result.append(deployment)
    return result


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m flows.serve", description=__doc__)
    parser.add_argument("--only", nargs="*", help="deployment names to serve (default: all)")
    parser.add_argument("--limit", type=int, default=4, help="concurrent flow runs")
    args = parser.parse_args(argv)
    register_blocks()
    entries = available(args.only)
    with get_client(sync_client=True) as client:
        profiles = tenant_profiles(client)
    print("serving:", ", ".join(e.name for e in entries), flush=True)
    print(choice_note(profiles), flush=True)
    serve(*deployments(entries, profiles), limit=args.limit)


if __name__ == "__main__":
    main()
