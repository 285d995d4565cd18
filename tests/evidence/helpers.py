"""Helpers for the evidence, notification and escalation tests."""

from __future__ import annotations

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
