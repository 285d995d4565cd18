"""The analyst's and the approver's journey in a real browser, on Prefect's V2 UI, against a
real server.

Stack (one per module): the emulated tenant (``python -m emulator``), ``prefect server start`` on
127.0.0.1 with basic auth and its own PREFECT_HOME, the ``M365Tenant`` block "contoso" saved on it,
and ``python -m flows.serve`` executing the runs (``PREFECT_UI_URL`` = the server's ``/v2``).
Debian's Chromium, driven by Playwright at 1366x768, logs in, starts ``unblock-user`` from the
deployment's Custom run form, waits for the approval pause, refuses and then submits the Resume
form, follows the evidence link, and reads the report artifact. The tests run in file order and
number their screenshots as one journey: artifacts/screenshots/NN-step.png.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from playbook.rendering import markdown_to_text
from tests.e2e.browser import Recorder, recorded_page
from tests.e2e.harness import (
    ARTIFACTS,
    TERMINAL,
    ApiClient,
    wait_for,
)
from tests.e2e.helpers import AUTH, UiStack, record_timing

pytestmark = pytest.mark.e2e

REPORT_KEY = "unblock-user-report"
EVIDENCE_KEY = "unblock-evidence"
SHOTS = ARTIFACTS / "screenshots"
TICKET = "INC-4711"
APPROVER = "Seán O'Brien"  # a name people have: an accent and an apostrophe
ACCOUNT_FIELD_RULE = "account: an e-mail address such as rob@contoso.com"


@pytest.fixture(scope="module")
def shot_numbers() -> Iterator[int]:
    """One numbering for the whole module: the screenshots read as one journey."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for old in [*SHOTS.glob("*.png"), SHOTS / "blocked-requests.txt"]:
        old.unlink(missing_ok=True)
    return itertools.count(1)


# -- the journey, step by step ---------------------------------------------------------------


def v2(stack: UiStack, path: str = "") -> str:
    return f"{stack.server.url}/v2/{path.lstrip('/')}"


def log_in(rec: Recorder, stack: UiStack, shot: bool = False) -> None:
    """Open the V2 UI; it asks for the basic-auth string on a login page."""
    page = rec.page
    page.goto(v2(stack))
    password = page.get_by_placeholder("admin:pass")
    password.wait_for()
    if shot:
        rec.shot("login-prompt")
    password.fill(AUTH)
    page.get_by_role("button", name="Login").click()
    page.get_by_role("link", name="Deployments").first.wait_for()
    assert "/v2" in page.url, page.url


def open_custom_run_form(rec: Recorder, params: dict[str, str], shot: str | None = None) -> None:
    """Deployments → unblock-user → Run → Custom run, and fill the form generated from
    UnblockRequest (a choice such as the tenant profile is picked from its list)."""
    page = rec.page
    page.get_by_role("link", name="Deployments").first.click()
    page.get_by_role("link", name="unblock-user").first.click()
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Custom run").click()
    page.get_by_role("button", name="Submit").wait_for()
    for label, value in params.items():
        choice = page.get_by_role("button", name=f"Select {label}")
        if choice.count():
            choice.click()
            page.get_by_role("option", name=value, exact=True).click()
        else:
            page.get_by_label(label, exact=True).fill(value)
    if shot:
        rec.shot(shot)


def submit_run_form(rec: Recorder) -> str:
    """Submit the form; return the id from the server's answer. Right after the fills the form
    may still be re-rendering and swallow the click, so a click that sends nothing is repeated.
    A 503 (the server's database busy on a loaded machine; nothing was created) is submitted
    again, as a person would after the "Unknown error" toast."""
    page = rec.page
    for _attempt in range(3):
        try:
            with page.expect_response(
                lambda r: r.url.endswith("/create_flow_run") and r.request.method == "POST",
                timeout=10_000,
            ) as answer:
                page.get_by_role("button", name="Submit").click()
        except PlaywrightTimeout:
            continue
        if answer.value.status == 503:
            time.sleep(2)
            continue
        assert answer.value.status == 201, answer.value.text()
        return str(answer.value.json()["id"])
    raise AssertionError("the Submit button never sent the run to the server")


