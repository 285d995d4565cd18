"""The test session's hand-over key pair: profiles get the public key; tests open the sealed
credentials with the private key, as the hand-over team would (``playbook.sealing``)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from pydantic import SecretStr

from playbook.sealing import (
    CredentialKind,
    generate_key_file,
    load_private_key,
    open_sealed,
    seal,
)

KEY_FILE = Path(tempfile.mkdtemp(prefix="unblock-tests-handover-")) / "handover.key"
PUBLIC_KEY = generate_key_file(KEY_FILE)


def run_id_of(block_name: str) -> str:
    return block_name.removeprefix("unblock-handover-")


def stored_value(block_name: str) -> str | None:
    """What the run's hand-over block holds as stored (sealed), or None if there is no block."""
    from prefect.blocks.system import Secret

    try:
        block = Secret.load(block_name)
    except ValueError:
        return None
    return str(block.get())


def secret_value(block_name: str) -> str | None:
    """The credential in a run's hand-over block, opened with the team's key; None if no block.

    Raises ``playbook.sealing.SealError`` if the block holds anything but a value sealed to the
    session key for this run (a plaintext password would fail here)."""
    sealed = stored_value(block_name)
    if sealed is None:
        return None
    opened = open_sealed(sealed, load_private_key(KEY_FILE), context=run_id_of(block_name))
    return opened.value.get_secret_value()


def sealed_for(block_name: str, value: str) -> str:
    """``value`` sealed for the run of ``block_name`` (to store a hand-over block by hand)."""
    return seal(
        SecretStr(value), PUBLIC_KEY, context=run_id_of(block_name), kind=CredentialKind.PASSWORD
    )
