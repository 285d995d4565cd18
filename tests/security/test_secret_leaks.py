"""Item 4: run the playbooks for real, then search every place a secret could have leaked to.

A real ``prefect server start`` (SQLite file we can read), ``python -m flows.serve`` running the
flows as subprocesses, the emulator. Runs: unblock-user with the password hand-over (approved),
unblock-user with a TAP hand-over (approved), one that fails after the reset (a step keeps
failing: exception texts), restricted-sweep in contain mode (starts runs itself), check-tenant.

Needles: each hand-over password and TAP (read from their Secret blocks while they exist) and the
app's client secret. Haystacks: every table of the database, the raw database/WAL files, every
file under PREFECT_HOME (result storage base64-decoded), the server's and the worker's captured
stdout/stderr, and /proc/<pid>/cmdline + environ of the server, the worker and the flow
processes (scanned while a run is paused, so its process is alive).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from emulator import Emulator

from ..reliability.realserver import RealServer, served_stack, wait_for
from .leakscan import Scanner, child_pids

pytestmark = pytest.mark.timeout(400)
FOUND: dict[str, Any] = {}


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[RealServer, Emulator]]:
    with served_stack("unblock-leaks-") as env:
        yield env


def _run(deployment: str, parameters: dict[str, Any]) -> Any:
    from prefect.deployments import run_deployment

    return run_deployment(deployment, parameters=parameters, timeout=0, as_subflow=False)


def _state(run_id: Any) -> Any:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(run_id).state


def _final(run_id: Any, timeout: float = 120) -> Any:
    return wait_for(
        lambda: (s := _state(run_id)) is not None and s.is_final() and s, timeout, "final state"
    )


def _secret(name: str) -> str:
    from prefect.blocks.system import Secret

    return str(Secret.load(name).get())


def _unblock(account: str, **extra: Any) -> Any:
    params = {"account": account, "tenant": "contoso", "ticket": "INC-4001", "requested_by": "ann"}
    return _run("unblock-user/unblock-user", {"request": {**params, **extra}})


def _scan_live_processes(server: RealServer, scanner: Scanner) -> int:
    pids: list[tuple[int, str]] = []
    for name, proc in server.procs.items():
        for pid in child_pids(proc.pid):
            pids.append((pid, name if pid == proc.pid else f"{name}-child"))
    scanner.scan_processes(pids)
    return len(pids)


def test_no_secret_reaches_logs_db_artifacts_results_events_or_argv(stack):
    server, emu = stack
    from prefect.flow_runs import resume_flow_run

    secrets: dict[str, str] = {
        "client secret": emu.tenant_config("contoso").client_secret.get_secret_value()
    }
    process_pids = 0

    # 1. Password hand-over, approved.
    pw_run = _unblock("rob@contoso.com")
    wait_for(lambda: _state(pw_run.id).is_paused(), 120, "approval pause (password)")
    secrets["password (rob)"] = _secret(f"unblock-handover-{pw_run.id}")
    # 2. TAP hand-over, approved (the TAP is issued before the pause).
    tap_run = _unblock("megan@contoso.com", handover="tap")
    wait_for(lambda: _state(tap_run.id).is_paused(), 120, "approval pause (TAP)")
    secrets["TAP (megan)"] = _secret(f"unblock-handover-{tap_run.id}")

    # Both flow processes are alive and paused: scan their argv and environment now.
    probe = Scanner(secrets)
    process_pids += _scan_live_processes(server, probe)

    resume_flow_run(
        pw_run.id, run_input={"decision": "approve", "approver": "bob", "comment": "ok"}
    )
    resume_flow_run(tap_run.id, run_input={"decision": "approve", "approver": "bob"})
    assert _final(pw_run.id).name == "Unblocked"
    assert _final(tap_run.id).name == "Unblocked"

    # 3. A run that fails after its reset (Exchange keeps failing): exception texts, failure
    #    report, the secret in force kept for hand-over.
    emu.faults.add(endpoint="exo.Get-BlockedSenderAddress", kind="503")
    fail_run = _unblock("alex@contoso.com")
    failed = _final(fail_run.id, timeout=240)
    emu.faults.clear()
    assert failed.is_failed(), failed
    failed_block = f"unblock-handover-{fail_run.id}"
    secrets["password (alex, failed run)"] = _secret(failed_block)

    # 4. The sweep, containing what it finds (starts unblock-user runs of its own), and 5. the
    #    preflight.
    sweep = _run(
        "restricted-sweep/restricted-sweep",
        {"sweep": {"policy": "contain", "contain_first_seen": True}},
    )
    _final(sweep.id, timeout=180)
    check = _run("check-tenant/check-tenant", {"tenant": "contoso"})
    assert _final(check.id).is_completed()
    process_pids += _scan_live_processes(server, probe)
    # Runs the sweep started pause for approval; their secrets are needles too.
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        docs = client.read_block_documents(include_secrets=False)
    for doc in docs:
        if (
            doc.name
            and doc.name.startswith("unblock-handover-")
            and doc.name not in {f"unblock-handover-{r.id}" for r in (pw_run, tap_run, fail_run)}
        ):
            secrets[f"secret of sweep-started run {doc.name[-8:]}"] = _secret(doc.name)

    # Let the API log workers flush, then scan everything.
    import time

    time.sleep(2)
    scanner = Scanner(secrets)
    scanner.leaks.extend(probe.leaks)
    scanner.scanned.update({f"live {k}": v for k, v in probe.scanned.items()})
    scanner.scan_sqlite(server.db_path)
    scanner.scan_tree(server.home, kind="file under PREFECT_HOME")
    _scan_live_processes(server, scanner)
    FOUND.update(
        needles=len(scanner.needles),
        scanned=dict(scanner.scanned),
        total=scanner.total_scanned(),
        tables=len(scanner.table_names(server.db_path)),
        pids=process_pids,
    )
    print(f"\nleak scan: {len(secrets)} secrets, {scanner.total_scanned()} locations")
    print(scanner.scanned)
    assert scanner.scanned.get("sqlite table", 0) >= 30
    assert any("serve.log" in str(p) for p in server.home.iterdir())
    assert scanner.unique_leaks() == []
