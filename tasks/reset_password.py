"""Step 2a: reset the password, immediately, forcing a change at next sign-in."""

from __future__ import annotations

from datetime import datetime

from prefect import runtime, task
from prefect.blocks.system import Secret
from prefect.cache_policies import NO_CACHE
from pydantic import SecretStr

from playbook import redaction
from playbook.clients import clients_for
from playbook.passwords import generate_password
from playbook.results import ResetResult

from ._logging import run_logger
from ._policy import RETRIES, RETRY_DELAYS, RETRY_JITTER, retry_if_transient


def _password_from_block(block_name: str) -> SecretStr:
    secret = Secret.load(block_name)  # type: ignore[no-untyped-call]
    assert isinstance(secret, Secret)
    value = SecretStr(str(secret.get()))
    redaction.register_secret(value)
    return value


@task(
    name="reset_password",
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS,
    retry_jitter_factor=RETRY_JITTER,
    retry_condition_fn=retry_if_transient,
    persist_result=False,
    cache_policy=NO_CACHE,
)
def reset_password(
    tenant: str,
    user_id: str,
    handover_block: str | None,
    previous_change: datetime | None,
) -> ResetResult:
    """Set a new password (read from the hand-over block, or random and discarded).

    Every attempt sets the same value when a hand-over block is used. After an ambiguous failure
    a retry first checks whether the previous attempt already took effect.
    """
    logger = run_logger()
    clients = clients_for(tenant)
    if runtime.task_run.run_count > 1:
        current = clients.graph.get_user(user_id).last_password_change
        if current is not None and (previous_change is None or current > previous_change):
            logger.info("The password was already reset by the previous attempt (%s)", current)
            return ResetResult(user_id=user_id, already_applied=True, handover_block=handover_block)
    if handover_block:
        password = _password_from_block(handover_block)
    else:
        password = generate_password()
        redaction.register_secret(password)
    logger.info("Resetting the password of %s (force change at next sign-in)", user_id)
    receipt = clients.graph.reset_password(user_id, password, force_change=True)
    return ResetResult(
        user_id=user_id, request_id=receipt.request_id, handover_block=handover_block
    )
