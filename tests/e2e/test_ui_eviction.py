"""The approver evicts the attacker, in a real browser on Prefect's V2 UI.

Same stack as test_ui_journey (its own server, emulator and ``flows.serve``). The analyst starts
unblock-user for rob@contoso.com (the demo tenant's compromised account: an attacker's
Authenticator next to his own phone, the "Mail Sync Pro" consent with Mail.Send, a guest with
Full Access and Send As) with "Block Sign In" ticked. The approver sees the eviction checkboxes
unticked with their descriptions, is refused when submitting them without a decision, reads the
eviction sections of the full evidence, approves with every box ticked, and reads the report.
Screenshots: artifacts/screenshots-eviction/NN-step.png.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from tests.e2e.browser import Recorder, recorded_page
from tests.e2e.harness import ARTIFACTS, TERMINAL, wait_for
from tests.e2e.helpers import UiStack, record_timing
from tests.e2e.test_ui_journey import (
    TICKET,
    centre,
    decide,
    error_logs,
    log_in,
    open_custom_run_form,
    open_resume,
    open_run,
    report_of,
    submit_run_form,
    toast_text,
    v2,
    wait_for_badge,
)

pytestmark = pytest.mark.e2e

SHOTS = ARTIFACTS / "screenshots-eviction"
ROB = "rob@contoso.com"
GUEST = "rob.young.invoices_gmail.com#EXT#@contoso.onmicrosoft.com"
MEGAN = "megan.bowen@contoso.onmicrosoft.com"  # an internal delegate: not flagged, stays
# Checkbox titles as the form shows them (playbook.eviction.ACTION_TITLES), and a fact each
# description must give the approver: on what it acts, and whether it can be undone.
BOXES = {
    "Remove the flagged sign-in methods": ("Authenticator", "Cannot be undone"),
    "Revoke the flagged app consents": ("Mail Sync Pro", "consent to the app again"),
    "Remove the flagged mailbox delegates": ("rob.young.invoices", "grant the permission again"),
    "Re-enable sign-in": ("accountEnabled", "blocked again"),
}
EVIDENCE_SECTIONS = (
    "Eviction evidence",
    "Sign-in methods",
    "Sign-ins in the window",
    "App consents (OAuth grants)",
    "Mailbox delegates",
    "What the account sent",
    "Eviction actions offered with the approval",
)
# The emulator's endpoints whose success would mean an eviction (or sign-in change) happened.
EVICTION_WRITES = {
    "graph.delete_auth_method",
    "graph.delete_oauth2_grant",
    "graph.set_account_enabled",
    "exo.Remove-MailboxPermission",
    "exo.Remove-RecipientPermission",
    "exo.Set-Mailbox",
}

# Every element whose content is wider than its box (scrolls or spills) or that reaches past
# the right edge of the window: what a person sees as text cut off or a sideways scrollbar.
OVERFLOWING = """() => {
  const out = [];
  for (const e of document.querySelectorAll('body *')) {
    const r = e.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) continue;
    const style = getComputedStyle(e);
    const spills = e.scrollWidth > e.clientWidth + 1 && style.overflowX !== 'hidden';
    if (spills || r.right > window.innerWidth + 1) {
      out.push(`${e.tagName.toLowerCase()}.${e.className} ${e.scrollWidth}>${e.clientWidth} `
        + `right=${Math.round(r.right)} ${(e.innerText || '').slice(0, 60)}`);
    }
  }
  return out;
}"""

# What makes the artifact's text column (.prose) wider than it is: its widest descendants.
WIDER_THAN_COLUMN = """() => {
  const column = document.querySelector('.prose');
  if (!column) return [];
  const edge = column.getBoundingClientRect().right;
  return [...column.querySelectorAll('*')]
    .filter(e => e.getBoundingClientRect().right > edge + 1)
    .slice(0, 8)
    .map(e => `${e.tagName.toLowerCase()} right=${Math.round(e.getBoundingClientRect().right)}`
      + ` column=${Math.round(edge)} ${(e.innerText || '').slice(0, 50)}`);
}"""


def eviction_writes(stack: UiStack) -> list[str]:
    """The endpoints of successful requests that changed a method, grant, delegate or sign-in."""
    return [
        str(r["endpoint"])
        for r in stack.tenant.admin("GET", "requests")
        if r["endpoint"] in EVICTION_WRITES and r.get("write") and 200 <= int(r["status"]) < 300
    ]


def switch(scope: Any, title: str) -> Any:
    """The on/off control of the form field titled ``title`` in ``scope`` (a page or a dialog).

    V2 forms render a boolean as a switch under its title, "<title> (Optional)" when the field
    has a default, with no label element tying the two together."""
    page = getattr(scope, "page", scope)  # a Locator knows its page; a Page is its own
    control = "[role=switch], [role=checkbox], input[type=checkbox]"
    label = page.get_by_text(re.compile(rf"^{re.escape(title)}( \(Optional\))?$"))
    # Every match contains the title, so they nest: the last in document order is the field.
    field = scope.locator("div").filter(has=label).filter(has=page.locator(control)).last
    return field.locator(control).first


def start_blocking_run(rec: Recorder, stack: UiStack) -> str:
    """The analyst's Custom run form: rob, hand-over none, and "Block Sign In" ticked."""
    open_custom_run_form(
        rec,
        {"Account": ROB, "Tenant": "contoso", "Ticket": TICKET, "Requested By": "analyst ann"},
    )
    page = rec.page
    page.get_by_role("button", name="Select Handover").click()
    page.get_by_role("option", name="none", exact=True).click()
    block = switch(page, "Block Sign In")
    centre(block)
    block.click()
    assert block.is_checked()
    rec.shot("run-form-block-sign-in-ticked")
    run_id = submit_run_form(rec)
    created = wait_for(lambda: stack.api.get(f"flow_runs/{run_id}"), timeout=30, what="new run")
    request = created["parameters"]["request"]
    assert (request["account"], request["block_sign_in"], request["handover"]) == (
        ROB,
        True,
        "none",
    ), request
    return run_id


