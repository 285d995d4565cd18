"""Which path executes a flow run: the report names it, so an analyst sees how it was contained."""

from __future__ import annotations

import os
from contextvars import ContextVar

# Set by flows.warm around each run it executes; unset in a runner's or worker's run process.
WARM_EXECUTOR: ContextVar[str | None] = ContextVar("unblock_email_warm_executor", default=None)


def execution_path(flow_run_id: str) -> str:
    """A short description of the process that runs ``flow_run_id``."""
    warm = WARM_EXECUTOR.get()
    if warm is not None:
        return warm
    # Runners and workers start the run's own process with its id in this variable.
    if os.environ.get("PREFECT__FLOW_RUN_ID") == flow_run_id:
        return f"its own flow-run process (pid {os.getpid()}, started by a runner or worker)"
    return f"called in process {os.getpid()} (not from a deployment)"
