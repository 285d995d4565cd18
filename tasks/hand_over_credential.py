"""Step 2c: the credential hand-over, through a Prefect Secret block named after the run.

``prepare_handover`` runs *before* the reset: it generates the password and stores it, so every
reset attempt (and a re-run after a crash) applies the value that is handed over.
``hand_over_credential`` runs after the reset (TAP mode issues the pass there).
``delete_handover`` is called by the follow-up check.
"""

from __future__ import annotations

from prefect import task
from prefect.blocks.system import Secret
from prefect.cache_policies import NO_CACHE

from m365.models import TemporaryAccessPass
from playbook import redaction
from playbook.clients import clients_for
from playbook.params import HandoverMode
from playbook.passwords import generate_password
from playbook.reconcile import issue_tap
from playbook.results import HandoverResult

from ._logging import run_logger
from ._policy import RETRIES, RETRY_DELAYS, RETRY_JITTER, retry_if_transient

TAP_LIFETIME_MINUTES = 60


def _exists(block_name: str) -> bool:
    try:
        existing = Secret.load(block_name)  # type: ignore[no-untyped-call]
    except ValueError:  # Prefect: no block document with this name
        return False
    assert isinstance(existing, Secret)
    redaction.register_secret(str(existing.get()))
    return True


@task(name="prepare_handover", persist_result=False, cache_policy=NO_CACHE)
def prepare_handover(block_name: str) -> str:
    """Generate the new password and store it in the run's Secret block (kept on a re-run)."""
    logger = run_logger()
    if _exists(block_name):
        logger.info("Hand-over block %s already exists (re-run); keeping its password", block_name)
        return block_name
    password = generate_password()
    redaction.register_secret(password)
    Secret(value=password).save(block_name, overwrite=False)
    logger.info("New password generated and stored in Secret block %s", block_name)
    return block_name


@task(
    name="hand_over_credential",
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS,
    retry_jitter_factor=RETRY_JITTER,
    retry_condition_fn=retry_if_transient,
    persist_result=False,
    cache_policy=NO_CACHE,
)
def hand_over_credential(
    tenant: str, user_id: str, mode: HandoverMode, block_name: str | None
) -> HandoverResult:
    """Make the credential available to the analyst: nothing more in 'secret-block' mode, a
    one-time Temporary Access Pass in 'tap' mode, nothing at all in 'none' mode."""
    logger = run_logger()
    if mode != "tap" or block_name is None:
        logger.info("Credential hand-over: %s", block_name or "none (self-service reset)")
        return HandoverResult(mode=mode, handover_block=block_name)
    clients = clients_for(tenant)

    def store(tap: TemporaryAccessPass) -> None:
        redaction.register_secret(tap.temporary_access_pass)
        Secret(value=tap.temporary_access_pass).save(block_name, overwrite=True)

    # A lost answer is waited out for one read timeout before a new pass is issued.
    issued = issue_tap(
        clients.graph,
        user_id,
        lifetime_minutes=TAP_LIFETIME_MINUTES,
        usable_once=True,
        store=store,
        settle_seconds=clients.transport.timeout[1],
        log=logger,
    )
    logger.info(
        "One-time Temporary Access Pass stored in Secret block %s and confirmed in force "
        "(round %d)",
        block_name,
        issued.rounds,
    )
    return HandoverResult(
        mode=mode, handover_block=block_name, tap_lifetime_minutes=issued.tap.lifetime_in_minutes
    )


@task(name="delete_handover", persist_result=False, cache_policy=NO_CACHE)
def delete_handover(block_name: str) -> bool:
    """Delete the hand-over Secret block; True if it existed."""
    try:
        Secret.delete(block_name)
    except ValueError:  # already gone
        run_logger().info("Hand-over block %s was already deleted", block_name)
        return False
    run_logger().info("Hand-over block %s deleted", block_name)
    return True