def tick_all(rec: Recorder, dialog: Any) -> None:
    for title in BOXES:
        box = switch(dialog, title)
        centre(box)
        box.click()
        assert box.is_checked(), title


def test_the_approver_evicts_the_attacker_from_the_resume_form(
    ui_stack: UiStack, browser: Any
) -> None:
    stack = ui_stack
    rob = stack.tenant.user(ROB)
    assert {m["type"] for m in rob["authMethods"]} == {"microsoftAuthenticator", "phone"}
    t0 = time.monotonic()
    with recorded_page(browser, SHOTS) as rec:
        page = rec.page
        log_in(rec, stack)
        run_id = start_blocking_run(rec, stack)
        stack.api.wait_state(run_id, {"PAUSED"}, timeout=120, what="the approval pause")
        assert stack.tenant.user(ROB)["accountEnabled"] is False  # contained before the approval
        open_run(rec, stack, run_id)
        wait_for_badge(rec, "Paused")

        # The eviction checkboxes: each with its description, none ticked.
        dialog = open_resume(rec)
        dialog.get_by_role("heading", name=f"Unblock {ROB}?").wait_for()
        for title in BOXES:
            switch(dialog, title).wait_for()
        text = dialog.inner_text()
        for title, (target, undo) in BOXES.items():
            assert not switch(dialog, title).is_checked(), title
            assert target in text and undo in text, (title, target, undo)
        centre(switch(dialog, "Remove the flagged sign-in methods"))
        rec.shot("resume-eviction-boxes-unticked")
        centre(switch(dialog, "Re-enable sign-in"))
        rec.shot("resume-eviction-boxes-unticked-end")
        print("resume form text:\n" + text)

        # Half-filled: every box ticked, no decision. Refused; nothing evicted.
        tick_all(rec, dialog)
        dialog.get_by_role("button", name="Resume", exact=True).click()
        refusal = toast_text(rec, re.compile("decision", re.I))
        rec.shot("boxes-ticked-no-decision-refused")
        print("refusal toast:", refusal)
        time.sleep(3)  # a resume that got through would be seen by the run within ~1 s
        assert stack.api.flow_run(run_id)["state"]["type"] == "PAUSED"
        assert eviction_writes(stack) == ["graph.set_account_enabled"]  # the containment only
        assert stack.tenant.user(ROB)["accountEnabled"] is False

        # The full evidence: the eviction sections, nothing wider than the window.
        evidence = dialog.get_by_role("link", name=re.compile("Open the full evidence"))
        href = str(evidence.get_attribute("href"))
        assert href.startswith(v2(stack, "")), href
        page.goto(href)
        page.get_by_role("heading", name=f"Evidence: {ROB}").wait_for()
        for section in EVIDENCE_SECTIONS:
            page.get_by_role("heading", name=section, exact=True).wait_for()
        body = page.locator("body").inner_text()
        assert "203.0.113.45" in body and "Mail Sync Pro" in body and GUEST in body
        assert "\\" not in body  # Markdown escapes never show as backslashes
        overflowing = page.evaluate(OVERFLOWING)
        print("evidence page overflow:", overflowing)
        scroll_width = page.evaluate("document.documentElement.scrollWidth")
        for section in EVIDENCE_SECTIONS:
            centre(page.get_by_role("heading", name=section, exact=True))
            rec.shot("evidence-" + re.sub(r"\W+", "-", section.lower()).strip("-"))
        centre(page.get_by_text("Messages per hour (UTC):", exact=True))
        rec.shot("evidence-messages-per-hour")
        assert scroll_width <= page.viewport_size["width"], scroll_width
        assert overflowing == [], overflowing

        # The approval with every eviction box ticked.
        open_run(rec, stack, run_id)
        wait_for_badge(rec, "Paused")
        dialog = open_resume(rec)
        tick_all(rec, dialog)
        decide(rec, dialog, approve=True, approver="lead lars", comment="attacker evicted")
        final = stack.api.wait_state(run_id, TERMINAL, timeout=120, what="approved run final")
        wait_for_badge(rec, final["state"]["name"], timeout_s=30)
        rec.shot("run-unblocked")

        # The report artifact: its "Eviction actions" section.
        page.get_by_role("tab", name="Artifacts").click()
        card = page.get_by_text("unblock-user-report", exact=True).first
        card.wait_for()
        card.click()
        heading = page.get_by_role("heading", name="Eviction actions", exact=True)
        heading.wait_for()
        centre(heading)
        rec.shot("report-eviction-actions")
        centre(page.get_by_text("Remove the flagged mailbox delegates", exact=True).last)
        rec.shot("report-eviction-actions-end")
        print("report page overflow:", page.evaluate(OVERFLOWING))
        print("report wider than its column:", page.evaluate(WIDER_THAN_COLUMN))
        report_scroll_width = page.evaluate("document.documentElement.scrollWidth")
        shown = page.locator("body").inner_text()
        assert "\\" not in shown
        for title in ("Block sign-in", *BOXES):
            assert re.search(rf"{re.escape(title)}: \d+ done \(request ids ", shown), title
    record_timing("ui eviction journey", time.monotonic() - t0)

    assert final["state"]["name"] == "Unblocked", final["state"]
    assert report_scroll_width <= 1366, report_scroll_width  # no sideways scrolling
    rob = stack.tenant.user(ROB)
    assert [m["type"] for m in rob["authMethods"]] == ["phone"]  # the attacker's gone, his kept
    grants = stack.tenant.tenant_state()["oauthGrants"]
    assert [g["app"] for g in grants if g["principalId"] == rob["id"]] == ["Adobe Acrobat"]
    assert GUEST not in {p["user"] for p in rob["mailboxPermissions"]}
    assert GUEST not in rob["sendAs"]
    assert rob["sendOnBehalf"] == [MEGAN]
    assert rob["accountEnabled"] is True
    report = report_of(stack.api, run_id)
    assert "Eviction actions" in report
    assert error_logs(stack.api, run_id)[1] == []
