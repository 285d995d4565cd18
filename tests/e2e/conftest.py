"""Fixtures shared by the end-to-end suites (they start real servers; see harness.py)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import ARTIFACTS, EmulatorProcess, postgres_bin

LOGS = ARTIFACTS / "e2e-logs"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def e2e_logs() -> Path:
    """Where the suites' server, worker and emulator logs go (kept after the run)."""
    LOGS.mkdir(parents=True, exist_ok=True)
    return LOGS


def record_timing(name: str, seconds: float) -> None:
    LOGS.mkdir(parents=True, exist_ok=True)
    with open(LOGS / "timings.txt", "a") as f:
        f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {name} {seconds:.1f}s\n")
    print(f"[e2e timing] {name}: {seconds:.1f}s")


@pytest.fixture(scope="module")
def tenant_process(e2e_logs: Path, request: pytest.FixtureRequest) -> Iterator[EmulatorProcess]:
    """The emulated tenant as a subprocess (``python -m emulator``), one per test module."""
    emu = EmulatorProcess(e2e_logs / f"{request.module.__name__.rsplit('.', 1)[-1]}-emulator.log")
    try:
        emu.start()
        yield emu
    finally:
        emu.stop()


def need_chromium() -> None:
    if shutil.which("chromium") is None and not Path("/usr/bin/chromium").exists():
        pytest.skip("Debian chromium is not installed (scripts/install-system-deps.sh)")


def need_postgres() -> None:
    if postgres_bin() is None:
        pytest.skip("PostgreSQL server is not installed (scripts/install-system-deps.sh)")
