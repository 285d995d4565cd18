"""Step 7b: schedule the follow-up check (the verify-unblock deployment)."""

from __future__ import annotations

from datetime import datetime

from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment

from orchestration.logs import run_logger
from playbook.params import VerifyRequest
from playbook.results import ScheduledCheck

from ._policy import single_try

VERIFY_DEPLOYMENT = "verify-unblock/verify-unblock"


@single_try("schedule_verification")
def schedule_verification(check: VerifyRequest, at: datetime, run_name: str) -> ScheduledCheck:
    """Create a verify-unblock run scheduled at ``at`` (not a subflow: it outlives this run)."""
    run = run_deployment(
        name=VERIFY_DEPLOYMENT,
        parameters={"check": check.model_dump(mode="json")},
        scheduled_time=at,
        timeout=0,
        as_subflow=False,
        flow_run_name=run_name,
        tags=["unblock-email", "follow-up"],
    )
    assert isinstance(run, FlowRun)
    run_logger().info("Follow-up %s scheduled for %s", run.name, at.isoformat())
    return ScheduledCheck(flow_run_id=str(run.id), flow_run_name=run.name, scheduled_for=at)
