"""The one retry policy of every step task, and the decorators that apply it.

The m365 transport already retries throttling and 5xx inside one call (honouring Retry-After);
the task-level retries below cover what is left (a call that ran out of its own budget, a dropped
connection on a write). Only transient errors are retried, and ``m365.errors.is_retryable`` alone
decides what is transient.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun

from m365.errors import is_retryable

P = ParamSpec("P")
R = TypeVar("R")

RETRIES = int(os.environ.get("UNBLOCK_TASK_RETRIES", "3"))
RETRY_DELAYS: list[float] = [1.0, 4.0, 15.0]
RETRY_JITTER = 0.3


def retry_if_transient(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Prefect ``retry_condition_fn``: retry only when the failure is a transient M365 error."""
    try:
        state.result(raise_on_failure=True)
    except BaseException as exc:  # noqa: BLE001 - the predicate only classifies the error
        return is_retryable(exc)
    return False


def step(name: str) -> Callable[[Callable[P, R]], Task[P, R]]:
    """A task that calls M365: retried on transient errors only, by the policy above.

    Nothing is persisted or cached: results and inputs can carry accounts and credentials.
    """
    return task(
        name=name,
        retries=RETRIES,
        retry_delay_seconds=RETRY_DELAYS,
        retry_jitter_factor=RETRY_JITTER,
        retry_condition_fn=retry_if_transient,
        persist_result=False,
        cache_policy=NO_CACHE,
    )


def single_try(name: str) -> Callable[[Callable[P, R]], Task[P, R]]:
    """A task Prefect never retries: a retry could repeat its side effect, or the caller
    handles its failure (the sweep records it per tenant). Nothing is persisted or cached.
    """
    return task(name=name, persist_result=False, cache_policy=NO_CACHE)
