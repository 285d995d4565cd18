"""watch-restricted against two emulators and a real ``prefect server start`` (SQLite file).

The steps build on each other (module-scoped, in order):

1. a first sweep gives alpha (contain), bravo (report) and charlie (contain, on its own emulator)
   their state; the watcher starts (every 5 s) from that state;
2. a new entry in alpha and in bravo: one event each in the server's event store, one
   unblock-user run for alpha only, with the sweep's idempotency key;
3. idle checks: one Exchange call per tenant per check and no row in the Prefect database;
4. the next sweep finds alpha's entry new, and gets the watcher's run back, not a second one;
5. charlie is throttled (429, Retry-After): it waits alone, alpha is still checked and contained;
6. the Prefect server restarts: the watcher keeps checking, and an entry listed while the server
   was down is contained once it is back;
7. SIGTERM stops the watcher within seconds (Completed); a new watcher re-handles the entries
   since the last sweep without a second run or a second event.
"""

from __future__ import annotations

import signal
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devtools.localstack import ManagedProcess, wait_for
from emulator import Emulator
from flows.restricted_sweep import restricted_sweep
from flows.unblock_user import unblock_user
from orchestration.blocks import M365Tenant
from playbook.sweep.containment import idempotency_key
from playbook.sweep.params import SweepRequest
from playbook.sweep.report import SweepReport
from playbook.watch import DETECTED_EVENT

from ..handover_keys import PUBLIC_KEY
from .harness import (
    SPAM,
    Calls,
    WatchServer,
    db_counts,
    events,
    flow_runs,
    save_tenant,
    start_watcher,
    tenant_seed,
    wait_events,
    watch_server,
)

pytestmark = pytest.mark.timeout(600)

ALPHA, BRAVO, CHARLIE = "alpha", "bravo", "charlie"
INTERVAL = 5.0
FAST = {"graph_requests_per_second": 500.0, "graph_burst": 100}


@dataclass
class Stack:
    server: WatchServer
    main: Emulator  # alpha and bravo
    other: Emulator  # charlie
    watcher: ManagedProcess | None = None

    def calls(self, tenant: str) -> Calls:
        return Calls(self.other if tenant == CHARLIE else self.main, tenant)

    def watcher_run(self) -> Any:
        runs = [
            r for r in flow_runs("watch-restricted") if r.state and r.state.type.value == "RUNNING"
        ]
        assert len(runs) == 1, runs
        return runs[0]


def _sweep(tenants: list[str]) -> SweepReport:
    state = restricted_sweep(SweepRequest(tenants=tenants, **FAST), return_state=True)
    report = state.result(raise_on_failure=False)
    assert isinstance(report, SweepReport), state
    return report


def _wait_checked(stack: Stack, tenants: list[str], since: float, times: int = 1) -> None:
    wait_for(
        lambda: all(len(stack.calls(t).listings(since)) >= times for t in tenants),
        60,
        f"{times} check(s) of {tenants}",
        every=0.5,
    )


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    main = Emulator(
        {
            "tenants": [
                tenant_seed(
                    ALPHA,
                    [f"{u}@alpha.example" for u in ("amy", "dan", "eve", "fay")],
                    {"amy@alpha.example": "2025-01-10T08:00:00Z"},
                ),
                tenant_seed(BRAVO, ["bob@bravo.example"]),
            ]
        }
    )
    other = Emulator(
        {"tenants": [tenant_seed(CHARLIE, ["cody@charlie.example", "cid@charlie.example"])]}
    )
    with main, other, watch_server(Path(tempfile.mkdtemp(prefix="unblock-watch-"))) as server:
        save_tenant(main, ALPHA, "contain")
        save_tenant(main, BRAVO, "report")
        save_tenant(other, CHARLIE, "contain")
        unblock_user.to_deployment(name="unblock-user").apply()  # runs are created, not run
        yield Stack(server, main, other)


@pytest.fixture(scope="module")
def watching(stack: Stack) -> Stack:
    report = _sweep([ALPHA, BRAVO, CHARLIE])
    assert not report.failed
    started = time.monotonic()
    stack.watcher = start_watcher(stack.server, interval_seconds=INTERVAL)
    _wait_checked(stack, [ALPHA, BRAVO, CHARLIE], started)
    return stack


@pytest.fixture(scope="module")
def detected(watching: Stack) -> dict[str, Any]:
    since = datetime.now(UTC) - timedelta(seconds=5)
    dan = watching.main.state.restrict(ALPHA, "dan@alpha.example", reason=SPAM)
    watching.main.state.restrict(BRAVO, "bob@bravo.example", reason=SPAM)
    found = wait_events(DETECTED_EVENT, since, 2)
    return {
        "since": since,
        "events": {e["resource"]["prefect.resource.name"]: e for e in found},
        "dan": dan,
    }


