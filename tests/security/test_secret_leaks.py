"""Item 4 and issue 15 point 3: run the playbooks for real, then search every place a secret could
have leaked to, including everything an insider has without the hand-over team's key.

A real ``prefect server start`` (SQLite file we can read), ``python -m flows.serve`` running the
flows as subprocesses, the emulator. The tenant profile uses the recommended mode: the app's
client secret is in the worker's environment only (``environment-variable``). Runs: unblock-user
with the password hand-over and with a TAP hand-over, both started with ``block_sign_in`` and
approved with every eviction action ticked (the attacker's sign-in method, app consent and
delegates removed, sessions revoked again, sign-in re-enabled), one that fails after the reset (a
step keeps failing: exception texts), restricted-sweep in contain mode (starts runs itself),
check-tenant.

Needles: each hand-over password and TAP (opened from their sealed blocks with the test key, as
the hand-over team would) and the app's client secret. Haystacks:

- the Prefect database as a backup gives it: every table, the raw database/WAL files, and every
  block document *decrypted* with the Fernet key stored in the same database;
- everything the Prefect API gives the holder of its credential: all block documents read with
  ``include_secrets=true``, variables, artifacts, logs, flow runs with their states and inputs,
  task runs, deployments, events;
- every file under PREFECT_HOME (result storage base64-decoded), the server's and the worker's
  captured stdout/stderr;
- ``/proc/<pid>/cmdline`` of the server, the worker and the flow processes, and their
  ``environ``: the client secret may be (and must be) in the *worker's* environment, nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from devtools.localstack import descendants
from emulator import Emulator
from emulator.state import PermissionRecord

from ..handover_keys import secret_value, stored_value
from ..helpers.runs import EVICT_ALL
from ..reliability.realserver import CLIENT_SECRET_ENV, RealServer, served_stack, wait_for
from .apiscan import api_documents, decrypted_block_documents
from .leakscan import Scanner

pytestmark = pytest.mark.timeout(400)
FOUND: dict[str, Any] = {}
CLIENT_SECRET = "client secret"
# The demo's attacker: a guest account (Full Access, Send As and Send on Behalf on rob's mailbox).
GUEST = "rob.young.invoices_gmail.com#EXT#@contoso.onmicrosoft.com"


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


def _opened(name: str) -> str:
    """The hand-over credential of a block: stored sealed, opened with the team's key."""
    stored = stored_value(name)
    assert stored and stored.startswith("unblock-sealed-v1."), f"{name} is not sealed"
    value = secret_value(name)
    assert value
    return value


def _unblock(account: str, **extra: Any) -> Any:
    params = {"account": account, "tenant": "contoso", "ticket": "INC-4001", "requested_by": "ann"}
    return _run("unblock-user/unblock-user", {"request": {**params, **extra}})


def _scan_live_processes(server: RealServer, everything: Scanner, worker_env: Scanner) -> int:
    """Command lines for every needle; environments too, except that a worker's environment
    holds the app's client secret by design (the recommended mode)."""
    pids = 0
    for name, proc in server.procs.items():
        for pid in [proc.pid, *descendants(proc.pid)]:
            label = name if pid == proc.pid else f"{name}-child"
            everything.scan_process(pid, label, parts=("cmdline",))
            (worker_env if name != "server" else everything).scan_process(
                pid, label, parts=("environ",)
            )
            pids += 1
    return pids


def _worker_has_the_client_secret(server: RealServer, secret: str) -> bool:
    """Positive control: the secret is where the recommended mode puts it (and the scan of
    process environments would see it)."""
    with open(f"/proc/{server.procs['serve'].pid}/environ", "rb") as f:
        return f"{CLIENT_SECRET_ENV}={secret}".encode() in f.read()


