"""Pure decisions of the sweep (playbook.sweep): no Prefect server, no emulator."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from m365.errors import AuthError, ConnectionFailedError, ThrottledError
from m365.models import RestrictedSender, RestrictionReason
from playbook.params import PROFILE_PATTERN, UnblockRequest
from playbook.rendering import md_escape
from playbook.sweep.containment import (
    ContainmentResult,
    apply_containment,
    idempotency_key,
    plan_containment,
)
from playbook.sweep.params import SweepRequest, effective_policy, select_tenants
from playbook.sweep.report import (
    PlaybookRun,
    SweepReport,
    TenantReport,
    describe_failure,
    render_summary,
)
from playbook.sweep.state import (
    EntryState,
    entry_age,
    format_age,
    state_from_table,
    state_table,
    table_artifact_key,
    variable_name,
)
from playbook.sweep.verdicts import (
    ResolvedEntry,
    addresses_to_resolve,
    apply_resolutions,
    classify,
    summarize_reason,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
SPAM = RestrictionReason(
    raw="OutboundSpamLast24Hours=120;OutboundMailLast24Hours=130;OutboundSpamPercent=92.31",
    outbound_spam_last_24h=120,
    outbound_mail_last_24h=130,
    outbound_spam_percent=92.31,
)
# a@contoso.com resolved to the user u1
A_IS_U1 = ResolvedEntry(
    address="a@contoso.com", resolution="user", user_id="u1", user_upn="a@contoso.com"
)


def sender(
    address: str, created: datetime | None = T0, reason: RestrictionReason = SPAM
) -> RestrictedSender:
    return RestrictedSender(sender_address=address, created=created, changed=created, reason=reason)


def playbook_run(run_id, name, account, state_type, **more):
    """An unblock-user run in contoso as the summary reads it; its link is its page in the UI."""
    return PlaybookRun(
        id=run_id,
        name=name,
        tenant="contoso",
        account=account,
        state_type=state_type,
        state_name=state_type.title(),
        url=f"http://127.0.0.1:4200/runs/flow-run/{run_id}",
        **more,
    )


def sweep(previous, listed, now=T0 + timedelta(hours=1), tenant="contoso"):
    state = None
    if previous is not None:
        state = state_from_table(tenant, previous.swept_at, state_table(previous))
    return classify(tenant, state, listed, now)


def test_first_sweep_reports_first_seen_never_new():
    diff = sweep(None, [sender("a@contoso.com"), sender("b@contoso.com")])
    assert diff.first_sweep
    assert [e.verdict for e in diff.current] == ["first-seen", "first-seen"]
    assert all(e.baseline for e in diff.current)
    assert diff.cleared == ()


def test_second_sweep_new_restricted_cleared():
    first = sweep(None, [sender("a@contoso.com"), sender("B@Contoso.com")])
    second = sweep(
        first, [sender("b@contoso.com"), sender("c@contoso.com")], now=T0 + timedelta(hours=2)
    )
    verdicts = {e.address.lower(): e.verdict for e in second.current}
    assert verdicts == {"b@contoso.com": "restricted", "c@contoso.com": "new"}
    assert [e.address for e in second.cleared] == ["a@contoso.com"]
    assert second.cleared[0].verdict == "cleared"
    assert second.counts() == {"first-seen": 0, "new": 1, "restricted": 1, "cleared": 1}
    # what is carried forward: the first sighting and the baseline flag
    b = next(e for e in second.current if e.key == "b@contoso.com")
    assert b.first_seen == T0 + timedelta(hours=1) and b.baseline


def test_cleared_entries_are_not_state():
    first = sweep(None, [sender("a@contoso.com")])
    second = sweep(first, [])
    third = sweep(second, [])
    assert [e.address for e in second.cleared] == ["a@contoso.com"]
    assert third.cleared == () and third.current == ()


def test_restricted_again_with_new_creation_time_is_new_and_keeps_user():
    first = sweep(None, [sender("a@contoso.com")])
    first = apply_resolutions(
        first,
        [A_IS_U1],
    )
    second = sweep(first, [sender("a@contoso.com", created=T0 + timedelta(days=1))])
    (entry,) = second.current
    assert entry.verdict == "new" and not entry.baseline
    assert entry.resolution == "user" and entry.user_id == "u1"
    assert addresses_to_resolve(second) == []


def test_duplicate_addresses_across_pages_count_once():
    diff = sweep(
        None, [sender("a@contoso.com"), sender("A@contoso.com", created=T0 + timedelta(minutes=5))]
    )
    assert len(diff.current) == 1
    assert diff.current[0].created == T0 + timedelta(minutes=5)


def test_missing_creation_time_keeps_the_earlier_one():
    first = sweep(None, [sender("a@contoso.com")])
    second = sweep(first, [sender("a@contoso.com", created=None)])
    assert second.current[0].verdict == "restricted"
    assert second.current[0].created == T0


def test_state_round_trips_through_the_table():
    diff = sweep(None, [sender("a@contoso.com"), sender("x@fabrikam.example")])
    diff = apply_resolutions(
        diff,
        [
            A_IS_U1,
            ResolvedEntry(address="x@fabrikam.example", resolution="no-user"),
        ],
    )
    rows = state_table(diff)
    assert rows[0]["age"] == "1h 00m"
    state = state_from_table("contoso", diff.swept_at, rows)
    assert set(state.entries) == {"a@contoso.com", "x@fabrikam.example"}
    assert state.entries["a@contoso.com"].user_id == "u1"
    assert state.entries["x@fabrikam.example"].resolution == "no-user"


def test_resolution_reuses_earlier_results():
    first = sweep(None, [sender("a@contoso.com"), sender("b@contoso.com")])
    first = apply_resolutions(
        first,
        [
            A_IS_U1,
            ResolvedEntry(address="b@contoso.com", resolution="error", error="ThrottledError"),
        ],
    )
    second = sweep(
        first, [sender("a@contoso.com"), sender("b@contoso.com"), sender("c@contoso.com")]
    )
    assert addresses_to_resolve(second) == ["b@contoso.com", "c@contoso.com"]


def test_idempotency_key_is_stable_and_distinguishes_restrictions():
    k1 = idempotency_key("contoso", "A@Contoso.com", T0, T0)
    assert k1 == idempotency_key(
        "contoso", "a@contoso.com", T0.astimezone(timezone_plus2()), T0 + timedelta(hours=3)
    )
    assert k1 == "restricted-sweep:contoso:a@contoso.com:2025-03-01T12:00:00Z"
    assert k1 != idempotency_key("fabrikam", "a@contoso.com", T0, T0)
    assert k1 != idempotency_key("contoso", "a@contoso.com", T0 + timedelta(days=1), T0)
    assert idempotency_key("contoso", "a@contoso.com", None, T0).endswith(
        "seen-2025-03-01T12:00:00Z"
    )


def timezone_plus2():
    from datetime import timezone

    return timezone(timedelta(hours=2))


def test_ages():
    assert format_age(timedelta(seconds=30)) == "<1m"
    assert format_age(timedelta(minutes=42)) == "42m"
    assert format_age(timedelta(hours=3, minutes=5)) == "3h 05m"
    assert format_age(timedelta(days=2, hours=4, minutes=59)) == "2d 04h"
    e = EntryState(address="a@x.com", verdict="new", created=None, first_seen=T0)
    assert entry_age(e, T0 + timedelta(minutes=10)) == timedelta(minutes=10)
    assert entry_age(e, T0 - timedelta(minutes=10)) == timedelta(0)


def test_effective_policy_precedence():
    req = SweepRequest(policy="report", tenant_policies={"fabrikam": "contain"})
    assert effective_policy("fabrikam", "report", req) == "contain"
    assert effective_policy("contoso", "contain", req) == "report"
    assert effective_policy("contoso", "contain", SweepRequest()) == "contain"
    assert effective_policy("contoso", "bogus", SweepRequest()) == "report"


def test_sweep_request_validates_tenant_names():
    assert SweepRequest().tenants == "all"
    assert SweepRequest(tenants=["contoso", "fabrikam"]).tenants == ["contoso", "fabrikam"]
    with pytest.raises(ValueError):
        SweepRequest(tenants=["../etc"])
    with pytest.raises(ValueError):
        SweepRequest(tenants="some")  # type: ignore[arg-type]


def test_select_tenants():
    assert select_tenants("all", ["b", "a", "b"]) == ["a", "b"]
    assert select_tenants(["b", "a", "b"], ["a"]) == ["b", "a"]
    assert re.fullmatch(PROFILE_PATTERN, "contoso")
    assert variable_name("contoso") == "restricted-sweep-contoso"
    assert table_artifact_key("contoso") == "restricted-sweep-contoso"


def resolved_diff(previous=None, listed=(), **kw):
    diff = sweep(previous, list(listed), **kw)
    return apply_resolutions(
        diff,
        [
            ResolvedEntry(
                address=e.address, resolution="user", user_id="id-" + e.key, user_upn=e.key
            )
            if not e.key.startswith("ext")
            else ResolvedEntry(address=e.address, resolution="no-user")
            for e in diff.current
        ],
    )


def test_report_policy_plans_nothing():
    first = resolved_diff(None, [sender("a@contoso.com")])
    second = resolved_diff(first, [sender("a@contoso.com"), sender("b@contoso.com")])
    diff, orders = plan_containment(second, "report", SweepRequest())
    assert orders == []
    assert all(e.containment == "none" for e in diff.current)


def test_contain_policy_plans_new_entries_only():
    first = resolved_diff(None, [sender("a@contoso.com")])
    second = resolved_diff(
        first, [sender("a@contoso.com"), sender("b@contoso.com"), sender("ext@fabrikam.example")]
    )
    diff, orders = plan_containment(second, "contain", SweepRequest())
    assert [o.address for o in orders] == ["b@contoso.com"]
    order = orders[0]
    assert order.idempotency_key == idempotency_key("contoso", "b@contoso.com", T0, T0)
    request = UnblockRequest.model_validate(order.parameters["request"])
    assert request.account == "b@contoso.com" and request.tenant == "contoso"
    assert request.requested_by == "restricted-sweep" and not request.dry_run
    states = {e.key: (e.containment, e.note) for e in diff.current}
    assert states["a@contoso.com"] == ("none", None)  # baseline entry
    assert states["ext@fabrikam.example"][0] == "skipped"


def test_contain_first_seen_on_request():
    first = resolved_diff(None, [sender("a@contoso.com")])
    _, orders = plan_containment(first, "contain", SweepRequest(contain_first_seen=True))
    assert [o.address for o in orders] == ["a@contoso.com"]
    _, orders = plan_containment(first, "contain", SweepRequest())
    assert orders == []


def test_cap_defers_the_rest_to_the_next_sweep_and_a_run_is_never_started_twice():
    first = resolved_diff(None, [])
    listed = [sender(f"u{i}@contoso.com", created=T0 + timedelta(minutes=i)) for i in range(5)]
    second = resolved_diff(first, listed)
    diff, orders = plan_containment(second, "contain", SweepRequest(max_new_runs_per_tenant=2))
    assert [o.address for o in orders] == ["u0@contoso.com", "u1@contoso.com"]  # oldest first
    diff = apply_containment(
        diff,
        [
            ContainmentResult(
                address="u0@contoso.com", idempotency_key=orders[0].idempotency_key, run_id="r0"
            ),
            ContainmentResult(
                address="u1@contoso.com", idempotency_key=orders[1].idempotency_key, error="boom"
            ),
        ],
    )
    by_key = {e.key: e for e in diff.current}
    assert (
        by_key["u0@contoso.com"].containment == "started"
        and by_key["u0@contoso.com"].run_id == "r0"
    )
    assert by_key["u1@contoso.com"].containment == "pending" and "boom" in (
        by_key["u1@contoso.com"].note or ""
    )
    assert by_key["u4@contoso.com"].containment == "pending"
    # next sweep: still restricted, the pending ones are planned, the started one is not
    third = sweep(diff, listed, now=T0 + timedelta(hours=3))
    _, orders = plan_containment(third, "contain", SweepRequest(max_new_runs_per_tenant=10))
    assert [o.address for o in orders] == [f"u{i}@contoso.com" for i in (1, 2, 3, 4)]


def test_unresolved_user_waits():
    first = resolved_diff(None, [])
    second = sweep(first, [sender("a@contoso.com")])
    diff, orders = plan_containment(second, "contain", SweepRequest())
    assert orders == [] and diff.current[0].containment == "pending"


def test_describe_failure_names_cause():
    auth = AuthError(
        "invalid_client: the client secret is wrong", error="invalid_client", aadsts_code=7000215
    )
    assert (
        describe_failure(auth)
        == "AuthError (AADSTS7000215): invalid_client: the client secret is wrong"
    )
    assert "Retry-After 30s" in describe_failure(
        ThrottledError("throttled", status=429, retry_after=30)
    )
    assert describe_failure(ConnectionFailedError("refused")) == "ConnectionFailedError: refused"
    assert describe_failure(KeyError("x")).startswith("KeyError (unexpected)")


def test_summarize_reason():
    assert summarize_reason(SPAM) == "outbound spam 92.31% (120/130 in 24h)"
    limit = RestrictionReason(
        raw="EmailSendingLimitExceeded;...",
        kind="EmailSendingLimitExceeded",
        exceeding_limit_type="External",
        external_recipient_count_today=501,
    )
    assert (
        summarize_reason(limit)
        == "sending limit exceeded (External): 501 external recipients today"
    )
    assert summarize_reason(RestrictionReason()) == "no reason given"


def test_md_escape_neutralises_markup():
    hostile = "<img src=x onerror=alert(1)> [click](http://evil.example) | **b** `c`\nnext"
    out = md_escape(hostile)
    assert "<" not in out and ">" not in out and "\n" not in out
    assert "](" not in out and "http://" not in out
    assert "\\|" in out and "\\*\\*" in out and "\\`" in out


def test_summary_escapes_tenant_strings_and_links_paused_runs():
    first = resolved_diff(None, [])
    hostile = RestrictionReason(raw="<script>x</script>|[a](http://evil)", kind="<b>k</b>")
    second = resolved_diff(
        first, [sender("a_b@contoso.com", reason=hostile), sender("c@contoso.com")]
    )
    diff, orders = plan_containment(second, "contain", SweepRequest())
    diff = apply_containment(
        diff,
        [
            ContainmentResult(
                address=o.address, idempotency_key=o.idempotency_key, run_id=f"run-{i}"
            )
            for i, o in enumerate(orders)
        ],
    )
    runs = (
        playbook_run("run-0", "unblock-a", "a_b@contoso.com", "PAUSED", started_by_sweep=True),
        playbook_run("run-9", "manual", "z@contoso.com", "RUNNING"),
    )
    report = SweepReport(
        swept_at=diff.swept_at,
        tenants=(
            TenantReport(tenant="contoso", policy="contain", diff=diff, runs=runs),
            TenantReport(
                tenant="fabrikam",
                failure=describe_failure(AuthError("bad secret", aadsts_code=7000215)),
                previous_swept_at=T0,
                previous_entries=3,
            ),
        ),
    )
    md = render_summary(report)
    assert "<script>" not in md and "](http://evil" not in md
    assert md_escape("a_b@contoso.com") == "a\\_b\\@contoso\\.com"
    assert md_escape("a_b@contoso.com") in md
    link = f"[{md_escape('a_b@contoso.com')}](http://127.0.0.1:4200/runs/flow-run/run-0)"
    assert link in md  # approval link
    assert "### Approvals waiting (1)" in md
    assert "### Playbook runs in flight (1)" in md
    assert f"[{md_escape('z@contoso.com')}](http://127.0.0.1:4200/runs/flow-run/run-9)" in md
    assert "### New entries (2)" in md
    assert "AADSTS7000215" in md and "last successful sweep 2025-03-01T12:00:00Z, 3 entries" in md
    assert "| contoso | contain | ok | 2 | 0 | 0 | 0 | 1 | 1 |" in md
    assert "| fabrikam | ? | **failed** |" in md