def test_new_entries_become_events_and_contain_tenants_get_a_run(
    watching: Stack, detected: dict[str, Any]
) -> None:
    evs = detected["events"]
    assert set(evs) == {"dan@alpha.example", "bob@bravo.example"}
    dan, bob = evs["dan@alpha.example"], evs["bob@bravo.example"]
    assert dan["resource"]["prefect.resource.id"] == "m365.restricted-user.alpha.dan@alpha.example"
    related = {r["prefect.resource.role"]: r["prefect.resource.id"] for r in dan["related"]}
    assert related["tenant"] == "m365.tenant.alpha"
    assert related["watcher"] == f"prefect.flow-run.{watching.watcher_run().id}"
    assert dan["payload"]["containment"] == "started" and dan["payload"]["policy"] == "contain"
    assert bob["payload"]["containment"] == "report"
    assert "unblock-run" not in {r["prefect.resource.role"] for r in bob["related"]}
    assert SPAM not in str(dan["payload"])  # the reason is summarised, not copied

    runs = flow_runs("unblock-user")
    assert [r.parameters["request"]["tenant"] for r in runs] == [ALPHA]  # bravo reports only
    run = runs[0]
    created = detected["dan"].created
    assert run.idempotency_key == idempotency_key(ALPHA, "dan@alpha.example", created, created)
    assert related["unblock-run"] == f"prefect.flow-run.{run.id}"
    assert run.parameters["request"]["account"] == "dan@alpha.example"
    assert run.parameters["request"]["requested_by"] == "restricted-watch"
    assert "restricted-watch" in run.tags
    # The watcher looked the user up once; bravo's entry cost no Graph call.
    assert (
        len(watching.calls(ALPHA).of("graph.get_user"))
        + len(watching.calls(ALPHA).of("graph.list_users"))
        >= 1
    )
    assert (
        watching.calls(BRAVO).of("graph.get_user")
        == watching.calls(BRAVO).of("graph.list_users")
        == []
    )


def test_idle_checks_cost_one_exchange_call_and_write_nothing_to_prefect(
    watching: Stack, detected: dict[str, Any]
) -> None:
    time.sleep(2)  # let the handling of the new entries settle (logs, events)
    run_id = watching.watcher_run().id
    before = db_counts(watching.server.db_path, run_id)
    t0 = time.monotonic()
    time.sleep(4 * INTERVAL)
    t1 = time.monotonic()
    after = db_counts(watching.server.db_path, run_id)
    assert after == before, {k: after[k] - before[k] for k in after if after[k] != before[k]}
    for tenant in (ALPHA, BRAVO, CHARLIE):
        calls = [
            r
            for r in watching.calls(tenant).emu.requests
            if r.tenant == tenant and t0 <= r.monotonic <= t1
        ]
        listings = [r for r in calls if r.endpoint == "exo.Get-BlockedSenderAddress"]
        assert 3 <= len(listings) <= 5, (tenant, len(listings))  # one per 5 s check, nothing else
        assert len(calls) == len(listings), [r.endpoint for r in calls]


def test_the_sweep_gets_the_watchers_run_back(watching: Stack, detected: dict[str, Any]) -> None:
    report = _sweep([ALPHA])
    alpha = report.tenants[0]
    assert alpha.diff is not None
    dan = next(e for e in alpha.diff.current if e.address == "dan@alpha.example")
    assert dan.verdict == "new" and dan.containment == "started"
    assert dan.note == "run already existed"
    assert len(flow_runs("unblock-user")) == 1  # one run for the entry, whoever asked first
    assert alpha.started[0].preexisting


