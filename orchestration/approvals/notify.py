"""Notifications to the approvers through Prefect's own notification blocks.

A notification target is a Prefect block chosen by name: ``"<block-type-slug>/<block-name>"``
(``slack-webhook/soc-approvers``, ``ms-teams-webhook/soc``, ``custom-webhook/soc-teams``) or a
bare block name, looked up among those three types. The code path is the same for every block:
``block.notify(body, subject)``.

- ``SlackWebhook`` and ``MicrosoftTeamsWebhook`` go through apprise, which shapes the payload
  itself and only talks to the real services: the Slack block's URL must be
  ``https://hooks.slack.com/services/...`` (apprise pins the host), the Teams block's must be a
  Power Automate Workflows URL and is always called over https.
- ``CustomWebhookNotificationBlock`` posts to any URL; its ``json_data`` template decides the
  payload shape, so a Slack-shaped (``{"text": "*{{subject}}*\\n{{body}}"}``) or a Teams-shaped
  (Adaptive Card) payload reaches a real webhook or, in tests, a receiver on 127.0.0.1.

Texts are plain text from ``templates/notify_*.txt.j2`` through the project's plain-text
environment (``playbook.rendering.TEXT_ENV``): values print as they are, without Markdown
backslashes, and the characters a chat service reads as markup (Slack ``<…>`` links and
mentions, ``&`` entities, Markdown ``[label](url)`` links) become look-alikes. Only one value is
ever printed raw: the deep link to the run, and only after ``deep_link`` checked it is a plain
http(s) URL to the Prefect UI. Nothing secret is in the template context.

``artifact_link`` builds the V2 UI link to an artifact (the full evidence) the same way.
"""

from __future__ import annotations

import re
from enum import StrEnum

import httpx
from prefect.blocks.abstract import NotificationBlock, NotificationError
from prefect.blocks.core import Block
from pydantic import BaseModel, ConfigDict

from playbook import redaction
from playbook.params import PROFILE_SLUG
from playbook.rendering import TrustedLink, render_text

BLOCK_TYPES = ("slack-webhook", "ms-teams-webhook", "custom-webhook")
_BLOCK_REF = re.compile(rf"^(?:(?P<slug>[a-z0-9-]{{1,64}})/)?(?P<name>{PROFILE_SLUG})$")
# The Prefect UI's run page: scheme, host[:port], optional path prefix, /runs/flow-run/<uuid>
# or the older /flow-runs/flow-run/<uuid>. Nothing else is ever printed raw.
_RUN_LINK = re.compile(
    r"^https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~-]+)*"
    r"/(?:runs|flow-runs)/flow-run/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
)
# The run link's suffix, to find the UI's base URL in it.
_RUN_SUFFIX = re.compile(
    r"/(?:runs|flow-runs)/flow-run/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
)
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# Prefect 3.9 serves its V2 UI under "<UI base>/v2" (server/api/server.py, UI_VERSION_PATH_SEGMENT);
# its artifact page is /artifacts/artifact/<id> (the UI's router, ui-v2 build).
V2_SEGMENT = "/v2"
MAX_SUBJECT = 150


class NotificationKind(StrEnum):
    APPROVAL_NEEDED = "approval-needed"
    ESCALATION = "escalation"
    OUTCOME = "outcome"


def deep_link(url: str | None) -> TrustedLink | None:
    """The run's UI URL if it is a well-formed link to a flow-run page, else None."""
    if not url or not _RUN_LINK.fullmatch(url):
        return None
    return TrustedLink(url)


def artifact_link(run_url: str | None, artifact_id: object) -> TrustedLink | None:
    """The V2 UI page of one artifact, built from the run's UI URL
    (``prefect.runtime.flow_run.ui_url``, ``<PREFECT_UI_URL>/flow-runs/flow-run/<run id>``);
    None when either is not well-formed."""
    run = deep_link(run_url)
    artifact = str(artifact_id)
    if run is None or not _UUID.fullmatch(artifact):
        return None
    base = _RUN_SUFFIX.sub("", run)
    if not base.endswith(V2_SEGMENT):
        base += V2_SEGMENT
    return TrustedLink(f"{base}/artifacts/artifact/{artifact}")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)


class NotificationContext(_Frozen):
    """What a notification may say. No field can hold a credential."""

    account: str
    tenant: str
    ticket: str
    requested_by: str
    flow_run_name: str
    link: TrustedLink | None = None
    stage: str = "unblock"  # "unblock" | "privileged-reset"
    risk_summary: str = ""
    wait_minutes: float | None = None  # approval needed / escalation: how long it may still wait
    waited_minutes: float | None = None  # escalation: how long it has waited
    outcome: str | None = None
    outcome_summary: str = ""
    approver: str | None = None


class Notification(_Frozen):
    kind: NotificationKind
    subject: str
    body: str


class Delivery(_Frozen):
    """What happened to one notification; failures never stop the playbook."""

    block: str
    kind: NotificationKind
    delivered: bool
    error: str | None = None


def render_notification(kind: NotificationKind, ctx: NotificationContext) -> Notification:
    """Plain-text subject (the first line) and body from ``templates/notify_<kind>.txt.j2``."""
    text = render_text(f"notify_{kind.value.replace('-', '_')}.txt.j2", c=ctx)
    subject, _, body = text.partition("\n")
    return Notification(
        kind=kind,
        subject=redaction.redact(subject.strip())[:MAX_SUBJECT],
        body=redaction.redact(body.strip() + "\n"),
    )


def parse_block_ref(ref: str) -> tuple[str | None, str]:
    """``(type slug or None, block name)``; ValueError for anything else."""
    m = _BLOCK_REF.fullmatch(ref)
    if not m or (m.group("slug") and m.group("slug") not in BLOCK_TYPES):
        raise ValueError(
            "a notification target is '<type>/<block name>' with type one of "
            + ", ".join(BLOCK_TYPES)
            + ", or a bare block name"
        )
    return m.group("slug"), m.group("name")


def load_notification_block(ref: str) -> NotificationBlock:
    """Load the notification block named ``ref``."""
    slug, name = parse_block_ref(ref)
    for candidate in (slug,) if slug else BLOCK_TYPES:
        try:
            block: object = Block.load(f"{candidate}/{name}", _sync=True)  # type: ignore[call-arg]
        except ValueError:  # Prefect raises ValueError for an unknown block document
            continue
        if not isinstance(block, NotificationBlock):
            raise ValueError(f"block {ref!r} is not a notification block")
        return block
    raise ValueError(f"no notification block named {ref!r}")


def send(ref: str, notification: Notification) -> Delivery:
    """Send through one block. Errors become an undelivered ``Delivery``, never an exception:
    a missed notification must not fail the unblock (the report records it)."""
    try:
        block = load_notification_block(ref)
        with block.raise_on_failure():
            # _sync: the same blocking call whether or not an event loop is running.
            sent: object = block.notify(  # type: ignore[call-arg]
                body=notification.body, subject=notification.subject, _sync=True
            )
            del sent
    except (NotificationError, httpx.HTTPError, OSError, ValueError) as exc:
        # The message may carry a webhook URL (a credential); keep the type and status only.
        return Delivery(block=ref, kind=notification.kind, delivered=False, error=_describe(exc))
    return Delivery(block=ref, kind=notification.kind, delivered=True)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        return f"{type(exc).__name__}: HTTP {exc.response.status_code}"
    if isinstance(exc, ValueError) and not isinstance(exc, httpx.HTTPError):
        return f"{type(exc).__name__}: {redaction.redact(str(exc))[:200]}"
    return type(exc).__name__
