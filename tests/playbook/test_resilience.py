"""Transient faults at every step, the follow-up run, hostile parameters, and the leak search."""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import re
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prefect.blocks.system import Secret
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowFilter, FlowFilterName
from prefect.client.schemas.sorting import FlowRunSort
from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL

from devtools.localstack import wait_for
from emulator import Emulator
from flows.verify_unblock import verify_unblock
from playbook.params import VerifyRequest

from ..handover_keys import sealed_for, secret_value
from ..helpers.runs import artifact_markdown, effective, read_run, resume, wait_until_paused
from .helpers import TENANT, start_unblock

pytestmark = pytest.mark.usefixtures("tenant_block", "served")

ROB = "rob@contoso.com"


def test_transient_faults_at_every_step_change_nothing_twice(emulator: Emulator) -> None:
    # 6 faults outlast the client's own 5 attempts, so every step also needs a task retry.
    for endpoint in (
        "graph.get_user",
        "graph.update_user",
        "graph.revoke_sessions",
        "exo.Get-BlockedSenderAddress",
        "exo.Remove-BlockedSenderAddress",
    ):
        emulator.faults.add(endpoint=endpoint, kind="429", count=6, retry_after=0.05)
    emulator.faults.add(endpoint="graph.update_user", kind="drop", count=1)
    emulator.faults.add(endpoint="exo.Remove-BlockedSenderAddress", kind="drop", count=1)
    emulator.faults.add(endpoint="graph.revoke_sessions", kind="503", count=1)

    run = start_unblock(account=ROB, approval_timeout_minutes=2)
    paused = wait_until_paused(run.name, timeout=120)
    password = secret_value(f"unblock-handover-{paused.id}")
    resume(paused, decision="approve", approver="bob")
    state = run.state(120)

    assert state.name == "Unblocked", state.message
    assert {r.fault for r in emulator.requests if r.fault} >= {"429", "drop", "503"}
    resets = effective(emulator, "graph.update_user")
    assert len(resets) == 1
    assert password and emulator.state.password_matches(ROB, password, TENANT)
    assert len(effective(emulator, "exo.Remove-BlockedSenderAddress")) == 1
    assert emulator.state.unblock_count(TENANT, ROB) == 1


def test_hostile_parameters_are_rejected_when_the_run_is_created(emulator: Emulator) -> None:
    good = {"account": ROB, "tenant": TENANT, "ticket": "INC-1", "requested_by": "ann"}
    hostile: list[dict[str, Any]] = [
        {"account": "rob@contoso.com\r\nBcc: x@evil.com"},
        {"account": "rob@contoso.com\n"},
        {"account": "r\u043eb@contoso.com"},
        {"account": "a" * 100_000 + "@contoso.com"},
        {"tenant": "../../etc/passwd"},
        {"ticket": "[click](http://evil)"},
        {"ticket": "{{ 7*7 }}"},
        {"requested_by": "<script>alert(1)</script>"},
        {"handover": "email"},
        {"approval_timeout_minutes": -5},
        {"password": "hunter2hunter2"},
    ]
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("unblock-user/unblock-user")
        assert deployment.enforce_parameter_schema
        for change in hostile:
            with pytest.raises(Exception, match=r"Validation failed|422|409") as info:
                client.create_flow_run_from_deployment(
                    deployment.id, parameters={"request": {**good, **change}}
                )
            assert "hunter2hunter2" not in str(info.value)
    assert emulator.writes() == []


def _db_path() -> Path:
    url = str(PREFECT_SERVER_DATABASE_CONNECTION_URL.value())
    return Path(url.split(":///", 1)[1])


def _variants(secret: str) -> set[str]:
    return {secret, json.dumps(secret)[1:-1], secret.replace("/", "\\/")}


def _b64_decoded(text: str) -> list[bytes]:
    out = []
    for blob in re.findall(r"[A-Za-z0-9+/=_-]{24,}", text):
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            with contextlib.suppress(binascii.Error, ValueError):
                out.append(decode(blob + "=" * (-len(blob) % 4)))
    return out


def _leaks(text: str, secret: str) -> bool:
    if any(v in text for v in _variants(secret)):
        return True
    needle = secret.encode()
    return any(needle in blob for blob in _b64_decoded(text))


