"""restricted-sweep against the emulator (three tenants) and a real Prefect API server.

The sweeps build on each other (module-scoped fixtures, in order):

1. first sweep of alpha (contain), bravo (report, 1,000 entries) and charlie (wrong secret);
2. alpha gets a new entry and loses one, bravo gets a new entry;
3. the same sweep again: no second run; then alpha's state is dropped and its entries are
   contained as "first seen": the server's idempotency key still yields one run per entry;
4. alpha's listing fails: its state stays; 5. the next good sweep shows no false verdicts.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterKey,
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterTags,
)
from prefect.client.schemas.sorting import ArtifactSort
from prefect.states import Paused
from prefect.variables import Variable
from pydantic import SecretStr

from emulator import Emulator
from flows.restricted_sweep import restricted_sweep
from flows.unblock_user import unblock_user
from m365 import build_clients
from orchestration.blocks import M365Tenant
from playbook.rendering import md_escape
from playbook.sweep.containment import idempotency_key
from playbook.sweep.params import SweepRequest
from playbook.sweep.report import SUMMARY_ARTIFACT_KEY, SweepReport
from playbook.sweep.state import table_artifact_key, variable_name

from ..handover_keys import PUBLIC_KEY

SUFFIX = uuid.uuid4().hex[:6]
ALPHA, BRAVO, CHARLIE = (f"sw-{n}-{SUFFIX}" for n in ("alpha", "bravo", "charlie"))
BULK = 1000
ALPHA_CREATED = {
    "amy@alpha.example": "2025-01-10T08:00:00Z",
    "ben@alpha.example": "2025-01-10T09:00:00Z",
    "outsider@elsewhere.example": "2025-01-10T10:00:00Z",
}
SPAM = "OutboundSpamLast24Hours=50;OutboundMailLast24Hours=60;OutboundSpamPercent=83.3"
# Fast Graph pacing for the test (production default: 300/s).
FAST = {"graph_requests_per_second": 500.0, "graph_burst": 100, "resolve_workers": 8}


def _tenant(name: str, tid: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "tenant_id": tid,
        "domain": f"{name}.onmicrosoft.com",
        "apps": [
            {
                "name": "playbook",
                "client_id": str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{name}.app")),
                "client_secret": f"emulator-secret-{name}-not-real",
                "roles": ["User.Read.All", "Exchange.ManageAsApp"],
                "wids": ["Exchange Administrator"],
            }
        ],
        **extra,
    }


SEED: dict[str, Any] = {
    "tenants": [
        _tenant(
            "alpha",
            "a1a1a1a1-0000-4000-8000-000000000001",
            users=[
                {"upn": "amy@alpha.example"},
                {"upn": "ben@alpha.example"},
                {"upn": "cara@alpha.example"},
            ],
            restricted=[
                {"address": a, "created": c, "reason": SPAM} for a, c in ALPHA_CREATED.items()
            ],
        ),
        _tenant(
            "bravo",
            "b2b2b2b2-0000-4000-8000-000000000002",
            generate_restricted={"count": BULK, "prefix": "bulk"},
        ),
        _tenant(
            "charlie",
            "c3c3c3c3-0000-4000-8000-000000000003",
            users=[{"upn": "cody@charlie.example"}],
            restricted=[{"address": "cody@charlie.example", "reason": SPAM}],
        ),
    ]
}


@dataclass
class Sweep:
    state: Any
    report: SweepReport
    seconds: float
    requests: list[Any]
    summary: str
    runs: list[Any] = field(default_factory=list)

    def tenant(self, name: str) -> Any:
        return next(t for t in self.report.tenants if t.tenant == name)

    def calls(self, tenant: str, prefix: str = "") -> list[Any]:
        return [r for r in self.requests if r.tenant == tenant and r.endpoint.startswith(prefix)]


@pytest.fixture(scope="module")
def world(prefect_api: str) -> Iterator[Emulator]:
    emu = Emulator(SEED)
    emu.start()
    try:
        M365Tenant.from_config(
            emu.tenant_config("alpha"), policy="contain", handover_public_key=PUBLIC_KEY
        ).save(ALPHA)
        M365Tenant.from_config(
            emu.tenant_config("bravo"), policy="report", handover_public_key=PUBLIC_KEY
        ).save(BRAVO)
        wrong = emu.tenant_config("charlie").model_copy(
            update={"client_secret": SecretStr("not-the-secret")}
        )
        M365Tenant.from_config(wrong, policy="contain", handover_public_key=PUBLIC_KEY).save(
            CHARLIE
        )
        unblock_user.to_deployment(name="unblock-user").apply()
        yield emu
    finally:
        emu.stop()


def _latest_summary() -> str:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[SUMMARY_ARTIFACT_KEY])),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )
    assert found and isinstance(found[0].data, str)
    return found[0].data


def _table(tenant: str) -> list[dict[str, Any]]:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[table_artifact_key(tenant)])
            ),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )
    assert found and isinstance(found[0].data, str)
    rows: list[dict[str, Any]] = json.loads(found[0].data)
    return rows


def _unblock_runs() -> list[Any]:
    # Filtered on the server by tenant tag: the session's server holds hundreds of other
    # unblock-user runs, and a page of them would hide these in random (id) order.
    runs: list[Any] = []
    with get_client(sync_client=True) as client:
        for tenant in (ALPHA, BRAVO):
            runs += client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["unblock-user"])),
                flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[f"tenant:{tenant}"])),
            )
    return [r for r in runs if r.parameters.get("request", {}).get("tenant") in (ALPHA, BRAVO)]


def _sweep(emu: Emulator, **request: Any) -> Sweep:
    before = len(emu.requests)
    params = {"tenants": [ALPHA, BRAVO, CHARLIE], **FAST, **request}
    start = time.monotonic()
    state = restricted_sweep(SweepRequest(**params), return_state=True)
    seconds = time.monotonic() - start
    report = state.result(raise_on_failure=False)
    assert isinstance(report, SweepReport), state
    return Sweep(
        state=state,
        report=report,
        seconds=seconds,
        requests=emu.requests[before:],
        summary=_latest_summary(),
        runs=_unblock_runs(),
    )


def _verdicts(rows: list[dict[str, Any]]) -> dict[str, str]:
    return {r["address"].lower(): r["verdict"] for r in rows}


# ---- sweep 1 ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def first(world: Emulator) -> Sweep:
    return _sweep(world)


def test_first_sweep_lists_every_page_and_reports_first_seen(first: Sweep) -> None:
    print(
        f"\n[sweep 1: {first.seconds:.1f}s wall; bravo ({BULK} entries): "
        f"{len(first.calls('bravo'))} API calls = {len(first.calls('bravo', 'exo.'))} Exchange, "
        f"{len(first.calls('bravo', 'graph.'))} Graph, {len(first.calls('bravo', 'token'))} token; "
        f"all tenants: {len(first.requests)} calls]"
    )
    bravo = _table(BRAVO)
    assert len(bravo) == BULK
    assert set(_verdicts(bravo).values()) == {"first-seen"}
    assert all(r["resolution"] == "user" for r in bravo)
    assert {r["user_upn"] for r in bravo} == {
        f"bulk{i:05d}@bravo.onmicrosoft.com" for i in range(BULK)
    }
    # paging: 1,000 entries at the emulator's 100 per page
    assert len(first.calls("bravo", "exo.Get-BlockedSenderAddress")) == 10
    assert len(first.calls("bravo", "graph.")) == BULK  # one lookup per entry, no more
    alpha = {r["address"]: r for r in _table(ALPHA)}
    assert {a: r["verdict"] for a, r in alpha.items()} == dict.fromkeys(ALPHA_CREATED, "first-seen")
    assert alpha["outsider@elsewhere.example"]["resolution"] == "no-user"
    assert alpha["amy@alpha.example"]["reason_summary"] == "outbound spam 83.3% (50/60 in 24h)"


def test_first_sweep_contains_nothing_and_saves_state(first: Sweep) -> None:
    assert first.runs == []  # first-seen entries are not contained by default
    for tenant, count in ((ALPHA, 3), (BRAVO, BULK)):
        pointer = Variable.get(variable_name(tenant))
        assert pointer["entries"] == count and pointer["tenant"] == tenant


def test_wrong_credentials_fail_one_tenant_only(first: Sweep) -> None:
    assert first.state.is_failed()
    assert CHARLIE in (first.state.message or "")
    charlie = first.tenant(CHARLIE)
    assert charlie.failure.startswith("AuthError (AADSTS")
    assert Variable.get(variable_name(CHARLIE), default=None) is None
    assert first.calls("charlie", "exo.") == [] and first.calls("charlie", "graph.") == []
    assert f"- **{md_escape(CHARLIE)}**: AuthError" in first.summary
    assert "AADSTS" in first.summary
    assert f"| {md_escape(ALPHA)} | contain | ok | 0 | 3 | 0 | 0 |" in first.summary
    assert f"| {md_escape(BRAVO)} | report | ok | 0 | {BULK} | 0 | 0 |" in first.summary
    assert "First sweep of this tenant" in first.summary


# ---- sweep 2 ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def second(world: Emulator, first: Sweep) -> Sweep:
    world.state.restrict("alpha", "cara@alpha.example", reason=SPAM)
    alpha = build_clients(world.tenant_config("alpha")).exchange
    alpha.remove_blocked_sender("ben@alpha.example", "test: cleared between sweeps")
    world.state.add_user("bravo", "newbie@bravo.example")
    world.state.restrict("bravo", "newbie@bravo.example", reason=SPAM)
    return _sweep(world)


def test_new_and_cleared_entries(second: Sweep) -> None:
    alpha = _verdicts(_table(ALPHA))
    assert alpha == {
        "amy@alpha.example": "restricted",
        "outsider@elsewhere.example": "restricted",
        "cara@alpha.example": "new",
        "ben@alpha.example": "cleared",
    }
    assert _verdicts(_table(BRAVO))["newbie@bravo.example"] == "new"
    assert f"| {md_escape(ALPHA)} | contain | ok | 1 | 0 | 2 | 1 |" in second.summary
    assert f"| {md_escape(BRAVO)} | report | ok | 1 | 0 | {BULK} | 0 |" in second.summary
    assert f"| {md_escape('ben@alpha.example')} |" in second.summary  # cleared, with its age
    # earlier lookups are reused: only the new entries cost Graph calls
    assert len(second.calls("bravo", "graph.")) == 1
    assert len(second.calls("alpha", "graph.")) == 1


def test_contain_starts_one_run_per_new_entry_report_starts_none(
    world: Emulator, second: Sweep
) -> None:
    (run,) = second.runs
    created = world.state.entry("alpha", "cara@alpha.example").created
    assert run.idempotency_key == idempotency_key(ALPHA, "cara@alpha.example", created, created)
    request = run.parameters["request"]
    assert request["account"] == "cara@alpha.example" and request["tenant"] == ALPHA
    assert request["requested_by"] == "restricted-sweep" and request["dry_run"] is False
    assert "restricted-sweep" in run.tags and f"tenant:{ALPHA}" in run.tags
    assert run.deployment_id is not None and run.parent_task_run_id is None  # not a subflow
    row = next(r for r in _table(ALPHA) if r["address"] == "cara@alpha.example")
    assert row["containment"] == "started" and row["run_id"] == str(run.id)
    assert f"runs/flow-run/{run.id}" in second.summary  # in flight, linked
    # the sweep itself only reads and starts runs: no write reached the tenant
    assert [r for r in second.requests if r.write] == []


# ---- sweep 3: twice in a row, then without state -----------------------------------------------


@pytest.fixture(scope="module")
def third(world: Emulator, second: Sweep) -> Sweep:
    (run,) = second.runs
    with get_client(sync_client=True) as client:  # as if unblock-user now waits for approval
        client.set_flow_run_state(run.id, Paused(), force=True)
    return _sweep(world)


def test_second_identical_sweep_starts_no_run(third: Sweep, second: Sweep) -> None:
    assert [r.id for r in third.runs] == [r.id for r in second.runs]
    assert _verdicts(_table(ALPHA))["cara@alpha.example"] == "restricted"
    assert "ben@alpha.example" not in _verdicts(_table(ALPHA))  # cleared once, then forgotten


def test_paused_run_is_listed_as_approval_waiting(third: Sweep, second: Sweep) -> None:
    (run,) = second.runs
    section = third.summary.split(f"## {md_escape(ALPHA)}\n", 1)[1]
    approvals = section.split("### Approvals waiting (1)", 1)[1].split("###", 1)[0]
    assert f"[{md_escape('cara@alpha.example')}](http://" in approvals
    assert f"/runs/flow-run/{run.id})" in approvals


def test_server_dedups_on_the_idempotency_key(world: Emulator, third: Sweep) -> None:
    Variable.unset(variable_name(ALPHA))  # state lost: every entry is "first seen" again
    again = _sweep(world, tenants=[ALPHA], contain_first_seen=True)
    alpha = {r["address"]: r for r in _table(ALPHA)}
    assert {r["verdict"] for r in alpha.values()} == {"first-seen"}
    cara_runs = [
        r for r in again.runs if r.parameters["request"]["account"] == "cara@alpha.example"
    ]
    amy_runs = [r for r in again.runs if r.parameters["request"]["account"] == "amy@alpha.example"]
    assert len(cara_runs) == 1 and len(amy_runs) == 1  # cara: the existing run came back
    assert alpha["cara@alpha.example"]["run_id"] == str(cara_runs[0].id)
    assert alpha["cara@alpha.example"]["note"] == "run already existed"
    assert alpha["outsider@elsewhere.example"]["containment"] == "skipped"


# ---- sweeps 4 and 5: a failed listing keeps the state --------------------------------------------


def test_failed_listing_keeps_state_and_causes_no_false_verdicts(world: Emulator) -> None:
    kept = Variable.get(variable_name(ALPHA))
    world.faults.add(endpoint="exo.Get-BlockedSenderAddress", kind="expired_token", count=4)
    failed = _sweep(world, tenants=[ALPHA])
    assert failed.state.is_failed() and not failed.tenant(ALPHA).ok
    assert Variable.get(variable_name(ALPHA)) == kept
    assert "Its previous state is kept (last successful sweep" in failed.summary
    world.faults.clear()
    good = _sweep(world, tenants=[ALPHA])
    assert good.state.is_completed()
    verdicts = _verdicts(_table(ALPHA))
    assert set(verdicts.values()) == {"restricted"}
    assert len(good.runs) == 2  # still amy's and cara's runs only


def test_sweep_all_includes_every_profile(world: Emulator) -> None:
    from prefect import flow

    from tasks.list_tenant_profiles import list_tenant_profiles

    @flow
    def names() -> list[str]:
        return list_tenant_profiles()

    assert {ALPHA, BRAVO, CHARLIE} <= set(names())
