"""Pure decisions of the watcher (playbook.watch): no Prefect server, no emulator."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from m365.models import RestrictedSender, RestrictionReason
from playbook.params import UnblockRequest
from playbook.sweep.containment import idempotency_key, plan_containment
from playbook.sweep.params import SweepRequest
from playbook.sweep.state import state_from_table, state_table
from playbook.sweep.verdicts import ResolvedEntry, apply_resolutions, classify
from playbook.watch import (
    DETECTED_EVENT,
    CheckSchedule,
    EntryOutcome,
    FailureLog,
    RunBudget,
    WatchCounters,
    WatchRequest,
    containment_order,
    detect,
    detected_event,
    entry_resource_id,
    forget,
    in_shard,
    plan_entry,
    profile_info,
    seen_from_state,
    select_watched,
    summary_line,
    tenant_resource_id,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
RAW = "OutboundSpamLast24Hours=120;OutboundMailLast24Hours=130;OutboundSpamPercent=92.31"
SPAM = RestrictionReason(
    raw=RAW, outbound_spam_last_24h=120, outbound_mail_last_24h=130, outbound_spam_percent=92.31
)


def sender(address: str, created: datetime | None = T0) -> RestrictedSender:
    return RestrictedSender(sender_address=address, created=created, changed=created, reason=SPAM)


# ---- the request ----------------------------------------------------------------------------


def test_request_defaults_and_bounds() -> None:
    req = WatchRequest()
    assert (req.tenants, req.interval_seconds, req.shard, req.shards) == ("all", 30.0, 0, 1)
    with pytest.raises(ValidationError, match="shard must be below shards"):
        WatchRequest(shard=2, shards=2)
    with pytest.raises(ValidationError):
        WatchRequest(interval_seconds=1)  # would hammer Exchange
    with pytest.raises(ValidationError):
        WatchRequest(tenants=["Not A Profile"])
    with pytest.raises(ValidationError):
        WatchRequest(surprise=True)  # type: ignore[call-arg]


def test_profile_info_reads_only_what_it_needs() -> None:
    info = profile_info(
        "contoso", {"tenant_id": "t-1", "policy": "contain", "client_secret": "****"}, "v1"
    )
    assert info is not None and info.policy == "contain" and info.tenant_id == "t-1"
    assert profile_info("x", {"tenant_id": "t", "policy": "weird"}, "v").policy == "report"  # type: ignore[union-attr]
    assert profile_info("x", {"policy": "contain"}, "v") is None  # no tenant id: not a profile


# ---- shards ---------------------------------------------------------------------------------


def test_every_tenant_is_in_exactly_one_shard_and_shards_are_even() -> None:
    names = [f"tenant-{i}" for i in range(400)]
    shards = 4
    covered = [select_watched("all", names, s, shards) for s in range(shards)]
    assert sorted(n for part in covered for n in part) == sorted(names)
    assert all(60 <= len(part) <= 140 for part in covered), [len(p) for p in covered]
    # Stable: the same split every time (sha-256, not Python's salted hash).
    assert [in_shard("contoso", s, 4) for s in range(4)].count(True) == 1
    assert in_shard("contoso", 0, 1)


def test_select_watched_keeps_only_existing_requested_profiles() -> None:
    assert select_watched(["b", "zz", "a"], ["a", "b", "c"], 0, 1) == ["a", "b"]
    assert select_watched("all", ["c", "a"], 0, 1) == ["a", "c"]


# ---- new or seen ----------------------------------------------------------------------------


def test_first_listing_without_state_is_the_baseline() -> None:
    d = detect(None, [sender("a@x.example"), sender("b@x.example")])
    assert d.baseline and d.new == () and set(d.seen) == {"a@x.example", "b@x.example"}


def test_new_entry_restricted_again_and_cleared() -> None:
    seen = {"a@x.example": T0, "b@x.example": T0, "gone@x.example": T0}
    listed = [
        sender("A@x.example"),  # same entry, other case
        sender("b@x.example", T0 + timedelta(hours=2)),  # restricted again
        sender("c@x.example"),  # new
    ]
    d = detect(seen, listed)
    assert not d.baseline
    assert [e.sender_address for e in d.new] == ["b@x.example", "c@x.example"]
    assert d.cleared == ("gone@x.example",)
    assert "gone@x.example" not in d.seen
    # Nothing new the second time round.
    assert detect(d.seen, listed).new == ()
    # Once cleared, the same address coming back is new again.
    assert [e.sender_address for e in detect(d.seen, [*listed, sender("gone@x.example")]).new] == [
        "gone@x.example"
    ]


def test_missing_creation_time_is_the_same_restriction() -> None:
    assert detect({"a@x.example": None}, [sender("a@x.example")]).new == ()
    assert detect({"a@x.example": T0}, [sender("a@x.example", None)]).new == ()


def test_watcher_and_sweep_agree_on_what_is_new() -> None:
    """Starting from the sweep's state, the watcher finds exactly the sweep's ``new`` verdicts."""
    first = classify("contoso", None, [sender("a@x.example"), sender("b@x.example")], T0)
    state = state_from_table("contoso", T0, state_table(first))
    listed = [
        sender("a@x.example"),
        sender("b@x.example", T0 + timedelta(minutes=5)),
        sender("c@x.example", T0 + timedelta(minutes=6)),
    ]
    swept = classify("contoso", state, listed, T0 + timedelta(minutes=15))
    watched = detect(seen_from_state(state), listed)
    assert {e.sender_address for e in watched.new} == {e.address for e in swept.with_verdict("new")}
    assert seen_from_state(None) is None


def test_forget_drops_only_the_given_keys() -> None:
    seen = {"a": T0, "b": None}
    assert forget(seen, ["b", "zz"]) == {"a": T0}
    assert seen == {"a": T0, "b": None}  # not modified in place


# ---- what to do with a new entry ------------------------------------------------------------


def test_plan_entry() -> None:
    entry = sender("a@x.example")
    assert plan_entry("report", entry, 5).action == "report"
    assert plan_entry("contain", entry, 5).action == "resolve"
    spent = plan_entry("contain", entry, 0)
    assert spent.action == "skip" and "budget" in (spent.note or "")
    undated = plan_entry("contain", sender("a@x.example", None), 5)
    assert undated.action == "skip" and "creation time" in (undated.note or "")
    hostile = plan_entry("contain", sender("<script>@x"), 5)
    assert hostile.action == "skip" and hostile.note == "not an e-mail address"


def test_the_watcher_asks_for_the_run_the_sweep_would_start() -> None:
    """Same idempotency key, same ticket: the server keeps one run per entry."""
    entry = sender("amy@x.example", T0)
    order = containment_order("contoso", entry, "amy@x.example")
    assert not isinstance(order, str)
    assert order.idempotency_key == idempotency_key(
        "contoso", "amy@x.example", T0, T0 + timedelta(days=3)
    )

    diff = classify(
        "contoso", state_from_table("contoso", T0, []), [entry], T0 + timedelta(hours=1)
    )
    diff = apply_resolutions(
        diff, [ResolvedEntry(address="amy@x.example", resolution="user", user_upn="amy@x.example")]
    )
    _, sweep_orders = plan_containment(diff, "contain", SweepRequest())
    assert [o.idempotency_key for o in sweep_orders] == [order.idempotency_key]
    ours = UnblockRequest.model_validate(order.parameters["request"])
    theirs = UnblockRequest.model_validate(sweep_orders[0].parameters["request"])
    assert ours.ticket == theirs.ticket and ours.account == theirs.account
    assert ours.requested_by == "restricted-watch"


def test_containment_order_refuses_a_bad_account() -> None:
    refused = containment_order("contoso", sender("a@x.example"), "not an address")
    assert isinstance(refused, str) and refused.startswith("refused as a run parameter")
    assert containment_order("contoso", sender("a@x.example", None), "a@x.example") == (
        "no creation time: left to the sweep"
    )


def test_run_budget_is_a_sliding_window() -> None:
    budget = RunBudget(limit=2, window=900)
    assert budget.left(0) == 2
    budget.spend(0)
    budget.spend(10)
    assert budget.left(899) == 0
    assert budget.left(900) == 1  # the first start left the window
    assert budget.left(911) == 2


# ---- the event ------------------------------------------------------------------------------


def test_detected_event_resources_payload_and_stable_id() -> None:
    entry = sender("Amy@X.example", T0)
    started = EntryOutcome(
        address="Amy@X.example", containment="started", run_id="r-1", run_name="brave-fox"
    )
    ev = detected_event("contoso", entry, "contain", started, T0, "w-1")
    assert ev.event == DETECTED_EVENT
    assert ev.resource == {
        "prefect.resource.id": "m365.restricted-user.contoso.amy@x.example",
        "prefect.resource.name": "amy@x.example",
    }
    roles = {r["prefect.resource.role"]: r["prefect.resource.id"] for r in ev.related}
    assert roles == {
        "tenant": "m365.tenant.contoso",
        "unblock-run": "prefect.flow-run.r-1",
        "watcher": "prefect.flow-run.w-1",
    }
    assert ev.payload["containment"] == "started" and ev.payload["policy"] == "contain"
    assert ev.payload["reason"] == "outbound spam 92.31% (120/130 in 24h)"
    assert RAW not in json.dumps(ev.payload)  # summarised, never the raw text
    # The id depends on the entry only: a watcher restarted mid-way sends the same event id,
    # which the event store keeps once.
    again = detected_event(
        "contoso", sender("amy@x.example", T0), "contain", started, T0 + timedelta(hours=1)
    )
    assert again.id == ev.id
    later = detected_event(
        "contoso", sender("amy@x.example", T0 + timedelta(days=1)), "contain", started, T0
    )
    assert later.id != ev.id  # restricted again: a new event
    assert tenant_resource_id("contoso") == "m365.tenant.contoso"
    assert (
        entry_resource_id("contoso", " B@x.example") == "m365.restricted-user.contoso.b@x.example"
    )


# ---- when to check, when to speak -----------------------------------------------------------


def test_schedule_keeps_the_cadence_and_waits_out_retry_after_per_tenant() -> None:
    s = CheckSchedule(interval=30)
    s.add("a", 0)
    s.add("b", 0)
    assert s.due(0) == ["a", "b"]
    s.started("a", 0)
    s.started("b", 0)
    assert s.due(100) == []  # in flight: never two checks of one tenant
    assert s.next_due() is None
    assert s.finished("a", 0.4) == 30  # due 30 s after it *started*
    assert s.finished("b", 0.5, retry_after=120) == 120.5  # throttled: its own wait
    assert s.due(31) == ["a"]  # b waits alone
    assert s.next_due() == 30
    s.started("a", 50)  # late (busy): next one 30 s after this start
    assert s.finished("a", 90) == 90  # overran its interval: due at once
    s.remove("b")
    assert s.tenants == ["a"] and "b" not in s
    s.finished("b", 200)  # a result for a removed tenant does not bring it back
    assert "b" not in s


def test_failure_log_rate() -> None:
    log = FailureLog(every=600)
    assert log.failed("a", 0) is True
    assert log.failed("a", 30) is False
    assert log.failed("a", 600) is True
    assert log.failing == ["a"]
    assert log.recovered("a", 900) == 900
    assert log.recovered("a", 901) is None
    assert log.failed("a", 902) is True  # a new outage is reported again


def test_counters_and_summary_line() -> None:
    c = (
        WatchCounters()
        .add(checks=120, detected=1, runs_started=1)
        .add(checks=1, failed_checks=1, throttled=1)
    )
    assert (c.checks, c.failed_checks, c.throttled, c.detected) == (121, 1, 1, 1)
    line = summary_line(3, c, 60, [f"t{i}" for i in range(7)])
    assert "121 check(s) in the last 60 min" in line and "1 new entry" in line
    assert line.endswith("t0, t1, t2, t3, t4 and 2 more")
