"""Fixtures for the evidence, notification and escalation tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from emulator import Emulator

from ..handover_keys import PUBLIC_KEY
from ..helpers.profiles import saved_profile
from .helpers import SLACK_PATH, TEAMS_PATH, save_webhook_blocks
from .receiver import WebhookReceiver

TENANT = "contoso"


@pytest.fixture
def tenant(prefect_api: str, emulator: Emulator) -> Iterator[str]:
    """The 'contoso' tenant profile block, pointing at the emulator."""
    config = emulator.tenant_config(TENANT, app="playbook")
    with saved_profile(config, TENANT, handover_public_key=PUBLIC_KEY) as name:
        yield name


@pytest.fixture(scope="session")
def receiver_session() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as r:
        yield r


@pytest.fixture
def receiver(receiver_session: WebhookReceiver) -> WebhookReceiver:
    return receiver_session.reset()


@pytest.fixture
def notify_blocks(prefect_api: str, receiver: WebhookReceiver) -> dict[str, str]:
    """Custom-webhook blocks on 127.0.0.1: approvers (Teams-shaped), escalation (Slack-shaped)."""
    save_webhook_blocks(receiver, "soc-approvers", "soc-leads")
    return {
        "approvers": "custom-webhook/soc-approvers",
        "leads": "soc-leads",  # a bare block name works too
        "teams_path": TEAMS_PATH,
        "slack_path": SLACK_PATH,
    }
