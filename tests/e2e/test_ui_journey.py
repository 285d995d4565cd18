"""The analyst's journey in a real browser, on the real Prefect UI, against a real server.

Stack (one per module): the emulated tenant (``python -m emulator``), ``prefect server start`` on
127.0.0.1 with basic auth and its own PREFECT_HOME, the ``M365Tenant`` block "contoso" saved on it,
and ``python -m flows.serve`` executing the runs. Debian's Chromium, driven by Playwright, logs in,
starts ``unblock-user`` from the parameter form, waits for the approval pause, approves or rejects
in the resume form, and reads the report artifact. Screenshots: artifacts/screenshots/<test>/.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.e2e.browser import Recorder, recorded_page
from tests.e2e.conftest import need_chromium, record_timing
from tests.e2e.harness import (
    ARTIFACTS,
    PYTHON,
    TERMINAL,
    ApiClient,
    EmulatorProcess,
    ManagedProcess,
    PrefectServer,
    wait_for,
)

pytestmark = pytest.mark.e2e

AUTH = "soc-analyst:e2e-Basic-auth-0nly"  # throw-away credential of a loopback test server
REPORT_KEY = "unblock-user-report"
SHOTS = ARTIFACTS / "screenshots"


@dataclass
class UiStack:
    server: PrefectServer
    api: ApiClient
    tenant: EmulatorProcess
    deployment: dict[str, Any]


@pytest.fixture(scope="module")
def ui_stack(
    tmp_path_factory: pytest.TempPathFactory, e2e_logs: Path, tenant_process: EmulatorProcess
) -> Iterator[UiStack]:
    need_chromium()
    from tests.e2e.harness import save_tenant_block

    t0 = time.monotonic()
    server = PrefectServer(
        home=tmp_path_factory.mktemp("ui-prefect-home"),
        log_path=e2e_logs / "ui-server.log",
        auth_string=AUTH,
    )
    serve: ManagedProcess | None = None
    api: ApiClient | None = None
    try:
        server.start()
        record_timing("ui prefect server start", server.startup_seconds[-1])
        api = server.client()
        save_tenant_block(server, tenant_process.tenant_config("contoso", "playbook"), "contoso")
        serve = ManagedProcess(
            "flows.serve",
            [PYTHON, "-m", "flows.serve", "--only", "unblock-user", "verify-unblock"],
            server.client_env(
                {
                    "PREFECT_RUNNER_POLL_FREQUENCY": "1",
                    "UNBLOCK_APPROVAL_POLL_SECONDS": "1",
                }
            ),
            e2e_logs / "ui-serve.log",
        ).start()
        client = api

        def deployed() -> dict[str, Any] | None:
            assert serve is not None
            if not serve.alive():
                raise RuntimeError(f"flows.serve exited; see {serve.log_path}")
            try:
                return client.deployment("unblock-user", "unblock-user")
            except httpx.HTTPStatusError:
                return None

        t1 = time.monotonic()
        deployment = wait_for(deployed, timeout=120, interval=0.5, what="unblock-user deployment")
        record_timing("ui flows.serve until deployment exists", time.monotonic() - t1)
        record_timing("ui stack start (server+block+serve)", time.monotonic() - t0)
        yield UiStack(server, api, tenant_process, deployment)
    finally:
        # Order matters: the runner pauses its deployments on shutdown, so stop it first.
        if serve is not None:
            serve.stop(term_timeout=10)
        if api is not None:
            api.close()
        server.stop()


@pytest.fixture(scope="module")
def browser(ui_stack: UiStack) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        yield pw


# -- the journey, step by step ---------------------------------------------------------------


def log_in(rec: Recorder, stack: UiStack) -> None:
    """Open the server's root URL; the UI asks for the basic-auth string on a login page."""
    page = rec.page
    page.goto(stack.server.url + "/")
    password = page.get_by_placeholder("admin:pass")
    password.wait_for()
    rec.shot("login-prompt")
    password.fill(AUTH)
    page.get_by_role("button", name="Login").click()
    page.get_by_role("link", name="Deployments").first.wait_for()
    rec.shot("logged-in")


def open_deployment(rec: Recorder) -> None:
    page = rec.page
    page.get_by_role("link", name="Deployments").first.click()
    page.get_by_role("link", name="unblock-user").first.click()
    page.get_by_role("button", name="Run", exact=True).wait_for()
    rec.shot("unblock-user-deployment")


def start_custom_run(rec: Recorder, api: ApiClient, run_name: str, params: dict[str, str]) -> str:
    """Fill the run form generated from UnblockRequest, submit, open the new run; return its id."""
    page = rec.page
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Custom run").click()
    for label, value in params.items():
        choice = page.get_by_role("button", name=f"Select {label}")
        if choice.count():  # a choice (the tenant profiles, flows.deploy): pick it from the list
            choice.click()
            page.get_by_role("option", name=value, exact=True).click()
        else:
            page.get_by_label(label, exact=True).fill(value)
    # The form draws a random run name once it has loaded and may overwrite an early fill.
    name_box = page.get_by_label("Run Name")
    wait_for(
        lambda: name_box.fill(run_name) or name_box.input_value() == run_name,
        timeout=10,
        what="run name to stick",
    )
    rec.shot("parameter-form-filled")
    # Submit and take the id from the server's answer to the form. Right after the fills the form
    # may still be re-rendering and swallow the click, so a click that sends nothing is repeated.
    run_id = ""
    for _attempt in range(3):
        try:
            with page.expect_response(
                lambda r: r.url.endswith("/create_flow_run") and r.request.method == "POST",
                timeout=10_000,
            ) as answer:
                page.get_by_role("button", name="Submit").click()
        except PlaywrightTimeout:
            continue
        assert answer.value.status == 201, answer.value.text()
        run_id = str(answer.value.json()["id"])
        break
    assert run_id, "the Submit button never sent the run to the server"
    # The API is the judge: the run exists with the parameters typed into the form.
    created = wait_for(lambda: api.get(f"flow_runs/{run_id}"), timeout=30, what="the new run")
    assert created["parameters"]["request"]["ticket"] == params["Ticket"]
    # The UI stays on the deployment page; a short-lived toast links to the new run.
    view = page.get_by_role("button", name="View run")
    try:
        view.click(timeout=5_000)
    except PlaywrightTimeout:
        page.goto(f"{page.url.split('/v2/')[0]}/v2/runs/flow-run/{run_id}")
    page.wait_for_url(f"**/runs/flow-run/{run_id}**")
    return run_id


