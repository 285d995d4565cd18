"""The named run logger: ``prefect.flow_runs.unblock`` and ``prefect.task_runs.unblock``."""

from __future__ import annotations

import logging
from typing import Any

from prefect import get_run_logger
from prefect.logging.loggers import PrefectLogAdapter

from playbook import redaction

LOGGER_SUFFIX = "unblock"


def run_logger() -> logging.LoggerAdapter[Any]:
    """A child of the run logger, so records still reach the console and the API log handlers."""
    redaction.install()
    base = get_run_logger()
    assert isinstance(base, logging.LoggerAdapter)
    named = logging.getLogger(f"{base.logger.name}.{LOGGER_SUFFIX}")
    return PrefectLogAdapter(named, base.extra)
