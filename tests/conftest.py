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


# `make test` runs three pytest-xdist workers (`-n 3`), one group each. A group is whole test
# packages, run in file order against the worker's own Prefect server and emulator: what a
# serial run does, less the other groups, so no test meets state in an order a serial run would
# not give it. Only the fault matrix's cases, which share nothing but a profile, are dealt out
# (by a hash of the case's id, over the groups that would otherwise finish first); each checks
# its own row of docs/fault-matrix.md. The groups are sized from CI's --durations figures.
_GROUPS = (
    ("tests/playbook/",),
    ("tests/reliability/", "tests/sweep/", "tests/warm/", "tests/watch/"),
)  # everything else (the fast suites, e2e, eviction, evidence, security): group 0
_DEALT_OUT = "tests/reliability/test_fault_matrix.py::"
_DEALT_TO = ("group-1", "group-2")


def worker_group(nodeid: str) -> str:
    """The worker group of a test (``nodeid`` as pytest prints it)."""
    if nodeid.startswith(_DEALT_OUT):
        return _DEALT_TO[zlib.crc32(nodeid.encode()) % len(_DEALT_TO)]
    for number, paths in enumerate(_GROUPS, 1):
        if nodeid.startswith(paths):
            return f"group-{number}"
    return "group-0"


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's scope scheduling with our groups as the scopes (its ``xdist_group`` marks do not
    reach the scheduler under pytest 9.2, which no longer reads ``item._nodeid``)."""
    from xdist.scheduler import LoadScopeScheduling

    class PackageGroups(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return worker_group(nodeid)

    return PackageGroups(config, log)
