"""Shared fixtures: one emulated tenant and one real Prefect API server per test session."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

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
