"""Distributed mode: PostgreSQL-backed server with basic auth, the project's prefect.yaml, and a
process work pool with two workers.

Stack (one per module): a throw-away PostgreSQL cluster (initdb in a temp dir, 127.0.0.1, a free
port), ``prefect server start`` on it with basic auth, the emulated tenant and its ``M365Tenant``
block, ``prefect --no-prompt deploy --all`` from the project's prefect.yaml, and two workers
(``prefect worker start --pool unblock-email --name w1/w2 --limit 2``). The sweep in ``contain``
mode fans out ``unblock-user`` runs; the workers execute them; they pause for approval; the
server is restarted while they are paused; the approvals go in through the REST API; every run
reaches its final state and the tenant shows the result.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.harness import (
    PREFECT,
    REPO,
    TERMINAL,
    ApiClient,
    EmulatorProcess,
    ManagedProcess,
    Postgres,
    PrefectServer,
    save_tenant_block,
    wait_for,
    worker,
)
from tests.e2e.helpers import need_postgres, record_timing
from tests.helpers.commands import run_command

pytestmark = pytest.mark.e2e

AUTH = "soc-automation:e2e-Dist-auth-0nly"  # throw-away credential of a loopback test server
POOL = "unblock-email"  # the pool named in prefect.yaml
WORKER_LIMIT = 2  # per worker: three paused runs cannot all sit on one worker


@dataclass
class Cluster:
    postgres: Postgres
    server: PrefectServer
    api: ApiClient
    tenant: EmulatorProcess
    workers: dict[str, ManagedProcess] = field(default_factory=dict)


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, e2e_logs: Path, tenant_process: EmulatorProcess
) -> Iterator[Cluster]:
    need_postgres()
    t0 = time.monotonic()
    pg = Postgres(log_path=e2e_logs / "dist-postgres.log")
    server = PrefectServer(
        home=tmp_path_factory.mktemp("dist-prefect-home"),
        log_path=e2e_logs / "dist-server.log",
        auth_string=AUTH,
        # The restricted-sweep deployment has a 15-minute cron; no scheduled sweep may start
        # in the middle of the test. Runs created through the API are unaffected.
        extra_env={"PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false"},
    )
    workers: dict[str, ManagedProcess] = {}
    api: ApiClient | None = None
    try:
        pg.start()
        record_timing("dist postgres initdb+start", time.monotonic() - t0)
        server.database_url = pg.url
        server.start()
        record_timing("dist prefect server cold start on postgres", server.startup_seconds[-1])
        api = server.client()
        save_tenant_block(server, tenant_process.tenant_config("contoso", "playbook"), "contoso")
        t1 = time.monotonic()
        server.cli("work-pool", "create", POOL, "--type", "process")
        deploy_env = {"UNBLOCK_EMAIL_HOME": str(REPO)}
        out = server.cli("deploy", "--all", timeout=300, extra=deploy_env)
        record_timing("dist prefect deploy --all", time.monotonic() - t1)
        assert "unblock-user" in out
        for name in ("w1", "w2"):
            workers[name] = worker(
                server,
                POOL,
                name,
                e2e_logs,
                extra={**deploy_env, "UNBLOCK_APPROVAL_POLL_SECONDS": "1"},
                limit=WORKER_LIMIT,
            )
        client = api
        wait_for(
            lambda: _online_workers(client) >= {"w1", "w2"},
            timeout=120,
            what="both workers online",
        )
        record_timing("dist stack start (pg+server+deploy+workers)", time.monotonic() - t0)
        yield Cluster(pg, server, api, tenant_process, workers)
    finally:
        # Workers first (a worker ignores the first SIGTERM while the API is up, notes §3.4;
        # ManagedProcess escalates to SIGKILL of its process group), then the server, then
        # PostgreSQL.
        for proc in workers.values():
            proc.stop(term_timeout=5)
        if api is not None:
            api.close()
        server.stop()
        pg.stop()


def _online_workers(api: ApiClient) -> set[str]:
    workers = api.post(f"work_pools/{POOL}/workers/filter", {})
    return {w["name"] for w in workers if w.get("status") == "ONLINE"}


def _account(run: dict[str, Any]) -> str:
    return str(run["parameters"]["request"]["account"]).lower()


# -- tests -----------------------------------------------------------------------------------


def test_api_refuses_calls_without_credentials(cluster: Cluster) -> None:
    url = cluster.server.api_url
    anonymous = ApiClient(url)
    wrong = ApiClient(url, "soc-automation:wrong")
    try:
        assert anonymous.raw("POST", "flows/filter", json={}).status_code == 401
        assert anonymous.raw("GET", f"work_pools/{POOL}").status_code == 401
        assert wrong.raw("POST", "flows/filter", json={}).status_code == 401
        assert anonymous.raw("GET", "health").status_code == 200  # probes stay open
        assert cluster.api.raw("POST", "flows/filter", json={}).status_code == 200
    finally:
        anonymous.close()
        wrong.close()
    ui = httpx.get(cluster.server.url + "/ui-settings", trust_env=False, timeout=10).json()
    assert ui["auth"] == "BASIC"
    # The CLI without PREFECT_API_AUTH_STRING is refused too.
    env = cluster.server.client_env()
    env.pop("PREFECT_API_AUTH_STRING")
    r = run_command(
        [PREFECT, "--no-prompt", "work-pool", "inspect", POOL], env=env, cwd=REPO, timeout=120
    )
    assert r.returncode != 0
    assert "401" in r.stdout + r.stderr


def test_sweep_fans_out_to_workers_and_paused_runs_survive_a_server_restart(
    cluster: Cluster,
) -> None:
    api, tenant = cluster.api, cluster.tenant
    listed = set(tenant.restricted())
    users = {u["userPrincipalName"].lower(): u for u in tenant.tenant_state()["users"]}
    # Accounts the playbook may act on pause for approval. The others stop early: disabled or
    # synced accounts by design, admins because the app (User Administrator) may not reset
    # an administrator's password (403 from Graph).
    will_pause = {
        a
        for a in listed
        if a in users
        and users[a]["accountEnabled"]
        and not users[a]["onPremisesSyncEnabled"]
        and not users[a]["directoryRoles"]
    }
    assert len(will_pause) >= 2, listed

    t0 = time.monotonic()
    sweep_dep = api.deployment("restricted-sweep", "restricted-sweep")
    unblock_dep = api.deployment("unblock-user", "unblock-user")
    sweep = api.post(
        f"deployments/{sweep_dep['id']}/create_flow_run",
        {
            "name": "e2e-sweep-contain",
            "parameters": {
                "sweep": {"tenants": ["contoso"], "policy": "contain", "contain_first_seen": True}
            },
        },
    )
    sweep = api.wait_state(sweep["id"], TERMINAL, timeout=240, what="sweep finished")
    assert sweep["state"]["type"] == "COMPLETED", sweep["state"]
    record_timing("dist sweep run (created to completed)", time.monotonic() - t0)

    runs = api.runs_of_deployment(unblock_dep["id"])
    by_account = {_account(r): r for r in runs}
    assert set(by_account) >= will_pause, (set(by_account), will_pause)

    def settled() -> dict[str, dict[str, Any]] | None:
        now = {a: api.flow_run(by_account[a]["id"]) for a in by_account}
        ok = all(
            r["state"]["type"] in TERMINAL or (a in will_pause and r["state"]["type"] == "PAUSED")
            for a, r in now.items()
        )
        return now if ok else None

    now = wait_for(settled, timeout=240, interval=1, what="unblock runs paused or finished")
    paused = {a for a, r in now.items() if r["state"]["type"] == "PAUSED"}
    assert paused == will_pause, {a: r["state"]["name"] for a, r in now.items()}
    record_timing("dist sweep to all unblock runs paused", time.monotonic() - t0)

    # Both workers executed runs (limit 2 each, so the paused runs cannot all sit on one).
    executed = _runs_per_worker(cluster, [r["id"] for r in now.values()])
    assert executed["w1"] and executed["w2"], executed
    print(f"[e2e] runs per worker: { {k: len(v) for k, v in executed.items()} }")

    # Restart the server while the runs are paused.
    t1 = time.monotonic()
    cluster.server.restart()
    record_timing("dist server restart while paused (stop+start)", time.monotonic() - t1)
    for a in paused:
        assert api.flow_run(by_account[a]["id"])["state"]["type"] == "PAUSED"

    # Approve all but one; reject that one. Through the REST API, as an automation would.
    reject = sorted(paused)[0]
    for a in sorted(paused):
        answer = api.resume(
            by_account[a]["id"],
            {
                "decision": "reject" if a == reject else "approve",
                "approver": "lead lars",
                "comment": "e2e distributed",
            },
        )
        assert answer["status"] == "ACCEPT", answer

    t2 = time.monotonic()
    final = {
        a: api.wait_state(by_account[a]["id"], TERMINAL, timeout=180, what=f"{a} final")
        for a in sorted(paused)
    }
    record_timing("dist resume to all final", time.monotonic() - t2)
    for a, run in final.items():
        expected = ("CANCELLED", "Rejected") if a == reject else ("COMPLETED", "Unblocked")
        assert (run["state"]["type"], run["state"]["name"]) == expected, (a, run["state"])

    # The tenant: approved entries leave the list (after the removal delay); the rejected stays.
    approved = paused - {reject}
    wait_for(
        lambda: not (approved & set(tenant.restricted())),
        timeout=30,
        what="approved accounts off the Restricted users list",
    )
    assert reject in tenant.restricted()
    # The workers outlived the restart.
    assert all(w.alive() for w in cluster.workers.values())


def _runs_per_worker(cluster: Cluster, run_ids: list[str]) -> dict[str, set[str]]:
    """Which worker submitted which run, read from the workers' own logs."""
    found: dict[str, set[str]] = {}
    for name, proc in cluster.workers.items():
        text = Path(proc.log_path).read_text(errors="replace")
        # The engine in each run's subprocess logs "View at .../flow-run/<id>" once; the sweep's
        # own log also names the runs it started, so match only that line.
        found[name] = {rid for rid in run_ids if re.search(rf"View at \S*/flow-run/{rid}", text)}
    return found