def _search_database(secret: str) -> list[str]:
    hits = []
    con = sqlite3.connect(f"file:{_db_path()}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in con.execute("select name from sqlite_master where type='table'")]
        for table in tables:
            for row in con.execute(f'select * from "{table}"'):
                for value in row:
                    if value is None:
                        continue
                    text = (
                        value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
                    )
                    if _leaks(text, secret):
                        hits.append(table)
    finally:
        con.close()
    return hits


def test_follow_up_run_verifies_and_deletes_the_secret_and_nothing_leaks(
    emulator: Emulator, prefect_home: Path, served: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    run = start_unblock(account=ROB, approval_timeout_minutes=2, verification_delay_minutes=0.1)
    paused = wait_until_paused(run.name)
    block = f"unblock-handover-{paused.id}"
    password = secret_value(block)
    assert password
    resume(paused, decision="approve", approver="bob", comment="ok")
    assert run.state().name == "Unblocked"

    # flows.serve (a subprocess) picks the scheduled verify-unblock run up and executes it
    def verify_done() -> Any:
        vr = read_run(f"verify-{run.name}")
        return vr if vr is not None and vr.state is not None and vr.state.is_final() else None

    verify = wait_for(verify_done, 120, "the verify-unblock run", every=1)
    assert verify.state.name == "Verified", verify.state.message
    assert secret_value(block) is None
    assert not emulator.state.is_restricted(TENANT, ROB)
    md = artifact_markdown(verify.id, "verify-unblock-report")
    assert "Outcome: Verified" in md

    # Leak search: the database (every table: events, logs, artifacts, states, parameters,
    # block documents), the result storage, the serve process's output and our own log records.
    wait_for(lambda: True, 2, "log shipping")
    assert _search_database(password) == []
    # positive controls: the search does see this run's logs and the artifact
    assert "log" in _search_database("Resolving rob@contoso.com")
    assert "artifact" in _search_database("Outcome: Verified")
    storage = prefect_home / "storage"
    for path in storage.rglob("*") if storage.exists() else []:
        if path.is_file():
            assert not _leaks(path.read_bytes().decode("utf-8", "replace"), password), path
    assert not _leaks(served.read_bytes().decode("utf-8", "replace"), password)
    assert not any(_leaks(r.getMessage(), password) for r in caplog.records)
    assert password not in caplog.text


def _verify_request(password: str, approved_at: datetime, **more: Any) -> VerifyRequest:
    """A follow-up check of rob's unblock approved at ``approved_at``, with ``password`` sealed
    in a fresh hand-over block as the unblock run leaves it."""
    block = f"unblock-handover-{uuid.uuid4()}"
    Secret(value=sealed_for(block, password)).save(block)
    return VerifyRequest(
        account=ROB,
        tenant=TENANT,
        ticket="INC-1",
        handover_block=block,
        approved_at=approved_at,
        **more,
    )


def test_still_listed_long_after_approval_escalates_and_deletes_the_secret(
    emulator: Emulator,
) -> None:
    check = _verify_request("not-a-real-password-123", datetime.now(UTC) - timedelta(hours=25))
    block = check.handover_block
    state = verify_unblock(check=check, return_state=True)
    assert state.is_failed() and state.name == "StillRestricted"
    assert secret_value(block) is None
    md = artifact_markdown(state.state_details.flow_run_id, "verify-unblock-report")
    assert "Microsoft Support" in md and "What to do" in md


def test_still_listed_soon_after_approval_reschedules_itself(emulator: Emulator) -> None:
    check = _verify_request("not-a-real-password-456", datetime.now(UTC), recheck_minutes=30)
    block = check.handover_block
    state = verify_unblock(check=check, return_state=True)
    assert state.is_completed() and state.name == "RecheckScheduled"
    assert secret_value(block) is not None  # kept until the chain ends
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(  # the session's server holds more than one page of runs
            flow_filter=FlowFilter(name=FlowFilterName(any_=["verify-unblock"])),
            sort=FlowRunSort.EXPECTED_START_TIME_DESC,
        )
        nxt = [
            r
            for r in runs
            if r.parameters.get("check", {}).get("handover_block") == block
            and r.id != state.state_details.flow_run_id
        ]
        assert len(nxt) == 1 and nxt[0].parameters["check"]["attempt"] == 2
        assert nxt[0].state is not None and nxt[0].state.is_scheduled()
        client.delete_flow_run(nxt[0].id)
    Secret.delete(block)
