"""Notifications through Prefect notification blocks, received on 127.0.0.1."""

from __future__ import annotations

from prefect.blocks.notifications import MicrosoftTeamsWebhook, SlackWebhook

from orchestration.approvals.notify import NotificationContext, NotificationKind, deep_link
from playbook import redaction
from tasks.send_notification import send_notification

from .helpers import notification_context
from .receiver import WebhookReceiver

RUN_ID = "0b6f6a3e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
SECRET = "Pa55-word-that-must-never-leak"


def _ctx(**kw: object) -> NotificationContext:
    base: dict[str, object] = {
        "ticket": "INC-7",
        "link": deep_link(f"http://127.0.0.1:4200/runs/flow-run/{RUN_ID}"),
        "risk_summary": "Risk: HIGH. 1 suspicious inbox rule (1 hidden, 1 external).",
        "wait_minutes": 60,
    }
    return notification_context(**{**base, **kw})


def test_teams_and_slack_shaped_payloads_carry_the_deep_link(
    notify_blocks: dict[str, str], receiver: WebhookReceiver
) -> None:
    redaction.register_secret(SECRET)
    deliveries = send_notification(
        (notify_blocks["approvers"], notify_blocks["leads"]),
        NotificationKind.APPROVAL_NEEDED,
        _ctx(),
    )
    assert [d.delivered for d in deliveries] == [True, True]
    (teams,) = receiver.wait_for(notify_blocks["teams_path"])
    card = teams.json()["attachments"][0]["content"]
    assert card["type"] == "AdaptiveCard"
    title, body = (b["text"] for b in card["body"])
    assert title == "Approval needed: unblock rob@contoso.com (INC-7)"
    assert f"approve or reject: http://127.0.0.1:4200/runs/flow-run/{RUN_ID}" in body
    assert body.startswith("rob@contoso.com is on the Restricted users list.")
    (slack,) = receiver.wait_for(notify_blocks["slack_path"])
    text = slack.json()["text"]
    assert text.startswith("*Approval needed: unblock rob@contoso.com (INC-7)*\n")
    assert f"runs/flow-run/{RUN_ID}" in text
    for got in (teams, slack):
        assert SECRET not in got.text
        assert "emulator-secret" not in got.text
    # plain text: no Markdown escapes anywhere in what the chat services receive
    for shown in (title, body, text):
        assert "\\" not in shown and "**" not in shown


def test_hostile_values_arrive_inert(
    notify_blocks: dict[str, str], receiver: WebhookReceiver
) -> None:
    hostile = "<!channel> [click](http://evil.example) <http://evil|x> &lt;!here&gt; {{7*7}}"
    send_notification(
        (notify_blocks["leads"], notify_blocks["approvers"]),
        NotificationKind.OUTCOME,
        _ctx(outcome="Unblocked", risk_summary="", outcome_summary=hostile, flow_run_name=hostile),
    )
    (slack,) = receiver.wait_for(notify_blocks["slack_path"])
    (teams,) = receiver.wait_for(notify_blocks["teams_path"])
    title, body = (b["text"] for b in teams.json()["attachments"][0]["content"]["body"])
    for text in (slack.json()["text"], title, body):
        # no Slack link or mention (<...>, or the &lt; form apprise turns back into one), no
        # Markdown link (Teams cards render [label](url)); and no backslash noise either
        assert not set(text) & set("<>&[]"), text
        assert "\\" not in text
    for text in (slack.json()["text"], body):
        # the value is still readable, and was not evaluated as a template
        assert "\u2039!channel\u203a" in text and "{{7*7}}" in text and "49" not in text


def test_failed_delivery_is_reported_not_raised(
    notify_blocks: dict[str, str], receiver: WebhookReceiver
) -> None:
    receiver.status = 500
    (d,) = send_notification(
        (notify_blocks["approvers"],), NotificationKind.ESCALATION, _ctx(waited_minutes=15)
    )
    assert not d.delivered and d.error == "HTTPStatusError: HTTP 500"
    assert "127.0.0.1" not in (d.error or "")
    (missing,) = send_notification(
        ("slack-webhook/nobody",), NotificationKind.OUTCOME, _ctx(outcome="Rejected")
    )
    assert not missing.delivered and "no notification block" in (missing.error or "")


def test_apprise_blocks_only_talk_to_the_real_services(
    prefect_api: str, receiver: WebhookReceiver
) -> None:
    """Finding: SlackWebhook/MicrosoftTeamsWebhook cannot target a local receiver. The Slack
    block needs hooks.slack.com (apprise cannot even parse another host); the Teams block
    always uses https. Both fail cleanly, so production uses them by name and tests use
    custom-webhook blocks with the same payload shapes."""
    SlackWebhook(url=f"http://127.0.0.1:{receiver.port}/services/T0/B0/X0").save(
        "local-slack", overwrite=True
    )
    MicrosoftTeamsWebhook(
        url=f"http://127.0.0.1:{receiver.port}/workflows/abc/triggers/manual/paths/invoke"
        "?api-version=2016-06-01&sig=abc"
    ).save("local-teams", overwrite=True)
    deliveries = send_notification(
        ("slack-webhook/local-slack", "ms-teams-webhook/local-teams"),
        NotificationKind.OUTCOME,
        _ctx(outcome="Unblocked"),
    )
    assert [d.delivered for d in deliveries] == [False, False]
    assert all(d.error == "NotificationError" for d in deliveries)
    assert receiver.received == []