def start_run(rec: Recorder, stack: UiStack, account: str, shot: str | None = None) -> str:
    open_custom_run_form(
        rec,
        {
            "Account": account,
            "Tenant": "contoso",
            "Ticket": TICKET,
            "Requested By": "analyst ann",
        },
        shot,
    )
    run_id = submit_run_form(rec)
    # The API is the judge: the run exists with the parameters typed into the form.
    created = wait_for(lambda: stack.api.get(f"flow_runs/{run_id}"), timeout=30, what="new run")
    assert created["parameters"]["request"]["ticket"] == TICKET
    assert created["parameters"]["request"]["account"] == account
    return run_id


def open_run(rec: Recorder, stack: UiStack, run_id: str) -> None:
    rec.page.goto(v2(stack, f"runs/flow-run/{run_id}"))
    rec.page.wait_for_url(f"**/v2/runs/flow-run/{run_id}**")


def wait_for_badge(rec: Recorder, state_name: str, timeout_s: float = 60) -> None:
    """Wait for the run page's state badge; the page updates itself (no reload needed)."""
    rec.page.get_by_text(state_name, exact=True).first.wait_for(timeout=timeout_s * 1000)


def open_resume(rec: Recorder, shot: str | None = None) -> Any:
    """Resume hides in the run's ⋮ menu (top right) in the V2 UI; returns the dialog."""
    page = rec.page
    page.get_by_role("button", name="Open menu").first.click()
    resume = page.get_by_role("menuitem", name="Resume")
    resume.wait_for()
    if shot:
        rec.shot(shot)
    resume.click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Resume Flow Run").wait_for()
    return dialog


def decide(rec: Recorder, dialog: Any, approve: bool, approver: str, comment: str) -> None:
    # The decision is a required choice with nothing selected until the approver picks one.
    dialog.get_by_role("button", name="Select Decision").click()
    rec.page.get_by_role("option", name="approve" if approve else "reject", exact=True).click()
    dialog.get_by_label("Approver", exact=True).fill(approver)
    dialog.get_by_label(re.compile(r"^Comment")).fill(comment)
    rec.shot(f"{'approval' if approve else 'rejection'}-filled")
    # On a loaded machine a click can be swallowed while the form re-renders, or the server
    # answer 503 (its database busy; nothing changed): a person would press Resume again.
    for _attempt in range(3):
        try:
            with rec.page.expect_response(
                lambda r: r.url.endswith("/resume") and r.request.method == "POST",
                timeout=15_000,
            ) as answer:
                dialog.get_by_role("button", name="Resume", exact=True).click()
        except PlaywrightTimeout:
            continue
        if answer.value.status != 503:
            break
        time.sleep(2)
    dialog.wait_for(state="hidden", timeout=60_000)


def centre(element: Any) -> None:
    """Scroll ``element`` to the middle of its scrolling box (the screenshot shows it whole)."""
    element.evaluate("e => e.scrollIntoView({block: 'center'})")


def toast_text(rec: Recorder, pattern: re.Pattern[str], timeout_s: float = 10) -> str:
    """The text of the toast matching ``pattern`` (V2 toasts vanish after a few seconds)."""
    toast = rec.page.locator("[data-sonner-toast]").filter(has_text=pattern).first
    toast.wait_for(timeout=timeout_s * 1000)
    return str(toast.inner_text())


def open_report(rec: Recorder, account: str) -> None:
    page = rec.page
    page.get_by_role("tab", name="Artifacts").click()
    card = page.get_by_text(REPORT_KEY, exact=True).first
    card.wait_for()
    card.click()
    page.get_by_role("heading", name=re.compile(re.escape(account))).first.wait_for()
    rec.shot("report-artifact")
    centre(page.get_by_text("Approved or rejected by", exact=True).first)
    rec.shot("report-approval")


