"""Helpers shared by the end-to-end suites: where logs go, timings, skips, the UI stack's parts."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import ARTIFACTS, ApiClient, EmulatorProcess, PrefectServer, postgres_bin

LOGS = ARTIFACTS / "e2e-logs"
AUTH = "soc-analyst:e2e-Basic-auth-0nly"  # throw-away credential of a loopback test server


def record_timing(name: str, seconds: float) -> None:
    LOGS.mkdir(parents=True, exist_ok=True)
    with open(LOGS / "timings.txt", "a") as f:
        f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {name} {seconds:.1f}s\n")
    print(f"[e2e timing] {name}: {seconds:.1f}s")


def need_chromium() -> None:
    if shutil.which("chromium") is None and not Path("/usr/bin/chromium").exists():
        pytest.skip("Debian chromium is not installed (scripts/install-system-deps.sh)")


def need_postgres() -> None:
    if postgres_bin() is None:
        pytest.skip("PostgreSQL server is not installed (scripts/install-system-deps.sh)")


@dataclass
class UiStack:
    server: PrefectServer
    api: ApiClient
    tenant: EmulatorProcess
    deployment: dict[str, Any]
