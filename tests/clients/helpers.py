"""Helpers for the client tests (reading the emulator's request log)."""

from __future__ import annotations

import itertools
from typing import Any

from emulator import Emulator
from m365 import RetryPolicy

TENANT = "contoso"


def calls(emulator: Emulator, endpoint: str) -> list[Any]:
    """Recorded requests for one endpoint name (``graph.get_user``, ``exo.Get-Mailbox``...)."""
    return [r for r in emulator.requests if r.endpoint == endpoint]


def gaps(records: list[Any]) -> list[float]:
    """Seconds between consecutive recorded requests (the emulator's monotonic clock)."""
    times = [r.monotonic for r in records]
    return [b - a for a, b in itertools.pairwise(times)]


def fast_policy(**overrides: Any) -> RetryPolicy:
    """The production policy with small backoffs so fault tests stay short."""
    base: dict[str, Any] = {"backoff_initial": 0.05, "backoff_max": 0.2}
    base.update(overrides)
    return RetryPolicy(**base)


def waits(emulator: Emulator, endpoint: str, statuses: list[int]) -> list[float]:
    """The seconds waited between the calls to ``endpoint``, once they were answered with
    ``statuses`` in that order (a retry test's two facts: what was retried, and when)."""
    records = calls(emulator, endpoint)
    assert [r.status for r in records] == statuses
    return gaps(records)
