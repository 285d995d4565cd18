"""Item 1: every step of unblock-user x every fault, against the emulator.

Each case runs the real flow in-process (session Prefect API) against the session emulator with
one fault injected at the step's endpoint, and checks what an incident responder cares about:

- the injected fault really fired (else the case proves nothing);
- the run ends in the expected named state (the faults here are transient: every run completes);
- no side effect is duplicated: the entry is removed and counted against Microsoft's unblock cap
  at most once; the password in force is exactly the one in the hand-over block (a repeated
  PATCH after an ambiguous timeout re-applies the *same* value, recorded in the table); the TAP
  in force is the one stored.

When the whole matrix ran, the module renders the table to artifacts/fault-matrix.md and fails if
the committed docs/fault-matrix.md says something else (its rows, outcomes and results; the
counts of re-sent writes are checked by the assertions). ``make fault-matrix`` regenerates the
committed doc; a test run never writes a tracked file.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from emulator import Emulator

from ..handover_keys import PUBLIC_KEY
from .runs import (
    effective_writes,
    ensure_verify_deployment,
    resume,
    secret_value,
    start_unblock,
    wait_paused_or_done,
)

PROFILE = "reliab"
READ_TIMEOUT = 1.0
ROB = "rob@contoso.com"  # on the Restricted users list in the demo seed
ALEX = "alex@contoso.com"  # not on the list
REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "fault-matrix.md"
GENERATED = REPO / "artifacts" / "fault-matrix.md"
# ``make fault-matrix`` sets this to write the committed doc instead of the artifact copy.
WRITE_DOC = os.environ.get("UNBLOCK_WRITE_FAULT_MATRIX") == "1"


@dataclass(frozen=True)
class Step:
    name: str
    endpoint: str
    account: str
    handover: str = "secret-block"
    after_approval: bool = False  # inject the fault once the run waits for approval
    approve: bool = True  # evidence rows reject: the steps after the approval are other rows

    @property
    def expected(self) -> str:
        if self.account != ROB:
            return "NotRestricted"
        return "Unblocked" if self.approve else "Rejected"


STEPS = (
    Step("resolve_account", "graph.get_user", ALEX),
    Step("review_admin_roles", "graph.member_of", ALEX),
    Step("reset_password", "graph.update_user", ALEX),
    Step("revoke_sessions", "graph.revoke_sessions", ALEX),
    Step("hand_over_credential (tap)", "graph.create_tap", ALEX, handover="tap"),
    Step("hand_over_credential (tap check)", "graph.list_taps", ALEX, handover="tap"),
    Step("find_restricted_entry", "exo.Get-BlockedSenderAddress", ALEX),
    Step("review_inbox_rules", "exo.Get-InboxRule", ROB, approve=False),
    Step("review_mailbox_forwarding", "exo.Get-Mailbox", ROB, approve=False),
    Step("unblock_sender", "exo.Remove-BlockedSenderAddress", ROB),
    Step("confirm_unblock", "exo.Get-BlockedSenderAddress", ROB, after_approval=True),
)

FAULTS: dict[str, tuple[str, Any]] = {
    "429 + Retry-After 0.2 s (x2)": (
        "429",
        lambda ep: [{"endpoint": ep, "kind": "429", "count": 2, "retry_after": 0.2}],
    ),
    "503 (x2)": ("503", lambda ep: [{"endpoint": ep, "kind": "503", "count": 2}]),
    "timeout (no answer within read_timeout)": (
        "timeout",
        lambda ep: [{"endpoint": ep, "kind": "latency", "seconds": READ_TIMEOUT + 1.0, "count": 1}],
    ),
    "connection reset": ("reset", lambda ep: [{"endpoint": ep, "kind": "drop", "count": 1}]),
    "connection reset after the request was applied": (
        "reset-after",
        lambda ep: [{"endpoint": ep, "kind": "drop_after", "count": 1}],
    ),
    "token endpoint 503 (x2) on re-authentication": (
        "token-5xx",
        lambda ep: [
            {"endpoint": ep, "kind": "expired_token", "count": 1},
            {"endpoint": "token", "kind": "503", "count": 2},
        ],
    ),
    "401 expired token": (
        "401",
        lambda ep: [{"endpoint": ep, "kind": "expired_token", "count": 1}],
    ),
}

# Bugs found by this matrix and not yet fixed: (step, fault kind) -> description. The cases are
# strict xfails, so a fix makes them fail until the entry is removed. Empty: the one bug found
# (a re-sent TAP POST whose late first request replaced the pass handed over) is fixed by
# m365.transport's resend_ambiguous=False and playbook.reconcile.issue_tap.
KNOWN_BUGS: dict[tuple[str, str], str] = {}


def _case(step: Step, fault: str) -> Any:
    kind = FAULTS[fault][0]
    bug = KNOWN_BUGS.get((step.name, kind))
    marks = [pytest.mark.xfail(reason=bug, strict=True)] if bug else []
    return pytest.param(step, fault, id=f"{step.name.split()[0]}-{kind}", marks=marks)


CASES = [_case(step, fault) for step in STEPS for fault in FAULTS]
ROWS: dict[tuple[str, str], dict[str, Any]] = {}


@pytest.fixture(scope="module")
def profile(prefect_api: str, emulator_session: Emulator) -> Iterator[str]:
    from playbook.blocks import M365Tenant, register_blocks

    register_blocks()
    config = emulator_session.tenant_config("contoso").model_copy(
        update={"read_timeout": READ_TIMEOUT, "connect_timeout": 2.0}
    )
    block = M365Tenant.from_config(config, handover_public_key=PUBLIC_KEY)
    assert block.to_config().read_timeout == READ_TIMEOUT, "the profile must carry read_timeout"
    block.save(PROFILE, overwrite=True)
    ensure_verify_deployment()
    yield PROFILE


@pytest.mark.parametrize(("step", "fault"), CASES)
def test_fault(profile: str, emulator: Emulator, step: Step, fault: str) -> None:
    kind, make = FAULTS[fault]
    known = (step.name, kind) in KNOWN_BUGS
    row: dict[str, Any] = {"result": "FAIL (known bug 1)" if known else "FAIL"}
    ROWS[(step.name, fault)] = row
    started_at = time.monotonic()
    rules = []
    if not step.after_approval:
        rules = [emulator.faults.add(**spec) for spec in make(step.endpoint)]

    run = start_unblock(profile, account=step.account, handover=step.handover)
    paused = wait_paused_or_done(run)
    if step.account == ROB:
        assert paused is not None, "rob is restricted: the run must ask for approval"
        if step.after_approval:
            rules = [emulator.faults.add(**spec) for spec in make(step.endpoint)]
        resume(paused, decision="approve" if step.approve else "reject", approver="bob")
    state = run.state(timeout=120)
    row["seconds"] = round(time.monotonic() - started_at, 1)
    row["outcome"] = f"{state.type.value.title()} / {state.name}"
    row["fired"] = sum(r.applied for r in rules)

    assert all(r.applied >= 1 for r in rules), "the injected fault never fired"
    assert state.name == step.expected, state.message

    flow_run_id = state.state_details.flow_run_id
    block = f"unblock-handover-{flow_run_id}"
    credential = secret_value(block)
    assert credential, "the hand-over block must hold the credential"
    user = emulator.state.user("contoso", step.account)
    if step.handover == "tap":
        in_force = emulator.state.tap_matches(user, credential)
    else:
        in_force = emulator.state.password_matches(user, credential)
    row["in_force"] = in_force
    row["resets"] = effective_writes(emulator, "graph.update_user")
    row["taps"] = effective_writes(emulator, "graph.create_tap")
    row["revokes"] = effective_writes(emulator, "graph.revoke_sessions")
    row["removals"] = effective_writes(emulator, "exo.Remove-BlockedSenderAddress")
    row["unblock_count"] = emulator.state.unblock_count("contoso", step.account)
    assert in_force, "the handed-over credential is not the one in force"
    expected_unblocks = 1 if step.expected == "Unblocked" else 0
    # The side effect (Microsoft's per-account unblock counter) happens once; a re-sent Remove
    # after a timeout reaches an entry already being removed (see the note in the doc).
    assert row["unblock_count"] == expected_unblocks
    assert expected_unblocks <= row["removals"] <= 2 * expected_unblocks
    assert row["resets"] >= 1 and row["revokes"] >= 1
    if step.handover == "tap":
        assert row["taps"] >= 1
    # Only a lost answer to the PATCH itself may re-send it (same password, see above).
    if not (kind in ("timeout", "reset-after") and step.endpoint == "graph.update_user"):
        assert row["resets"] == 1
    row["result"] = "pass"


def render_doc() -> str:
    lines = [
        "# Fault matrix",
        "",
        "Generated by `tests/reliability/test_fault_matrix.py` (do not edit by hand; run",
        "`make fault-matrix` to regenerate). `make test` fails when this page no longer",
        "matches the matrix that ran.",
        "",
        "Each row is one run of `unblock-user` against the emulator with one fault injected at",
        "the endpoint of one step. Transient faults are retried by the client's retry policy",
        "(`m365.retry.RetryPolicy`, Retry-After honoured) and, beyond it, by the task's retries;",
        f"the timeout case uses the tenant profile's `read_timeout` = {READ_TIMEOUT:g} s and an",
        f"emulator latency of {READ_TIMEOUT + 1:g} s. *Connection reset* closes the connection",
        "before the emulator handles the request; *after the request was applied* handles it",
        "first, so a write has happened and only its answer is lost. Steps before the approval",
        "use an account",
        "that is not restricted (the run ends `NotRestricted`); the evidence steps use a",
        "restricted account whose unblock is rejected (`Rejected`); `unblock_sender` and",
        "`confirm_unblock` use a restricted account that is approved (`Unblocked`).",
        "",
        "Columns: *fired* = times the injected fault was served; *resets*, *TAPs*, *revokes*,",
        "*removals* = successful writes the emulator recorded; *unblock count* = Microsoft's",
        "per-account counter; *in force* = the credential in the hand-over Secret block is the",
        "one the tenant accepts.",
        "",
        "| step | endpoint | fault | fired | outcome | resets | TAPs | revokes | removals "
        "| unblock count | in force | s | result |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for step in STEPS:
        for fault in FAULTS:
            r = ROWS.get((step.name, fault), {})
            lines.append(
                f"| {step.name} | `{step.endpoint}` | {fault} | {r.get('fired', '-')} "
                f"| {r.get('outcome', '-')} | {r.get('resets', '-')} | {r.get('taps', '-')} "
                f"| {r.get('revokes', '-')} | {r.get('removals', '-')} "
                f"| {r.get('unblock_count', '-')} "
                f"| {'yes' if r.get('in_force') else 'NO' if 'in_force' in r else '-'} "
                f"| {r.get('seconds', '-')} | {r.get('result', '-')} |"
            )
    passed = sum(1 for r in ROWS.values() if r.get("result") == "pass")
    lines += [
        "",
        f"**{len(ROWS)} fault cases: {passed} pass, {len(ROWS) - passed} fail.**",
        "",
        "## Known bugs found by the matrix (the cases are strict xfails)",
        "",
        *(
            [
                f"{i}. {step} x {kind}: {text}."
                for i, ((step, kind), text) in enumerate(KNOWN_BUGS.items(), 1)
            ]
            or [
                "None open. The matrix found one: after a read timeout the TAP POST was re-sent,",
                "the first request still landed later and its pass replaced the one handed over.",
                "Fixed: the transport never re-sends a TAP POST or `Remove-BlockedSenderAddress`",
                "whose answer was lost (`OutcomeUnknownError`), and `playbook.reconcile` re-reads",
                "state first (`tests/reliability/test_lost_answers.py`).",
            ]
        ),
        "",
        "## Notes",
        "",
        "A lost TAP answer: the step waits up to one read timeout for the lost request to land",
        "(a new method id in `GET .../temporaryAccessPassMethods`), issues a new pass, stores it,",
        "and lists the methods again: the pass handed over must be the one in force, else it goes",
        "another round (at most 3). Hence *TAPs* 2 in the timeout and reset-after rows, and",
        "*in force* yes.",
        "",
        "A lost `Remove-BlockedSenderAddress` answer: the step re-reads the list with",
        "`Get-BlockedSenderAddress` before sending again, as the API notes advise. Microsoft keeps",
        "an entry listed while it applies a removal (emulated: 2 s), so the re-read can still show",
        "it and the cmdlet goes out again; the emulator answers that repeat with success for an",
        "entry already being removed and counts the unblock once (*removals* 2, *unblock count*",
        "1). Whether Microsoft counts such a repeat against the unblock limit is [UNCONFIRMED].",
        "",
        "Why a PATCH can appear twice: after a read timeout, or a connection reset once the",
        "request was applied, the client cannot know whether the reset landed, so it re-sends",
        "the same request. Both carry the password that was stored in",
        "the hand-over block *before* the first attempt, so the password in force and the one",
        "handed over are the same; only `lastPasswordChangeDateTime` moves. A re-sent",
        "`revokeSignInSessions` only revokes again.",
        "",
        "Faults that outlast every retry end the run `Failed` with the failed step and the error",
        "class in the state message and the report artifact (exercised with a persistent 503 on",
        "`Get-BlockedSenderAddress` in `tests/security/test_secret_leaks.py`); a password reset",
        "that already happened is reported as standing and its hand-over secret is kept.",
        "",
    ]
    return "\n".join(lines)


def test_committed_doc_is_current(profile: str) -> None:
    """Runs last (pytest keeps definition order within a module): the matrix that just ran
    must be the one docs/fault-matrix.md shows."""
    missing = [key for key in ((s.name, f) for s in STEPS for f in FAULTS) if key not in ROWS]
    if missing:
        pytest.skip(f"{len(missing)} fault case(s) did not run; the doc is compared on full runs")
    text = render_doc()
    target = DOC if WRITE_DOC else GENERATED
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    committed = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
    assert _comparable(committed) == _comparable(text), (
        "docs/fault-matrix.md is stale: run `make fault-matrix` and commit it "
        f"(this run's version is in {GENERATED.relative_to(REPO)})"
    )


_TABLE_ROW = re.compile(r"^\|(.*)\|$")
# Columns that the case's assertions already bound, and that vary with timing (the counts of
# re-sent writes and the seconds): the doc comparison ignores them.
_VOLATILE = {3, 5, 6, 7, 8, 11}


def _comparable(text: str) -> list[str]:
    lines = []
    for line in text.splitlines():
        row = _TABLE_ROW.match(line)
        if row and not line.startswith("|---"):
            cells = [c.strip() for c in row.group(1).split("|")]
            line = " | ".join(c for i, c in enumerate(cells) if i not in _VOLATILE)
        lines.append(line)
    return lines
