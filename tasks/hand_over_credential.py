"""Step 2c: the credential hand-over, sealed to the hand-over team's key in a Secret block named
after the run (``playbook.sealing``). The worker cannot open it; only the team's private key can.

``prepare_handover`` runs *before* the reset: it checks the profile's hand-over key (no key, no
reset) and, in password mode, generates the password, stores it sealed, and keeps the clear value
in this process's memory only (``playbook.passwords.remember``), so every reset attempt of this
process applies the value that is handed over. A re-run in a new process cannot open the sealed
copy: it generates a new password and replaces the sealed copy before its own reset.
``hand_over_credential`` runs after the reset (TAP mode issues the pass and seals it there).
``delete_handover`` is called by the follow-up check and records who deleted it, and when.
"""

from __future__ import annotations

from prefect.blocks.system import Secret
from pydantic import SecretStr

from m365.models import TemporaryAccessPass
from orchestration import handover_audit
from orchestration.clients import clients_for, handover_key
from orchestration.logs import run_logger
from playbook import passwords, redaction
from playbook.params import HandoverMode
from playbook.reconcile import issue_tap
from playbook.results import HandoverResult
from playbook.sealing import CredentialKind, fingerprint, parse_public_key, seal
from playbook.steps import Step

from ._policy import single_try, step

TAP_LIFETIME_MINUTES = 60


def _exists(block_name: str) -> bool:
    try:
        Secret.load(block_name)  # type: ignore[no-untyped-call]
    except ValueError:  # Prefect: no block document with this name
        return False
    return True


def _store_sealed(block_name: str, value: SecretStr, public_key: str, kind: CredentialKind) -> str:
    """Seal ``value`` for this run and (over)write the run's block; returns the key fingerprint."""
    replaced = _exists(block_name)
    sealed = seal(value, public_key, context=handover_audit.run_id_of(block_name), kind=kind)
    Secret(value=sealed).save(block_name, overwrite=True)
    fp = fingerprint(parse_public_key(public_key))
    handover_audit.record_sealed(block_name, kind.value, fp, replaced=replaced)
    return fp


@single_try("prepare_handover")
def prepare_handover(tenant: str, block_name: str, mode: HandoverMode) -> str:
    """Check the hand-over key; in password mode generate the password and store it sealed.

    Returns a note for the report (no secret).
    """
    logger = run_logger()
    public_key = handover_key(tenant)  # NoHandoverKey (nothing changed yet) if unusable
    fp = fingerprint(parse_public_key(public_key))
    if mode != HandoverMode.SECRET_BLOCK:
        logger.info("Hand-over key %s checked; the TAP is sealed to it once issued", fp)
        return f"hand-over key {fp} checked"
    if passwords.recall(block_name) is not None and _exists(block_name):
        logger.info("Sealed password in %s kept (same process: a retry applies it)", block_name)
        return f"password sealed to hand-over key {fp} in Secret block {block_name}"
    replaced = _exists(block_name)
    password = passwords.generate_password()
    redaction.register_secret(password)
    passwords.remember(block_name, password)
    _store_sealed(block_name, password, public_key, CredentialKind.PASSWORD)
    if replaced:
        logger.info(
            "Re-run in a new process: the earlier sealed password cannot be opened here, so a new "
            "one replaced it in Secret block %s before the reset",
            block_name,
        )
    else:
        logger.info("New password sealed to hand-over key %s in Secret block %s", fp, block_name)
    return f"password sealed to hand-over key {fp} in Secret block {block_name}"


@step("hand_over_credential")
def hand_over_credential(
    tenant: str, user_id: str, mode: HandoverMode, block_name: str | None
) -> HandoverResult:
    """Make the credential available to the analyst: nothing more in 'secret-block' mode, a
    one-time Temporary Access Pass (sealed) in 'tap' mode, nothing at all in 'none' mode."""
    logger = run_logger()
    if mode != HandoverMode.TAP or block_name is None:
        logger.info("Credential hand-over: %s", block_name or "none (self-service reset)")
        if block_name is not None:
            passwords.forget(block_name)  # reset done: no clear copy left in memory
        return HandoverResult(mode=mode, handover_block=block_name)
    clients = clients_for(tenant)
    public_key = handover_key(tenant)

    def store(tap: TemporaryAccessPass) -> None:
        redaction.register_secret(tap.temporary_access_pass)
        _store_sealed(block_name, tap.temporary_access_pass, public_key, CredentialKind.TAP)

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
        "One-time Temporary Access Pass sealed in Secret block %s and confirmed in force "
        "(round %d)",
        block_name,
        issued.rounds,
    )
    return HandoverResult(
        mode=mode, handover_block=block_name, tap_lifetime_minutes=issued.tap.lifetime_in_minutes
    )


@single_try("delete_handover")
def delete_handover(block_name: str, reason: str = "") -> bool:
    """Delete the hand-over Secret block and record who deleted it; True if it existed."""
    passwords.forget(block_name)
    try:
        Secret.delete(block_name)
    except ValueError:  # already gone
        run_logger().info("Hand-over block %s was already deleted", block_name)
        return False
    handover_audit.record_deleted(
        block_name, by=handover_audit.current_actor(Step.DELETE_HANDOVER), reason=reason
    )
    run_logger().info("Hand-over block %s deleted", block_name)
    return True
