"""Shared fixtures: one emulated tenant and one real Prefect API server per test session."""

from __future__ import annotations

import os
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Isolate Prefect before it is imported anywhere: its own home, its own result storage.
_PREFECT_HOME = Path(tempfile.mkdtemp(prefix="unblock-tests-prefect-"))
os.environ["PREFECT_HOME"] = str(_PREFECT_HOME)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_TO_API_BATCH_INTERVAL", "0.3")
# The worker-side allowance for the emulator's host (m365.endpoints): this process runs flows, and
# every subprocess (flows.serve, workers, flow-run processes) inherits it.
os.environ["UNBLOCK_EMAIL_ALLOWED_HOSTS"] = "127.0.0.1"

from emulator import Emulator, demo_seed_path, load_seed  # noqa: E402


@pytest.fixture(scope="session")
def prefect_home() -> Path:
    """The PREFECT_HOME of this test session (result storage lives below it)."""
    return _PREFECT_HOME


@pytest.fixture(scope="session")
def emulator_session() -> Iterator[Emulator]:
    """One emulated tenant (the demo seed) for the session; tests get it reset."""
    emu = Emulator(load_seed(demo_seed_path()))
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def emulator(emulator_session: Emulator) -> Emulator:
    """The session emulator, back at the demo seed with no faults and an empty request log."""
    emulator_session.reset()
    return emulator_session


@pytest.fixture(autouse=True)
def fresh_limits() -> Iterator[None]:
    """Microsoft's per-app limits hold within a test; tests do not spend each other's budget.

    Every test talks to the same emulated tenant and app, so without this a test waits out the
    report calls of the tests before it (m365.limits.SHARED is per process).
    """
    from m365.limits import SHARED

    SHARED.reset()
    yield
    SHARED.reset()


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    """A real Prefect API server on SQLite (prefect_test_harness), shared by the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield os.environ.get("PREFECT_API_URL", "")


# `make test-fast` runs what needs no Prefect server, browser or PostgreSQL: a test is "server"
# when it (or a fixture it uses) needs the session's Prefect API, or it lives in a suite that
# starts servers of its own.
_SERVER_FIXTURES = frozenset({"prefect_api"})
_SERVER_PATHS = (
    "tests/e2e/",
    "tests/bench/",
    "tests/reliability/",
    "tests/watch/",
    "tests/warm/",
    "tests/playbook/test_demo_stop.py",
    "tests/playbook/test_handover_cli.py",
    "tests/security/test_leakscan.py",
    "tests/security/test_secret_leaks.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(str(config.rootpath))
    for item in items:
        where = Path(str(item.path)).relative_to(root).as_posix()
        if _SERVER_FIXTURES & set(getattr(item, "fixturenames", ())) or where.startswith(
            _SERVER_PATHS
        ):
            item.add_marker(pytest.mark.server)
    if getattr(config.option, "dist", "no") != "no":
        items.sort(key=lambda item: _start_rank(worker_scope(item.nodeid)))


# `make test` runs on pytest-xdist workers (`-n 5`), each with its own Prefect server and
# emulator. The unit of work is a test file: its tests keep their order and module fixtures, as
# in a serial run. The fault matrix alone is 188 flow runs and about 43 minutes (the `s` column
# of docs/fault-matrix.md), so its cases are dealt out in chunks; each case checks its own row of
# the page. The longest units start first, or the run would end waiting on one worker.
_FAULT_MATRIX = "tests/reliability/test_fault_matrix.py"
_FAULT_CHUNKS = 8
# Seconds per unit in a five-worker run of the whole suite (JUnit times, 2026-12-02); only the
# order matters. A unit not listed starts after these, in collection order.
_LONG_UNITS = {
    "tests/security/test_hostile_flows.py": 406,
    _FAULT_MATRIX: 250,  # each chunk
    "tests/e2e/test_ui_journey.py": 242,
    "tests/playbook/test_demo_stop.py": 242,
    "tests/e2e/test_distributed.py": 211,
    "tests/watch/test_watch_flow.py": 199,
    "tests/security/test_secret_leaks.py": 176,
    "tests/playbook/test_eviction_flow.py": 174,
    "tests/e2e/test_ui_eviction.py": 157,
    "tests/playbook/test_approval_journey.py": 153,
    "tests/eviction/test_eviction_tasks.py": 147,
    "tests/playbook/test_evidence_flow.py": 137,
    "tests/evidence/test_escalation.py": 120,
    "tests/playbook/test_tenant_choices.py": 115,
    "tests/evidence/test_evidence_tasks.py": 113,
    "tests/reliability/test_crash_recovery.py": 110,
    "tests/watch/test_watch_serve.py": 110,
    "tests/warm/test_warm_executor.py": 95,
}


def worker_scope(nodeid: str) -> str:
    """The unit of work a test belongs to: its file, or a chunk of the fault matrix."""
    path = nodeid.split("::", 1)[0]
    if path == _FAULT_MATRIX:
        case = nodeid.split("[", 1)[1] if "[" in nodeid else ""  # the doc check goes to chunk 0
        return f"{path}#{zlib.crc32(case.encode()) % _FAULT_CHUNKS if case else 0}"
    return path


def _start_rank(scope: str) -> int:
    return -_LONG_UNITS.get(scope.split("#", 1)[0], 0)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's scope scheduling over ``worker_scope``, in collection order (sorted above)."""
    from xdist.scheduler import LoadScopeScheduling

    config.option.loadscopereorder = False

    class FilesAndMatrixChunks(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return worker_scope(nodeid)

    return FilesAndMatrixChunks(config, log)
