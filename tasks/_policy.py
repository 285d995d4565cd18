"""The one retry policy of every step task.

The m365 transport already retries throttling and 5xx inside one call (honouring Retry-After);
the task-level retries below cover what is left (a call that ran out of its own budget, a dropped
connection on a write). Only transient errors are retried, and ``m365.errors.is_retryable`` alone
decides what is transient.
"""

from __future__ import annotations

import os
from typing import Any

from prefect import Task
from prefect.client.schemas.objects import State, TaskRun

from m365.errors import is_retryable

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