def exchange_reasons(stack: UiStack, account: str) -> list[str]:
    """The -Reason of every Remove-BlockedSenderAddress the tenant received for ``account``."""
    requests = stack.tenant.admin("GET", "requests")
    return [
        str(r["parameters"].get("Reason"))
        for r in requests
        if r.get("cmdlet") == "Remove-BlockedSenderAddress"
        and str(r["parameters"].get("SenderAddress", "")).lower() == account
    ]


def error_logs(api: ApiClient, run_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(all log records of the run and its tasks, those at ERROR or above) read via the API."""
    logs = api.post("logs/filter", {"logs": {"flow_run_id": {"any_": [run_id]}}, "limit": 200})
    return logs, [log for log in logs if int(log["level"]) >= 40]


def report_of(api: ApiClient, run_id: str, key: str = REPORT_KEY) -> str:
    artifacts = [a for a in api.artifacts_of(run_id) if a.get("key") == key]
    assert artifacts, f"no {key} artifact on run {run_id}"
    # The Markdown is escaped (rob\\@contoso\\.com, O&#x27;Brien); compare the plain text.
    return markdown_to_text(str(artifacts[-1]["data"]))


def run_ids(stack: UiStack) -> set[str]:
    return {str(r["id"]) for r in stack.api.runs_of_deployment(stack.deployment["id"])}


def unblock_body(**request: str) -> dict[str, Any]:
    fields = {"account": "rob@contoso.com", "tenant": "contoso", "ticket": TICKET}
    fields.update(request)
    return {"parameters": {"request": {**fields, "requested_by": "analyst ann"}}}


# -- tests (in journey order; they share one numbering of screenshots) -----------------------


def test_approver_journey_refusal_evidence_and_approval_by_sean_obrien(
    ui_stack: UiStack, browser: Any, shot_numbers: Iterator[int]
) -> None:
    stack, account = ui_stack, "rob@contoso.com"
    assert account in stack.tenant.restricted()
    reason_kind = stack.tenant.restricted()[account]["reason"].split(";")[0]
    resets_before = stack.tenant.user(account)["passwordResets"]
    t0 = time.monotonic()
    with recorded_page(browser, SHOTS, shot_numbers) as rec:
        page = rec.page
        log_in(rec, stack, shot=True)
        run_id = start_run(rec, stack, account, shot="custom-run-form-filled")
        # Find the run: the runs list names it after the account and the ticket.
        run_name = f"unblock {account} {TICKET}"
        stack.api.wait_state(run_id, {"PAUSED"}, timeout=90, what="the approval pause")
        assert stack.api.flow_run(run_id)["name"] == run_name
        page.goto(v2(stack, "runs"))
        link = page.get_by_role("link", name=run_name).first
        link.wait_for(timeout=30_000)
        centre(link)
        rec.shot("runs-list")
        link.click()
        page.wait_for_url(f"**/v2/runs/flow-run/{run_id}**")
        page.get_by_role("tab", name="Artifacts").wait_for()
        wait_for_badge(rec, "Paused")
        rec.shot("run-paused")

        # (a) Only a comment, no decision: refused in a toast; nothing happens to the run.
        dialog = open_resume(rec, shot="run-menu-resume")
        # The short description (rendered Markdown) above the form, headed by the question.
        dialog.get_by_role("heading", name=f"Unblock {account}?").wait_for()
        rec.shot("resume-form-description")
        assert "No decision within 60 minutes ends the run as ApprovalExpired" in (
            dialog.inner_text()
        )
        centre(dialog.get_by_role("button", name="Select Decision"))
        rec.shot("resume-form-evidence-link-and-decision")
        dialog.get_by_label(re.compile(r"^Comment")).fill("looked at it, not sure yet")
        dialog.get_by_role("button", name="Resume", exact=True).click()
        refusal = toast_text(rec, re.compile("decision", re.I))
        rec.shot("comment-only-refused")
        assert "decision" in refusal.lower(), refusal
        time.sleep(3)  # a resume that got through would be seen by the run within ~1 s
        assert stack.api.flow_run(run_id)["state"]["type"] == "PAUSED"
        assert stack.tenant.restricted()[account]["pendingRemoval"] is False
        assert exchange_reasons(stack, account) == []

        # (c) The evidence link in the description opens the full evidence artifact in V2.
        evidence = dialog.get_by_role("link", name=re.compile("Open the full evidence"))
        href = str(evidence.get_attribute("href"))
        assert href.startswith(v2(stack, "")), href
        pages_before = len(page.context.pages)
        evidence.click()
        wait_for(
            lambda: len(page.context.pages) > pages_before or page.url.startswith(href),
            timeout=15,
            what="the evidence page",
        )
        shown = page.context.pages[-1]
        shown.get_by_role("heading", name=f"Evidence: {account}").wait_for()
        shown.get_by_role("heading", name="The Restricted users entry").wait_for()
        assert "/v2/" in shown.url
        body = shown.locator("body").inner_text()
        assert f"Ticket {TICKET}" in body and "Inbox rules" in body
        # The entry as the tenant lists it: the address and the kind of restriction.
        entry = body.split("The Restricted users entry", 1)[1]
        assert f"Listed address\t{account}" in entry, entry[:300]
        assert f"Reason\t{reason_kind}" in entry, entry[:300]
        shown.screenshot(path=str(SHOTS / f"{next(shot_numbers):02d}-evidence-artifact.png"))
        if shown is not page:
            shown.close()
        open_run(rec, stack, run_id)
        wait_for_badge(rec, "Paused")

        # (b) The approval, by a name with an accent and an apostrophe.
        dialog = open_resume(rec)
        decide(rec, dialog, approve=True, approver=APPROVER, comment="verified by phone")
        final = stack.api.wait_state(run_id, TERMINAL, timeout=90, what="approved run final")
        wait_for_badge(rec, final["state"]["name"], timeout_s=30)
        rec.shot("run-unblocked")
        open_report(rec, account)
        assert page.get_by_text(APPROVER).first.is_visible()
    record_timing("ui approver journey", time.monotonic() - t0)

    assert final["state"]["type"] == "COMPLETED", final["state"]
    assert final["state"]["name"] == "Unblocked"
    report = report_of(stack.api, run_id)
    assert APPROVER in report and account in report
    assert exchange_reasons(stack, account) == [
        f"unblock-email: ticket {TICKET}; approved by {APPROVER}"
    ]
    assert error_logs(stack.api, run_id)[1] == []
    # The tenant saw the procedure: password reset, and the entry gone after the removal delay.
    assert stack.tenant.user(account)["passwordResets"] == resets_before + 1
    wait_for(
        lambda: account not in stack.tenant.restricted(),
        timeout=30,
        what=f"{account} off the Restricted users list",
    )


def test_a_rejection_cancels_the_run_without_an_error_record(
    ui_stack: UiStack, browser: Any, shot_numbers: Iterator[int]
) -> None:
    stack, account = ui_stack, "megan.bowen@contoso.onmicrosoft.com"
    assert account in stack.tenant.restricted()
    with recorded_page(browser, SHOTS, shot_numbers) as rec:
        log_in(rec, stack)
        run_id = start_run(rec, stack, account)
        open_run(rec, stack, run_id)
        wait_for_badge(rec, "Paused", timeout_s=90)
        dialog = open_resume(rec)
        decide(rec, dialog, approve=False, approver="lead lars", comment="user did not answer")
        final = stack.api.wait_state(run_id, TERMINAL, timeout=90, what="rejected run final")
        wait_for_badge(rec, final["state"]["name"], timeout_s=30)
        rec.shot("run-rejected")

    assert final["state"]["type"] == "CANCELLED", final["state"]
    assert final["state"]["name"] == "Rejected"
    assert "lead lars" in report_of(stack.api, run_id)
    assert stack.tenant.restricted()[account]["pendingRemoval"] is False
    assert exchange_reasons(stack, account) == []
    logs, errors = error_logs(stack.api, run_id)
    assert logs, "the run wrote no log records"
    assert errors == [], [e["message"][:300] for e in errors]


def test_a_bad_account_in_the_run_form_is_refused_in_words_and_starts_nothing(
    ui_stack: UiStack, browser: Any, shot_numbers: Iterator[int]
) -> None:
    stack = ui_stack
    runs_before = run_ids(stack)
    with recorded_page(browser, SHOTS, shot_numbers) as rec:
        page = rec.page
        log_in(rec, stack)
        open_custom_run_form(
            rec,
            {"Account": "not-an-address", "Tenant": "contoso", "Ticket": TICKET},
            shot="custom-run-form-half-filled",
        )
        page.get_by_label("Requested By", exact=True).fill("analyst ann")
        page.get_by_role("button", name="Submit").click()
        # The rule in words, inline under the field (and in a toast).
        refusal = page.get_by_text(re.compile(re.escape(ACCOUNT_FIELD_RULE))).first
        refusal.wait_for(timeout=15_000)
        centre(refusal)
        rec.shot("bad-account-refused")
        assert refusal.is_visible()
        print("the run form's refusal:", refusal.inner_text())
        assert "/v2/" in page.url
    time.sleep(2)
    assert run_ids(stack) == runs_before
    recorded = json.dumps(stack.tenant.admin("GET", "requests"))
    assert "not-an-address" not in recorded


def test_only_saved_tenant_profiles_are_offered_and_others_are_refused(
    ui_stack: UiStack, browser: Any, shot_numbers: Iterator[int]
) -> None:
    stack = ui_stack
    runs_before = run_ids(stack)
    # The API refuses a profile nobody saved, in words, before any run exists.
    answer = stack.api.raw(
        "POST",
        f"deployments/{stack.deployment['id']}/create_flow_run",
        json=unblock_body(tenant="fabrikam"),
    )
    assert answer.status_code == 409, answer.text
    detail = answer.json()["detail"]
    assert "request.tenant" in detail and "'fabrikam' is not one of ['contoso']" in detail
    assert run_ids(stack) == runs_before
    with recorded_page(browser, SHOTS, shot_numbers) as rec:
        page = rec.page
        log_in(rec, stack)
        open_custom_run_form(rec, {"Account": "rob@contoso.com"})
        page.get_by_role("button", name="Select Tenant").click()
        options = page.get_by_role("option")
        options.first.wait_for()
        rec.shot("tenant-choices")
        assert [o.strip() for o in options.all_inner_texts()] == ["contoso"]
        page.keyboard.press("Escape")
        # A person can still type any value through the field's "Use JSON Input": refused.
        select = page.get_by_role("button", name="Select Tenant")
        menu = page.get_by_role("button", name="Open menu")
        field = page.locator("div", has=select).filter(has=menu).last
        field.get_by_role("button", name="Open menu").click()
        page.get_by_role("menuitem", name="Use JSON Input").click()
        editor = page.locator(".cm-content").first  # the only code editor on the form
        editor.click()
        page.keyboard.press("Control+A")
        page.keyboard.type('"fabrikam"')
        page.get_by_label("Ticket", exact=True).fill(TICKET)
        page.get_by_label("Requested By", exact=True).fill("analyst ann")
        page.get_by_role("button", name="Submit").click()
        refusal = page.get_by_text(re.compile("'fabrikam' is not one of")).first
        refusal.wait_for(timeout=15_000)
        centre(refusal)
        rec.shot("unknown-tenant-refused")
        print("the run form's refusal:", refusal.inner_text())
    time.sleep(2)
    assert run_ids(stack) == runs_before


def test_ui_settings_report_basic_auth_and_api_needs_it(ui_stack: UiStack) -> None:
    settings = httpx.get(ui_stack.server.url + "/ui-settings", trust_env=False, timeout=10).json()
    assert settings["auth"] == "BASIC"
    assert settings["api_url"] == ui_stack.server.api_url
    anonymous = ApiClient(ui_stack.server.api_url)
    try:
        assert anonymous.raw("POST", "flows/filter", json={}).status_code == 401
        assert anonymous.raw("GET", "health").status_code == 200
    finally:
        anonymous.close()