def test_no_secret_reaches_the_database_the_api_logs_artifacts_results_events_or_argv(stack):
    server, emu = stack
    from prefect.flow_runs import resume_flow_run

    config = emu.tenant_config("contoso")
    assert config.client_secret is not None
    secrets: dict[str, str] = {CLIENT_SECRET: config.client_secret.get_secret_value()}
    assert _worker_has_the_client_secret(server, secrets[CLIENT_SECRET])

    # 1. Password hand-over, sign-in blocked at the start, approved with every eviction action
    #    (rob is the demo's compromised account).
    pw_run = _unblock("rob@contoso.com", block_sign_in=True)
    wait_for(lambda: _state(pw_run.id).is_paused(), 120, "approval pause (password)")
    secrets["password (rob)"] = _opened(f"unblock-handover-{pw_run.id}")
    # 2. TAP hand-over (issued before the pause), the same containment and eviction; megan is
    #    clean in the seed, so give her a foothold to remove.
    megan = emu.state.user("contoso", "megan@contoso.com")
    megan.mailbox_permissions.append(PermissionRecord(user=GUEST, access_rights=["FullAccess"]))
    tap_run = _unblock("megan@contoso.com", handover="tap", block_sign_in=True)
    wait_for(lambda: _state(tap_run.id).is_paused(), 120, "approval pause (TAP)")
    secrets["TAP (megan)"] = _opened(f"unblock-handover-{tap_run.id}")
    assert emu.state.password_matches("rob@contoso.com", secrets["password (rob)"], "contoso")
    assert emu.state.tap_matches("megan@contoso.com", secrets["TAP (megan)"], "contoso")
    rob = emu.state.user("contoso", "rob@contoso.com")
    assert not rob.enabled and not megan.enabled, "block_sign_in contains both at the start"

    # Both flow processes are alive and paused: scan their argv and environment now.
    probe = Scanner(secrets)
    probe_env = Scanner({k: v for k, v in secrets.items() if k != CLIENT_SECRET})
    process_pids = _scan_live_processes(server, probe, probe_env)

    resume_flow_run(
        pw_run.id,
        run_input={"decision": "approve", "approver": "bob", "comment": "ok", **EVICT_ALL},
    )
    resume_flow_run(
        tap_run.id,
        run_input={
            "decision": "approve",
            "approver": "bob",
            "remove_mailbox_delegates": True,
            "enable_sign_in": True,
        },
    )
    assert _final(pw_run.id).name == "Unblocked"
    assert _final(tap_run.id).name == "Unblocked"
    # The eviction really ran (its records, request ids and details are in the haystacks).
    assert {m.kind for m in rob.auth_methods} == {"phone"}
    assert GUEST not in {p.user for p in rob.mailbox_permissions} | set(rob.send_as)
    assert GUEST not in {p.user for p in megan.mailbox_permissions}
    assert rob.enabled and megan.enabled and rob.session_revocations >= 2

    # 3. A run that fails after its reset (Exchange keeps failing): exception texts, failure
    #    report, the secret in force kept for hand-over.
    emu.faults.add(endpoint="exo.Get-BlockedSenderAddress", kind="503")
    fail_run = _unblock("alex@contoso.com")
    failed = _final(fail_run.id, timeout=240)
    emu.faults.clear()
    assert failed.is_failed(), failed
    secrets["password (alex, failed run)"] = _opened(f"unblock-handover-{fail_run.id}")

    # 4. The sweep, containing what it finds (starts unblock-user runs of its own), and 5. the
    #    preflight.
    sweep = _run(
        "restricted-sweep/restricted-sweep",
        {"sweep": {"policy": "contain", "contain_first_seen": True}},
    )
    _final(sweep.id, timeout=180)
    check = _run("check-tenant/check-tenant", {"tenant": "contoso"})
    assert _final(check.id).is_completed()
    process_pids += _scan_live_processes(server, probe, probe_env)
    # Runs the sweep started pause for approval; their secrets are needles too.
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        docs = client.read_block_documents(include_secrets=False)
        profile = client.read_block_document_by_name(
            "contoso", block_type_slug="m365-tenant", include_secrets=True
        )
    assert profile.data["credential_source"] == "environment-variable"
    assert profile.data["client_secret_env"] == CLIENT_SECRET_ENV
    known = {f"unblock-handover-{r.id}" for r in (pw_run, tap_run, fail_run)}
    for doc in docs:
        if doc.name and doc.name.startswith("unblock-handover-") and doc.name not in known:
            secrets[f"secret of sweep-started run {doc.name[-8:]}"] = _opened(doc.name)

    # Let the API log workers flush, then scan everything.
    import time

    time.sleep(2)
    scanner = Scanner(secrets)
    worker_env = Scanner({k: v for k, v in secrets.items() if k != CLIENT_SECRET})
    for s in (probe, probe_env):
        scanner.leaks.extend(s.leaks)
        scanner.scanned.update({f"live {k}": v for k, v in s.scanned.items()})
    scanner.scan_sqlite(server.db_path)
    for location, data in decrypted_block_documents(server.db_path):
        scanner.scan_text(data.decode("utf-8", "replace"), location, kind="db block decrypted")
    for location, data in api_documents(server.api_url):
        scanner.scan_text(data.decode("utf-8", "replace"), location, kind="api response")
    scanner.scan_tree(server.home, kind="file under PREFECT_HOME")
    _scan_live_processes(server, scanner, worker_env)
    scanner.leaks.extend(worker_env.leaks)
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
    assert scanner.scanned.get("db block decrypted", 0) >= 4
    assert scanner.scanned.get("api response", 0) >= 20
    assert any("serve.log" in str(p) for p in server.home.iterdir())
    assert scanner.unique_leaks() == []


def test_the_scan_sees_what_an_insider_sees() -> None:
    """Control for the haystacks above: a value put where an insider looks is found there."""
    import tempfile
    from pathlib import Path

    from prefect.blocks.system import Secret

    from ..reliability.realserver import real_server, use_api

    planted = "planted-value-7f3a9c2e"
    with real_server(Path(tempfile.mkdtemp(prefix="unblock-leak-control-"))) as server:
        with use_api(server.api_url):
            Secret(value=planted).save("control-secret", overwrite=True)
        api = Scanner({"planted": planted})
        for location, data in api_documents(server.api_url):
            api.scan_text(data.decode(), location)
        backup = Scanner({"planted": planted})
        for location, data in decrypted_block_documents(server.db_path):
            backup.scan_text(data.decode(), location)
        raw = Scanner({"planted": planted})
        raw.scan_sqlite(server.db_path)
    assert any("block documents (secrets)" in leak.location for leak in api.leaks)
    assert any("decrypted" in leak.location for leak in backup.leaks)
    assert not raw.leaks, "block data is encrypted at rest; only the key beside it opens it"