def wait_for_badge(rec: Recorder, state_name: str, timeout_s: float = 60) -> None:
    """Wait for the run page's state badge; the page updates itself (no reload needed)."""
    rec.page.get_by_text(state_name, exact=True).first.wait_for(timeout=timeout_s * 1000)


def submit_approval(rec: Recorder, approve: bool, approver: str, comment: str) -> None:
    page = rec.page
    # Resume hides in the run's kebab menu (top right) in the V2 UI.
    page.get_by_role("button", name="Open menu").first.click()
    page.get_by_role("menuitem", name="Resume").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Resume Flow Run").wait_for()
    # The decision is a required choice with nothing selected until the approver picks one.
    dialog.get_by_role("button", name="Select Decision").click()
    page.get_by_role("option", name="approve" if approve else "reject", exact=True).click()
    dialog.get_by_label("Approver", exact=True).fill(approver)
    dialog.get_by_label(re.compile(r"^Comment")).fill(comment)
    rec.shot("approval-form-filled")
    dialog.get_by_role("button", name="Resume", exact=True).click()
    dialog.wait_for(state="hidden")


def open_report(rec: Recorder, account: str) -> None:
    page = rec.page
    page.get_by_role("tab", name="Artifacts").click()
    card = page.get_by_text(REPORT_KEY, exact=True).first
    card.wait_for()
    rec.shot("artifacts-tab")
    card.click()
    page.get_by_role("heading", name=re.compile(re.escape(account))).first.wait_for()
    rec.shot("report-artifact")


def journey(
    stack: UiStack, browser: Any, test_name: str, account: str, approve: bool
) -> dict[str, Any]:
    run_name = f"ui-{'approve' if approve else 'reject'}-{uuid.uuid4().hex[:6]}"
    t0 = time.monotonic()
    with recorded_page(browser, SHOTS / test_name) as rec:
        log_in(rec, stack)
        open_deployment(rec)
        run_id = start_custom_run(
            rec,
            stack.api,
            run_name,
            {
                "Account": account,
                "Tenant": "contoso",
                "Ticket": "INC-4711",
                "Requested By": "analyst ann",
            },
        )
        run = stack.api.flow_run(run_id)
        assert run["name"] == run_name
        wait_for_badge(rec, "Paused", timeout_s=90)
        assert stack.api.flow_run(run["id"])["state"]["type"] == "PAUSED"
        rec.shot("run-paused")
        submit_approval(
            rec, approve, approver="lead lars", comment="verified with the user by phone"
        )
        final = stack.api.wait_state(run["id"], TERMINAL, timeout=90, what=f"{run_name} final")
        wait_for_badge(rec, final["state"]["name"], timeout_s=30)
        rec.shot("run-finished")
        open_report(rec, account)
        shots = list(rec.saved)
    record_timing(f"ui journey {test_name}", time.monotonic() - t0)
    assert len(shots) >= 8 and all(p.stat().st_size > 0 for p in shots)
    return final


# -- tests -----------------------------------------------------------------------------------


def test_approve_journey(ui_stack: UiStack, browser: Any) -> None:
    account = "rob@contoso.com"
    assert account in ui_stack.tenant.restricted()
    resets_before = ui_stack.tenant.user(account)["passwordResets"]

    final = journey(ui_stack, browser, "test_approve_journey", account, approve=True)

    assert final["state"]["type"] == "COMPLETED", final["state"]
    assert final["state"]["name"] == "Unblocked"
    report = report_of(ui_stack.api, final["id"])
    assert "lead lars" in report and account in report
    # The tenant saw the procedure: password reset, and the entry gone after the removal delay.
    assert ui_stack.tenant.user(account)["passwordResets"] == resets_before + 1
    wait_for(
        lambda: account not in ui_stack.tenant.restricted(),
        timeout=30,
        what=f"{account} off the Restricted users list",
    )


def test_reject_journey(ui_stack: UiStack, browser: Any) -> None:
    account = "megan.bowen@contoso.onmicrosoft.com"
    assert account in ui_stack.tenant.restricted()

    final = journey(ui_stack, browser, "test_reject_journey", account, approve=False)

    assert final["state"]["type"] == "CANCELLED", final["state"]
    assert final["state"]["name"] == "Rejected"
    report = report_of(ui_stack.api, final["id"])
    assert "lead lars" in report
    entry = ui_stack.tenant.restricted()[account]
    assert entry["pendingRemoval"] is False


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


def report_of(api: ApiClient, run_id: str) -> str:
    artifacts = [a for a in api.artifacts_of(run_id) if a.get("key") == REPORT_KEY]
    assert artifacts, f"no {REPORT_KEY} artifact on run {run_id}"
    # Markdown escapes punctuation (rob\\@contoso\\.com); compare against the plain text.
    return re.sub(r"\\(.)", r"\1", str(artifacts[-1]["data"]))
