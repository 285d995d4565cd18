"""Process management for the end-to-end suites: real servers, workers and tenants as subprocesses.

Every process binds 127.0.0.1, logs to a file the test run keeps, is waited for with a timeout,
and is stopped with SIGTERM then SIGKILL (Prefect workers ignore the first SIGTERM, notes §3.4).
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from devtools import localstack
from devtools.localstack import LOOPBACK, LocalPrefect, ManagedProcess, free_port

from ..helpers.commands import run_command

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
PYTHON = sys.executable
PREFECT = str(VENV_BIN / "prefect")
ARTIFACTS = REPO / "artifacts"
UI_STATIC = Path(tempfile.gettempdir()) / "unblock-e2e-ui-static"

# Variables a child must not inherit from the developer's shell or from the pytest session.
_SCRUB = (
    "PREFECT_API_URL",
    "PREFECT_API_KEY",
    "PREFECT_API_AUTH_STRING",
    "PREFECT_PROFILE",
    "PREFECT_SERVER_DATABASE_CONNECTION_URL",
    "PREFECT_API_DATABASE_CONNECTION_URL",
    "PREFECT_SERVER_API_AUTH_STRING",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
    "ALL_PROXY",
)


def wait_for(
    predicate: Callable[[], Any], *, timeout: float, interval: float = 0.25, what: str = "condition"
) -> Any:
    """``localstack.wait_for`` that counts HTTP errors as "not yet" (a server restarting)."""
    return localstack.wait_for(
        predicate, timeout, what, interval, tolerate=(httpx.HTTPError, OSError)
    )


def child_env(extra: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
            "PREFECT_LOGGING_TO_API_BATCH_INTERVAL": "0.5",
            # The worker-side allowance for the emulator's host (m365.endpoints).
            "UNBLOCK_EMAIL_ALLOWED_HOSTS": LOOPBACK,
        }
    )
    env.update(extra)
    return env


@dataclass
class ApiClient:
    """Thin REST client for a Prefect server (httpx; basic auth when an auth string is given)."""

    api_url: str
    auth_string: str | None = None
    _client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        headers = {}
        if self.auth_string:
            token = base64.b64encode(self.auth_string.encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        self._client = httpx.Client(
            base_url=self.api_url.rstrip("/") + "/", headers=headers, timeout=15, trust_env=False
        )

    def close(self) -> None:
        self._client.close()

    def get(self, path: str, **kw: Any) -> Any:
        r = self._client.get(path.lstrip("/"), **kw)
        r.raise_for_status()
        return r.json()

    def post(self, path: str, body: Any = None, **kw: Any) -> Any:
        r = self._client.post(path.lstrip("/"), json=body, **kw)
        r.raise_for_status()
        return r.json() if r.content else None

    def raw(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return self._client.request(method, path.lstrip("/"), **kw)

    # -- the few calls the suites need -------------------------------------------------
    def deployment(self, flow_name: str, deployment_name: str) -> dict[str, Any]:
        return dict(self.get(f"deployments/name/{flow_name}/{deployment_name}"))

    def flow_run(self, run_id: str) -> dict[str, Any]:
        return dict(self.get(f"flow_runs/{run_id}"))

    def flow_runs(self, **flow_run_filter: Any) -> list[dict[str, Any]]:
        body: dict[str, Any] = {"limit": 200, "sort": "EXPECTED_START_TIME_ASC"}
        if flow_run_filter:
            body["flow_runs"] = flow_run_filter
        return list(self.post("flow_runs/filter", body))

    def runs_of_deployment(self, deployment_id: str) -> list[dict[str, Any]]:
        return self.flow_runs(deployment_id={"any_": [deployment_id]})

    def artifacts_of(self, run_id: str) -> list[dict[str, Any]]:
        body = {"artifacts": {"flow_run_id": {"any_": [run_id]}}, "limit": 50}
        return list(self.post("artifacts/filter", body))

    def resume(self, run_id: str, run_input: dict[str, Any]) -> dict[str, Any]:
        return dict(self.post(f"flow_runs/{run_id}/resume", {"run_input": run_input}))

    def wait_state(
        self, run_id: str, types: set[str], timeout: float, what: str = ""
    ) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            run = self.flow_run(run_id)
            state = run.get("state") or {}
            return run if state.get("type") in types else None

        return dict(
            wait_for(check, timeout=timeout, interval=0.5, what=what or f"{run_id} {types}")
        )


TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


@dataclass(kw_only=True)
class PrefectServer(LocalPrefect):
    """``prefect server start`` on 127.0.0.1 with its own PREFECT_HOME; restartable."""

    log_path: Path
    port: int = field(default_factory=free_port)
    database_url: str | None = None
    auth_string: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    process: ManagedProcess | None = None
    startup_seconds: list[float] = field(default_factory=list)

    def server_env(self) -> dict[str, str]:
        env = {
            "PREFECT_HOME": str(self.home),
            "PREFECT_SERVER_API_HOST": LOOPBACK,
            "PREFECT_SERVER_API_PORT": str(self.port),  # else /ui-settings says port 4200 (§5)
            "PREFECT_UI_API_URL": self.api_url,
            "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
            # The UI bundles are copied out of site-packages on a fresh PREFECT_HOME; one shared
            # copy per machine and Prefect version saves that on every start.
            "PREFECT_UI_STATIC_DIRECTORY": str(UI_STATIC),
            # Fast pause-expiry/late-run loops are not needed; keep the defaults.
        }
        if self.database_url:
            env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = self.database_url
        if self.auth_string:
            env["PREFECT_SERVER_API_AUTH_STRING"] = self.auth_string
        env.update(self.extra_env)
        return child_env(env)

    def client_env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """Environment for a process that talks to this server (serve, worker, CLI)."""
        env = {"PREFECT_HOME": str(self.home / "client"), "PREFECT_API_URL": self.api_url}
        if self.auth_string:
            env["PREFECT_API_AUTH_STRING"] = self.auth_string
        env.update(extra or {})
        return child_env(env)

    def start(self, timeout: float = 120) -> PrefectServer:
        self.home.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        self.process = localstack.start_prefect_server(
            self.port, self.server_env(), self.log_path, timeout=timeout
        )
        self.startup_seconds.append(time.monotonic() - t0)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(term_timeout=15)
            self.process = None

    def restart(self, timeout: float = 120) -> None:
        self.stop()
        self.start(timeout=timeout)

    def client(self) -> ApiClient:
        return ApiClient(self.api_url, self.auth_string)

    def cli(
        self,
        *args: str,
        timeout: float = 120,
        cwd: Path = REPO,
        extra: Mapping[str, str] | None = None,
    ) -> str:
        """Run ``prefect <args>`` against this server (``extra`` added to its environment);
        return stdout; raise on failure."""
        r = run_command(
            [PREFECT, "--no-prompt", *args], env=self.client_env(extra), cwd=cwd, timeout=timeout
        )
        with open(self.log_path.with_name("cli.log"), "a") as log:
            log.write(f"\n$ prefect {' '.join(args)}\n{r.stdout}\n{r.stderr}\nrc={r.returncode}\n")
        if r.returncode != 0:
            raise RuntimeError(
                f"prefect {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
            )
        return r.stdout


def postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    return found[-1].parent if found else None


@dataclass
class Postgres:
    """A throw-away PostgreSQL cluster in a temp dir, on 127.0.0.1 and a free port.

    PostgreSQL refuses to run as root, so as root the cluster belongs to the ``postgres`` user
    and every server binary is run through ``runuser -u postgres --``.
    """

    log_path: Path
    port: int = field(default_factory=free_port)
    user: str = "prefect"
    password: str = "prefect-e2e-pw"  # throw-away cluster on loopback
    database: str = "prefect"
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="unblock-pg-")))
    process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return (
            f"postgresql+asyncpg://{self.user}:{self.password}@{LOOPBACK}:{self.port}/"
            f"{self.database}"
        )

    def _as_owner(self, argv: list[str]) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *argv]
        return argv

    def start(self, timeout: float = 60) -> Postgres:
        bindir = postgres_bin()
        if bindir is None:
            raise RuntimeError(
                "PostgreSQL server binaries not found (scripts/install-system-deps.sh)"
            )
        data, sock = self.root / "data", self.root / "sock"
        data.mkdir()
        sock.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(data, "postgres", "postgres")
            shutil.chown(sock, "postgres", "postgres")
        os.chmod(data, 0o700)
        env = child_env({"LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"})
        init = run_command(
            self._as_owner(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "--encoding=UTF8",
                    "--no-sync",
                ]
            ),
            env=env,
            timeout=120,
        )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.write_text(init.stdout + init.stderr)
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed: {init.stderr}")
        self.process = ManagedProcess(
            "postgres",
            self._as_owner(
                [
                    str(bindir / "postgres"),
                    "-D",
                    str(data),
                    "-p",
                    str(self.port),
                    "-c",
                    f"listen_addresses={LOOPBACK}",
                    "-c",
                    f"unix_socket_directories={sock}",
                    "-c",
                    "fsync=off",
                    "-c",
                    "max_connections=100",
                ]
            ),
            env,
            self.log_path,
            cwd=self.root,
        ).start()

        def psql(sql: str) -> subprocess.CompletedProcess[str]:
            return run_command(
                self._as_owner(
                    [
                        str(bindir / "psql"),
                        "-h",
                        str(sock),
                        "-p",
                        str(self.port),
                        "-U",
                        "postgres",
                        "-v",
                        "ON_ERROR_STOP=1",
                        "-c",
                        sql,
                    ]
                ),
                env=env,
                timeout=30,
            )

        wait_for(
            lambda: (
                self.process is not None
                and self.process.alive()
                and psql("SELECT 1").returncode == 0
            ),
            timeout=timeout,
            what="postgres ready",
        )
        for sql in (
            f"CREATE ROLE {self.user} LOGIN PASSWORD '{self.password}'",
            f"CREATE DATABASE {self.database} OWNER {self.user}",
        ):
            r = psql(sql)
            if r.returncode != 0:
                raise RuntimeError(f"{sql}: {r.stderr}")
        return self

    def stop(self) -> None:
        if self.process is not None:
            # SIGTERM = "smart" shutdown waits for clients; SIGINT = "fast" (clients are gone).
            if self.process.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGINT)
            self.process.stop(term_timeout=15)
            self.process = None
        shutil.rmtree(self.root, ignore_errors=True)


def worker(
    server: PrefectServer,
    pool: str,
    name: str,
    log_dir: Path,
    extra: Mapping[str, str] | None = None,
    limit: int | None = None,
) -> ManagedProcess:
    """``prefect worker start`` for a process pool, polling every second."""
    env = server.client_env(
        {
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "PREFECT_WORKER_PREFETCH_SECONDS": "5",
            "PREFECT_HOME": str(server.home / f"worker-{name}"),
            **(extra or {}),
        }
    )
    argv = [PREFECT, "worker", "start", "--pool", pool, "--name", name, "--type", "process"]
    if limit is not None:
        argv += ["--limit", str(limit)]
    return ManagedProcess(f"worker-{name}", argv, env, log_dir / f"worker-{name}.log").start()


@contextlib.contextmanager
def stopping(*procs: Any) -> Iterator[None]:
    """Stop every given process (anything with .stop()) on the way out, in reverse order."""
    try:
        yield
    finally:
        for p in reversed(procs):
            with contextlib.suppress(Exception):
                p.stop()


# -- the emulated tenant ---------------------------------------------------------------------


@dataclass
class EmulatorProcess:
    """``python -m emulator`` in a subprocess; ``launch`` is its first stdout line (JSON)."""

    log_path: Path
    process: ManagedProcess | None = None
    launch: dict[str, Any] = field(default_factory=dict)

    def start(self, timeout: float = 60) -> EmulatorProcess:
        self.process = ManagedProcess(
            "emulator",
            [PYTHON, "-m", "emulator", "--log-level", "WARNING"],
            child_env({}),
            self.log_path,
            stdout_pipe=True,
        ).start()
        self.launch = self.process.read_json_line(timeout)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def tenant_config(self, tenant: str = "contoso", app: str = "playbook") -> Any:
        """An ``m365.config.TenantConfig`` for one app registration of the emulated tenant."""
        from pydantic import SecretStr

        from m365.config import TenantConfig

        t = self.launch["tenants"][tenant]
        a = t["apps"][app]
        return TenantConfig(
            tenant_id=t["tenant_id"],
            tenant_domain=t.get("domain"),
            client_id=a["client_id"],
            client_secret=SecretStr(a["client_secret"]),
            authority_host=self.launch["authority_host"],
            graph_base=self.launch["graph_base"],
            exchange_base=self.launch["exchange_base"],
            ca_bundle=self.launch["ca_path"],
        )

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        """Call the emulator's admin API (HTTPS on 127.0.0.1, its own CA)."""
        url = self.launch["admin_base"].rstrip("/") + "/" + path.lstrip("/")
        with httpx.Client(verify=self.launch["ca_path"], timeout=10, trust_env=False) as c:
            r = c.request(method, url, json=body)
            r.raise_for_status()
            return r.json()

    def tenant_state(self, tenant: str = "contoso") -> dict[str, Any]:
        """The admin API's summary of one tenant (users, restricted entries, unblock counts)."""
        return dict(self.admin("GET", "state")["tenants"][tenant])

    def restricted(self, tenant: str = "contoso") -> dict[str, dict[str, Any]]:
        """Entries on the tenant's Restricted users list, by lower-cased address."""
        entries = self.tenant_state(tenant)["restricted"]
        return {e["senderAddress"].lower(): e for e in entries}

    def user(self, upn: str, tenant: str = "contoso") -> dict[str, Any]:
        users = self.tenant_state(tenant)["users"]
        return dict(next(u for u in users if u["userPrincipalName"].lower() == upn.lower()))


def save_tenant_block(server: PrefectServer, config: Any, name: str = "contoso", **kw: Any) -> None:
    """Save an ``M365Tenant`` block built from ``config`` on ``server`` (from this process)."""
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    from orchestration.blocks import M365Tenant
    from tests.handover_keys import PUBLIC_KEY

    kw.setdefault("handover_public_key", PUBLIC_KEY)
    updates: dict[Any, Any] = {PREFECT_API_URL: server.api_url}
    if server.auth_string:
        updates[PREFECT_API_AUTH_STRING] = server.auth_string
    with temporary_settings(updates=updates):
        M365Tenant.from_config(config, **kw).save(name, overwrite=True)
