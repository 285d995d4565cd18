"""Helpers for the evidence, notification and escalation tests."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orchestration.approvals.notify import NotificationContext

if TYPE_CHECKING:
    from .receiver import WebhookReceiver

TEAMS_PATH = "/teams/approvers"
SLACK_PATH = "/slack/leads"

# A Slack-shaped payload (incoming webhook: "text" in mrkdwn) and a Teams-shaped one (Workflows
# webhook: an Adaptive Card attachment), both filled by the block from subject and body.
SLACK_SHAPE = {"text": "*{{subject}}*\n{{body}}"}
TEAMS_SHAPE = {
    "type": "message",
    "attachments": [
        {
            "contentType": "application/vnd.microsoft.card.adaptive",
            "content": {
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": [
                    {"type": "TextBlock", "text": "{{subject}}", "weight": "Bolder", "wrap": True},
                    {"type": "TextBlock", "text": "{{body}}", "wrap": True},
                ],
            },
        }
    ],
}


def save_webhook_blocks(receiver: WebhookReceiver, approvers: str, leads: str) -> None:
    """Custom-webhook blocks on the receiver: ``approvers`` Teams-shaped on TEAMS_PATH, ``leads``
    Slack-shaped on SLACK_PATH (each saved under its own name)."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    for name, path, shape in (
        (approvers, TEAMS_PATH, TEAMS_SHAPE),
        (leads, SLACK_PATH, SLACK_SHAPE),
    ):
        CustomWebhookNotificationBlock(name=name, url=receiver.url(path), json_data=shape).save(
            name, overwrite=True
        )


def notification_context(**fields: Any) -> NotificationContext:
    """A notification about ann's request to unblock rob@contoso.com (INC-1, run clever-fox);
    ``fields`` replace or add what the test looks at."""
    base: dict[str, Any] = {
        "account": "rob@contoso.com",
        "tenant": "contoso",
        "ticket": "INC-1",
        "requested_by": "ann",
        "flow_run_name": "clever-fox",
    }
    return NotificationContext(**{**base, **fields})
