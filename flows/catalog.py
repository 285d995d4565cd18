"""What a deployment of this project runs: one line per playbook, read by ``flows.serve``
(the runner) and ``flows.warm`` (the warm executor)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy


@dataclass(frozen=True)
class Served:
    """One deployment this process can serve; add a line to ``SERVED`` for a new playbook."""

    name: str
    module: str
    function: str
    cron: str | None = None
    tags: tuple[str, ...] = ("unblock-email",)
    options: dict[str, Any] = field(default_factory=dict)
    # Long-lived: the module's function of this name queues one run when serving begins.
    start: str | None = None


SERVED: tuple[Served, ...] = (
    Served(
        "unblock-user", "flows.unblock_user", "unblock_user", tags=("unblock-email", "on-demand")
    ),
    Served("verify-unblock", "flows.verify_unblock", "verify_unblock", tags=("unblock-email",)),
    Served("restricted-sweep", "flows.restricted_sweep", "restricted_sweep", cron="*/15 * * * *"),
    Served("check-tenant", "flows.check_tenant", "check_tenant"),
    Served(
        "watch-restricted",
        "flows.watch_restricted",
        "watch_restricted",
        tags=("unblock-email", "watch"),
        options={
            "concurrency_limit": ConcurrencyLimitConfig(
                limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE
            )
        },
        start="start_watcher",
    ),
)