def test_a_throttled_tenant_waits_alone(watching: Stack, detected: dict[str, Any]) -> None:
    retry_after = 20.0
    watching.other.faults.add(
        endpoint="exo.Get-BlockedSenderAddress", kind="429", count=1, retry_after=retry_after
    )
    since = time.monotonic()
    throttled = wait_for(
        lambda: [r for r in watching.calls(CHARLIE).listings(since) if r.status == 429],
        30,
        "charlie throttled",
    )[0]
    # Meanwhile alpha is checked on time and a new entry there is contained.
    event_since = datetime.now(UTC) - timedelta(seconds=2)
    watching.main.state.restrict(ALPHA, "eve@alpha.example", reason=SPAM)
    eve = wait_events(DETECTED_EVENT, event_since, 1)
    assert eve[0]["resource"]["prefect.resource.name"] == "eve@alpha.example"
    assert eve[0]["payload"]["containment"] == "started"
    wait_for(
        lambda: time.monotonic() > throttled.monotonic + retry_after + INTERVAL, 60, "Retry-After"
    )
    charlie = [r.monotonic - throttled.monotonic for r in watching.calls(CHARLIE).listings(since)]
    after_429 = [t for t in charlie if t > 0]
    assert after_429 and min(after_429) >= retry_after - 0.5, charlie  # honoured, no early retry
    alpha_gaps = [r.monotonic for r in watching.calls(ALPHA).listings(throttled.monotonic)]
    assert len(alpha_gaps) >= int(retry_after / INTERVAL), alpha_gaps  # alpha never waited


def test_a_server_restart_is_waited_out(watching: Stack, detected: dict[str, Any]) -> None:
    server = watching.server
    server.kill("server", sig=signal.SIGTERM)
    down = time.monotonic()
    watching.main.state.restrict(ALPHA, "fay@alpha.example", reason=SPAM)
    # Exchange checks go on without Prefect (alpha's check waits for the API while it handles
    # the new entry; the other tenants are checked on time).
    try:
        _wait_checked(watching, [BRAVO, CHARLIE], down, times=2)
    except TimeoutError:
        assert watching.watcher is not None
        raise AssertionError(watching.watcher.log_tail(6000)) from None
    since = datetime.now(UTC) - timedelta(minutes=2)
    server.start_server()
    assert watching.watcher is not None and watching.watcher.alive()
    fay = wait_for(
        lambda: [
            e
            for e in events(DETECTED_EVENT, since)
            if e["resource"]["prefect.resource.name"] == "fay@alpha.example"
        ],
        120,
        "fay's event",
        every=1.0,
        tolerate=(Exception,),
    )
    assert fay[0]["payload"]["containment"] == "started"
    runs = [
        r
        for r in flow_runs("unblock-user")
        if r.parameters["request"]["account"] == "fay@alpha.example"
    ]
    assert len(runs) == 1
    assert watching.watcher.alive()
    assert watching.watcher_run().state.type.value == "RUNNING"


def test_sigterm_stops_it_and_a_new_watcher_does_not_repeat_itself(
    watching: Stack, detected: dict[str, Any]
) -> None:
    assert watching.watcher is not None
    run = watching.watcher_run()
    events_before = events(DETECTED_EVENT, detected["since"])
    runs_before = len(flow_runs("unblock-user"))
    t0 = time.monotonic()
    watching.watcher.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
    code = watching.watcher.proc.wait(timeout=30)  # type: ignore[union-attr]
    stopped = time.monotonic() - t0
    assert code == 0
    assert stopped < 10, stopped
    final = next(r for r in flow_runs("watch-restricted") if r.id == run.id)
    assert final.state.type.value == "COMPLETED", final.state
    # A new watcher starts from alpha's last sweep (before eve and fay): it handles them again,
    # gets their runs back, and the event store keeps one event per entry.
    started = time.monotonic()
    watching.watcher = start_watcher(watching.server, name="watcher-2", interval_seconds=INTERVAL)
    _wait_checked(watching, [ALPHA, BRAVO, CHARLIE], started, times=2)
    time.sleep(6)  # the event persister flushes every few seconds
    assert len(events(DETECTED_EVENT, detected["since"])) == len(events_before)
    assert len(flow_runs("unblock-user")) == runs_before
    watching.watcher.stop()


def test_profiles_are_listed_in_full_past_200(stack: Stack) -> None:
    """The server returns every block document of a type in one answer (no paging); listing
    them must neither loop nor miss any, with more than 200 profiles."""
    from prefect import flow

    from flows._watcher import list_profiles
    from tasks.list_tenant_profiles import list_tenant_profiles

    config = stack.main.tenant_config(BRAVO)
    for i in range(205):
        M365Tenant.from_config(config, policy="report", handover_public_key=PUBLIC_KEY).save(
            f"many-{i:03d}", overwrite=True
        )

    @flow
    def names() -> list[str]:
        return list_tenant_profiles()

    t0 = time.monotonic()
    listed = list_profiles()
    assert {f"many-{i:03d}" for i in range(205)} <= set(listed)
    assert listed["many-007"].policy == "report"
    assert {f"many-{i:03d}" for i in range(205)} <= set(names())
    assert time.monotonic() - t0 < 60
