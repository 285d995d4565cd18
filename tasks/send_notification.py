"""Tell the approvers: approval needed (with a deep link), escalation, outcome."""

from __future__ import annotations

from orchestration.approvals.notify import (
    Delivery,
    NotificationContext,
    NotificationKind,
    render_notification,
    send,
)
from orchestration.logs import run_logger

from ._policy import single_try


@single_try("send_notification")
def send_notification(
    targets: tuple[str, ...], kind: NotificationKind, context: NotificationContext
) -> list[Delivery]:
    """Render once, send through each notification block. A failed delivery is logged and
    returned, never raised: a notification must not stop the procedure. No retries here: a
    webhook that answered may have posted, and a duplicate message is worse than a logged miss."""
    log = run_logger()
    notification = render_notification(kind, context)
    deliveries = [send(target, notification) for target in targets]
    for d in deliveries:
        if d.delivered:
            log.info("Notification %s sent through %s", kind.value, d.block)
        else:
            log.warning("Notification %s through %s failed: %s", kind.value, d.block, d.error)
    return deliveries
