"""Step: start one ``unblock-user`` run per entry to contain (reset now, then approval)."""

from __future__ import annotations

from datetime import datetime

import httpx
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

from orchestration.logs import run_logger
from playbook.sweep.containment import UNBLOCK_DEPLOYMENT, ContainmentOrder, ContainmentResult

from ._policy import single_try

SWEEP_TAG = "restricted-sweep"


def _http_error(exc: Exception) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"


def create_unblock_run(order: ContainmentOrder, tags: list[str]) -> FlowRun:
    """Create (or find) the one unblock-user run of an entry; do not wait for it.

    A plain function, shared by this step and the watcher. The server keeps one run per
    (flow, idempotency key): a repeated order returns the run that exists. Raises
    ``ObjectNotFound`` (no such deployment) or an HTTP error.
    """
    run: FlowRun = run_deployment(  # type: ignore[assignment]  # sync call: a FlowRun
        UNBLOCK_DEPLOYMENT,
        parameters=order.parameters,
        timeout=0,
        as_subflow=False,
        idempotency_key=order.idempotency_key,
        tags=tags,
    )
    return run


@single_try("start_containment")
def start_containment(
    tenant: str, orders: list[ContainmentOrder], sweep_created: datetime | None
) -> list[ContainmentResult]:
    """Create the runs (``timeout=0``: do not wait), deduplicated by idempotency key.

    The server keeps one run per (flow, idempotency key): a repeated order returns the run
    that exists. A run created before this sweep started is reported as ``preexisting``.
    """
    logger = run_logger()
    results: list[ContainmentResult] = []
    for k, order in enumerate(orders, 1):
        try:
            run = create_unblock_run(order, [SWEEP_TAG, f"tenant:{tenant}"])
        except ObjectNotFound:
            error = f"deployment {UNBLOCK_DEPLOYMENT} not found"
            logger.error("%s: %s; no run started", tenant, error)
            results.extend(
                ContainmentResult(address=o.address, idempotency_key=o.idempotency_key, error=error)
                for o in orders[k - 1 :]
            )
            break
        except (PrefectHTTPStatusError, httpx.HTTPError) as exc:
            error = _http_error(exc)
            logger.error(
                "%s: could not start unblock-user for %s: %s", tenant, order.account, error
            )
            results.append(
                ContainmentResult(
                    address=order.address, idempotency_key=order.idempotency_key, error=error
                )
            )
            continue
        preexisting = bool(
            sweep_created is not None and run.created is not None and run.created < sweep_created
        )
        logger.info(
            "%s: %s unblock-user run %s for %s (%d of %d)",
            tenant,
            "found existing" if preexisting else "started",
            run.id,
            order.account,
            k,
            len(orders),
        )
        results.append(
            ContainmentResult(
                address=order.address,
                idempotency_key=order.idempotency_key,
                run_id=str(run.id),
                run_name=run.name,
                preexisting=preexisting,
            )
        )
    return results
