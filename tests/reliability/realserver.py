"""A real ``prefect server start`` (SQLite in its own PREFECT_HOME) and a ``python -m flows.serve``
process against it, for the tests that must kill processes or read the database file
(``served_stack`` adds the demo tenant and its profile).

Processes get their own session (``start_new_session``) so a test can SIGKILL exactly them and
their children; output goes to log files the leak scan reads.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devtools.localstack import (
    ManagedProcess,
    free_port,
    http_ok,
    start_prefect_server,
    wait_for,
)
from emulator import Emulator, demo_seed_path, load_seed

__all__ = [
    "RealServer",
    "deployment",
    "real_server",
    "serve_and_wait",
    "served_stack",
    "use_api",
    "wait_for",
]

ALL_FLOWS = ("unblock-user", "verify-unblock", "restricted-sweep", "check-tenant")


@dataclass
class RealServer:
    home: Path
    port: int
    procs: dict[str, ManagedProcess] = field(default_factory=dict)
    # Only for worker processes (flows.serve): the app credential in the recommended mode.
    worker_env: dict[str, str] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def db_path(self) -> Path:
        return self.home / "prefect.db"

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("PREFECT_") and not k.startswith("M365_")
        }
        env.update(
            PREFECT_HOME=str(self.home),
            PREFECT_API_URL=self.api_url,
            PREFECT_SERVER_API_HOST="127.0.0.1",
            PREFECT_SERVER_API_PORT=str(self.port),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_SERVER_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{self.db_path}",
            PREFECT_LOGGING_TO_API_BATCH_INTERVAL="0.3",
            PREFECT_RUNNER_POLL_FREQUENCY="1",
            PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_LOOP_SECONDS="1",
            UNBLOCK_APPROVAL_POLL_SECONDS="1",
            # The worker-side allowance for the emulator's host (m365.endpoints).
            UNBLOCK_EMAIL_ALLOWED_HOSTS="127.0.0.1",
            PYTHONUNBUFFERED="1",
        )
        env.update(extra)
        return env

    def log(self, name: str) -> Path:
        return self.home / f"{name}.log"

    def start(self, name: str, args: list[str], **extra_env: str) -> ManagedProcess:
        proc = ManagedProcess(name, args, self.env(**extra_env), self.log(name)).start()
        self.procs[name] = proc
        return proc

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal the process group of ``name`` (the process and every child it started)."""
        self.procs.pop(name).kill(sig)

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.kill(name, signal.SIGTERM if name == "server" else signal.SIGKILL)

    def healthy(self) -> bool:
        return http_ok(f"{self.api_url}/health")

    def start_server(self) -> None:
        self.procs["server"] = start_prefect_server(self.port, self.env(), self.log("server"))

    def start_serve(self, *only: str, name: str = "serve", **extra_env: str) -> None:
        args = [sys.executable, "-m", "flows.serve"]
        if only:
            args += ["--only", *only]
        self.start(name, args, **{**self.worker_env, **extra_env})


@contextmanager
def real_server(home: Path) -> Iterator[RealServer]:
    server = RealServer(home=home, port=free_port())
    server.start_server()
    try:
        yield server
    finally:
        server.stop_all()


@contextmanager
def use_api(url: str) -> Iterator[None]:
    """Point this process's Prefect client at ``url`` for the block.

    Prefect's events and API-log workers are per-process singletons that stay bound to the API
    they first posted to. They are drained on the way in and out, so the block's events reach
    ``url`` and no later test posts to a server that has stopped (its drain would then hang).
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    _drain_prefect_workers()
    with temporary_settings(updates={PREFECT_API_URL: url}):
        try:
            yield
        finally:
            _drain_prefect_workers()


def _drain_prefect_workers() -> None:
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    EventsWorker.drain_all(timeout=30)
    APILogWorker.drain_all(timeout=30)


def deployment(name: str) -> Any:
    """The deployment ``flow/deployment`` on the current API, or None."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            return client.read_deployment_by_name(name)
        except ObjectNotFound:
            return None


def serve_and_wait(server: RealServer, *flows: str) -> None:
    """``flows.serve`` (all four deployments, or ``flows``), once they are registered."""
    server.start_serve(*flows, name="serve")
    for flow in flows or ALL_FLOWS:
        wait_for(lambda f=flow: deployment(f"{f}/{f}"), 120, f"deployment {flow}")


# The recommended mode: the profile names this variable; only the worker's environment has it.
CLIENT_SECRET_ENV = "CONTOSO_CLIENT_SECRET"


@contextmanager
def served_stack(prefix: str, *flows: str) -> Iterator[tuple[RealServer, Emulator]]:
    """The demo tenant, a real server with the 'contoso' profile, and ``flows.serve``.

    The profile keeps the app credential on the worker (``environment-variable``): the secret is
    in the environment of ``flows.serve`` (and its flow-run processes) only, never in Prefect.
    """
    from ..handover_keys import PUBLIC_KEY

    emu = Emulator(load_seed(demo_seed_path()))
    emu.start()
    try:
        with real_server(Path(tempfile.mkdtemp(prefix=prefix))) as server, use_api(server.api_url):
            from orchestration.blocks import M365Tenant, register_blocks

            register_blocks()
            config = emu.tenant_config("contoso")
            M365Tenant.from_config(
                config, handover_public_key=PUBLIC_KEY, client_secret_env=CLIENT_SECRET_ENV
            ).save("contoso", overwrite=True)
            assert config.client_secret is not None
            server.worker_env[CLIENT_SECRET_ENV] = config.client_secret.get_secret_value()
            serve_and_wait(server, *flows)
            yield server, emu
    finally:
        emu.stop()
