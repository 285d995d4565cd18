"""Fixtures for the evidence, notification and escalation tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prefect.blocks.notifications import CustomWebhookNotificationBlock

from emulator import Emulator
from orchestration import clients
from orchestration.blocks import M365Tenant

from ..handover_keys import PUBLIC_KEY
from .helpers import SLACK_SHAPE, TEAMS_SHAPE
from .receiver import WebhookReceiver

TENANT = "contoso"


@pytest.fixture
def tenant(prefect_api: str, emulator: Emulator) -> Iterator[str]:
    """The 'contoso' tenant profile block, pointing at the emulator."""
    M365Tenant.from_config(
        emulator.tenant_config(TENANT, app="playbook"), handover_public_key=PUBLIC_KEY
    ).save(TENANT, overwrite=True)
    clients.forget(TENANT)
    yield TENANT
    clients.forget(TENANT)


@pytest.fixture(scope="session")
def receiver_session() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver().start()
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture
def receiver(receiver_session: WebhookReceiver) -> WebhookReceiver:
    receiver_session.clear()
    receiver_session.status = 200
    return receiver_session


@pytest.fixture
def notify_blocks(prefect_api: str, receiver: WebhookReceiver) -> dict[str, str]:
    """Custom-webhook blocks on 127.0.0.1: approvers (Teams-shaped), escalation (Slack-shaped)."""
    CustomWebhookNotificationBlock(
        name="soc-approvers", url=receiver.url("/teams/approvers"), json_data=TEAMS_SHAPE
    ).save("soc-approvers", overwrite=True)
    CustomWebhookNotificationBlock(
        name="soc-leads", url=receiver.url("/slack/leads"), json_data=SLACK_SHAPE
    ).save("soc-leads", overwrite=True)
    return {
        "approvers": "custom-webhook/soc-approvers",
        "leads": "soc-leads",  # a bare block name works too
        "teams_path": "/teams/approvers",
        "slack_path": "/slack/leads",
    }
