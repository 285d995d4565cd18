"""What the step tasks return. None of these ever holds a secret."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from m365.models import RestrictedSender


class _Result(BaseModel):
    model_config = ConfigDict(frozen=True)


class ResetResult(_Result):
    """The password reset: where the new password is (if anywhere), and Microsoft's request id."""

    user_id: str
    request_id: str | None = None
    already_applied: bool = False  # a retry found the first attempt had taken effect
    handover_block: str | None = None


class HandoverResult(_Result):
    mode: str
    handover_block: str | None = None
    tap_lifetime_minutes: int | None = None
    request_id: str | None = None


class UnblockResult(_Result):
    address: str
    request_id: str | None = None
    already_removed: bool = False


class ConfirmResult(_Result):
    address: str
    still_listed: bool
    entry: RestrictedSender | None = None


class ScheduledCheck(_Result):
    flow_run_id: str
    flow_run_name: str
    scheduled_for: datetime
