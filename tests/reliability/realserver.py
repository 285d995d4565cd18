"""A real ``prefect server start`` (SQLite in its own PREFECT_HOME) and a ``python -m flows.serve``
process against it, for the tests that must kill processes or read the database file.

Processes get their own session (``start_new_session``) so a test can SIGKILL exactly them and
their children; output goes to log files the leak scan reads.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, every: float = 0.3) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


@dataclass
class RealServer:
    home: Path
    port: int
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

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
            PYTHONUNBUFFERED="1",
        )
        env.update(extra)
        return env

    def log(self, name: str) -> Path:
        return self.home / f"{name}.log"

    def start(self, name: str, args: list[str], **extra_env: str) -> subprocess.Popen[bytes]:
        with self.log(name).open("ab") as out:
            proc = subprocess.Popen(
                args,
                cwd=REPO,
                env=self.env(**extra_env),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs[name] = proc
        return proc

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal the process group of ``name`` (the process and every child it started)."""
        proc = self.procs.pop(name)
        if proc.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.kill(name, signal.SIGTERM if name == "server" else signal.SIGKILL)

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.api_url}/health", timeout=2) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def start_server(self) -> None:
        proc = self.start(
            "server",
            [
                sys.executable,
                "-m",
                "prefect",
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
        )

        def up() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log('server').read_text()[-2000:]}")
            return self.healthy()

        wait_for(up, 180, "prefect server", every=0.5)

    def start_serve(self, *only: str, name: str = "serve", **extra_env: str) -> None:
        args = [sys.executable, "-m", "flows.serve"]
        if only:
            args += ["--only", *only]
        self.start(name, args, **extra_env)


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
    """Point this process's Prefect client at ``url`` for the block."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: url}):
        yield
