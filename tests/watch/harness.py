"""The watcher's test stack: a real ``prefect server start`` (SQLite file, restartable), two
emulators (one per "region", so one can be throttled while the other is not), tenant profiles,
and the watcher flow in its own process (so it can be signalled).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from devtools.localstack import ManagedProcess, wait_for
from emulator import Emulator
from tests.reliability.realserver import RealServer, use_api

SPAM = "OutboundSpamLast24Hours=50;OutboundMailLast24Hours=60;OutboundSpamPercent=83.3"
# Leases of the watcher's deployment concurrency slot must outlive a server restart (Prefect keeps
# them in memory by default; see docs/benchmarks.md).
LEASES = {
    "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": (
        "prefect.server.concurrency.lease_storage.filesystem"
    )
}

WATCHER_MAIN = (
    "import json, sys\n"
    "from flows.watch_restricted import watch_restricted\n"
    "from playbook.watch import WatchRequest\n"
    "watch_restricted(WatchRequest.model_validate(json.loads(sys.argv[1])))\n"
)


def tenant_seed(
    name: str, users: list[str], restricted: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "name": name,
        "tenant_id": str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{name}.watch.test")),
        "domain": f"{name}.onmicrosoft.com",
        "settings": {"removal_delay_seconds": 0},
        "users": [{"upn": u} for u in users],
        "restricted": [
            {"address": a, "created": c, "reason": SPAM} for a, c in (restricted or {}).items()
        ],
        "apps": [
            {
                "name": "playbook",
                "client_id": str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{name}.watch.app")),
                "client_secret": f"emulator-secret-{name}-not-real",
                "roles": [  # the demo's playbook app: what unblock-user needs
                    "User.Read.All",
                    "User-PasswordProfile.ReadWrite.All",
                    "User.RevokeSessions.All",
                    "UserAuthenticationMethod.ReadWrite.All",
                    "MailboxSettings.Read",
                    "RoleManagement.Read.Directory",
                    "Application.Read.All",
                    "Exchange.ManageAsApp",
                ],
                "wids": ["User Administrator", "Exchange Administrator"],
            }
        ],
    }


class WatchServer(RealServer):
    """``RealServer`` with lease storage that survives a restart."""

    def env(self, **extra: str) -> dict[str, str]:
        return super().env(**{**LEASES, **extra})

    def restart(self) -> None:
        self.kill("server", sig=15)
        self.start_server()


@contextmanager
def watch_server(home: Path) -> Iterator[WatchServer]:
    from devtools.localstack import free_port

    server = WatchServer(home=home, port=free_port())
    server.start_server()
    try:
        with use_api(server.api_url):
            from orchestration.blocks import register_blocks

            register_blocks()
            yield server
    finally:
        server.stop_all()
        shutil.rmtree(home, ignore_errors=True)


def save_tenant(emulator: Emulator, name: str, policy: str) -> None:
    """The profile block of tenant ``name`` on ``emulator``, on the sweep ``policy``, with the
    tests' hand-over key."""
    from orchestration.blocks import M365Tenant

    from ..handover_keys import PUBLIC_KEY

    M365Tenant.from_config(
        emulator.tenant_config(name), policy=policy, handover_public_key=PUBLIC_KEY
    ).save(name)


def start_watcher(server: RealServer, name: str = "watcher", **request: Any) -> ManagedProcess:
    return server.start(name, [sys.executable, "-c", WATCHER_MAIN, json.dumps(request)])


# ---- reading the server --------------------------------------------------------------------


def flow_runs(flow: str, *, tags: list[str] | None = None) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterTags,
    )

    with get_client(sync_client=True) as client:
        return list(
            client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=[flow])),
                flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=tags)) if tags else None,
                limit=200,
            )
        )


def events(name: str, since: datetime) -> list[dict[str, Any]]:
    """Events of that name stored by the server (its event store, as the Event Feed reads it)."""
    from prefect.client.orchestration import get_client

    body = {
        "filter": {
            "event": {"name": [name]},
            "occurred": {"since": since.isoformat()},
            "order": "ASC",
        },
        "limit": 50,
    }
    with get_client(sync_client=True) as client:
        page = client.request("POST", "/events/filter", json=body).json()
    return list(page["events"])


def wait_events(
    name: str, since: datetime, count: int, timeout: float = 60
) -> list[dict[str, Any]]:
    def enough() -> list[dict[str, Any]] | None:
        found = events(name, since)
        return found if len(found) >= count else None

    result: list[dict[str, Any]] = wait_for(enough, timeout, f"{count} {name} event(s)", every=1.0)
    return result


def db_counts(db: Path, watcher_run_id: str) -> dict[str, int]:
    """What a watcher run can have written, from the SQLite file (read-only): every task run,
    flow run, log line, artifact and variable; the watcher run's states; every event except
    Prefect's own flow-run heartbeat and the state changes of other runs (e.g. Late)."""
    run = str(watcher_run_id)
    queries = {
        "flow_run": "SELECT count(*) FROM flow_run",
        "task_run": "SELECT count(*) FROM task_run",
        "log": "SELECT count(*) FROM log",
        "artifact": "SELECT count(*) FROM artifact",
        "variable": "SELECT count(*) FROM variable",
        "watcher_states": "SELECT count(*) FROM flow_run_state WHERE flow_run_id = ?",
        "events": "SELECT count(*) FROM events WHERE event != 'prefect.flow-run.heartbeat' "
        "AND NOT (event LIKE 'prefect.flow-run.%' AND resource_id != 'prefect.flow-run.' || ?)",
    }
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
        return {
            name: int(conn.execute(q, (run,) if "?" in q else ()).fetchone()[0])
            for name, q in queries.items()
        }


@dataclass
class Calls:
    """Emulator requests of one tenant, by endpoint."""

    emu: Emulator
    tenant: str

    def of(self, endpoint: str, since: float = 0.0) -> list[Any]:
        return [
            r
            for r in self.emu.requests
            if r.tenant == self.tenant and r.endpoint == endpoint and r.monotonic >= since
        ]

    def listings(self, since: float = 0.0) -> list[Any]:
        return self.of("exo.Get-BlockedSenderAddress", since)
