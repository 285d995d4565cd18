"""Sealed hand-over: the new password (or TAP) is stored only encrypted to the hand-over team's key.

The tenant profile holds the team's X25519 *public* key; the private key stays with the team
(a file, never in Prefect). Each credential is sealed sealed-box style:

1. a fresh (ephemeral) X25519 key pair per credential; ECDH with the team's public key;
2. HKDF-SHA256 over the shared secret (salt = ephemeral public key || team public key) gives a
   one-time ChaCha20-Poly1305 key and nonce;
3. the associated data binds the ciphertext to the run, the credential kind and the team key, so
   a sealed value copied into another run's block does not open there.

Envelope (ASCII, one line)::

    unblock-sealed-v1.<kind>.<key fingerprint>.<base64url(ephemeral public key || ciphertext+tag)>

``kind`` is ``password`` or ``tap``; the fingerprint is the first 16 hex digits of SHA-256 of the
team's raw public key, so a wrong key is named as such. Neither the Prefect database nor the
Prefect API can open it; only the holder of the private key can. No Prefect import here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import stat
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import SecretStr

PUBLIC_KEY_PREFIX = "x25519:"
PUBLIC_KEY_PATTERN = r"^x25519:[A-Za-z0-9_-]{43}$"
ENVELOPE_PREFIX = "unblock-sealed-v1"
_INFO = b"unblock-email hand-over v1"
_ENVELOPE = re.compile(
    r"^unblock-sealed-v1\.(?P<kind>password|tap)\.(?P<fp>[0-9a-f]{16})\.(?P<body>[A-Za-z0-9_-]+)$"
)
_MAX_PLAINTEXT = 1024


class CredentialKind(StrEnum):
    PASSWORD = "password"  # noqa: S105 (the kind's name)
    TAP = "tap"


class SealError(ValueError):
    """A key or a sealed value that cannot be used; the message never holds key material."""


@dataclass(frozen=True)
class Opened:
    kind: CredentialKind
    value: SecretStr


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _raw(public: X25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_text(public: X25519PublicKey) -> str:
    """The form the tenant profile holds: ``x25519:<base64url of the 32 raw bytes>``."""
    return PUBLIC_KEY_PREFIX + _b64(_raw(public))


def parse_public_key(text: str) -> X25519PublicKey:
    if not re.fullmatch(PUBLIC_KEY_PATTERN, text.strip()):
        raise SealError(
            "a hand-over public key looks like x25519:<43 base64url characters> "
            "(python -m orchestration.handover keygen prints one)"
        )
    return X25519PublicKey.from_public_bytes(_unb64(text.strip()[len(PUBLIC_KEY_PREFIX) :]))


def fingerprint(public: X25519PublicKey) -> str:
    """16 hex digits naming a key in messages and events (not secret)."""
    return hashlib.sha256(_raw(public)).hexdigest()[:16]


def _aad(context: str, kind: CredentialKind, fp: str) -> bytes:
    return b"|".join((_INFO, context.encode("utf-8"), kind.value.encode(), fp.encode()))


def _cipher(shared: bytes, ephemeral: bytes, recipient: bytes) -> tuple[ChaCha20Poly1305, bytes]:
    okm = HKDF(
        algorithm=hashes.SHA256(), length=32 + 12, salt=ephemeral + recipient, info=_INFO
    ).derive(shared)
    return ChaCha20Poly1305(okm[:32]), okm[32:]


def seal(value: SecretStr, public_key: str, *, context: str, kind: CredentialKind) -> str:
    """Encrypt ``value`` to ``public_key`` for ``context`` (the flow run id)."""
    plaintext = value.get_secret_value().encode("utf-8")
    if not plaintext or len(plaintext) > _MAX_PLAINTEXT:
        raise SealError("refusing to seal an empty or oversized value")
    recipient = parse_public_key(public_key)
    ephemeral = X25519PrivateKey.generate()
    eph_raw = _raw(ephemeral.public_key())
    cipher, nonce = _cipher(ephemeral.exchange(recipient), eph_raw, _raw(recipient))
    fp = fingerprint(recipient)
    body = cipher.encrypt(nonce, plaintext, _aad(context, kind, fp))
    return f"{ENVELOPE_PREFIX}.{kind.value}.{fp}.{_b64(eph_raw + body)}"


def sealed_to(sealed: str) -> str | None:
    """The key fingerprint a sealed value names, or None if it is not one."""
    match = _ENVELOPE.fullmatch(sealed.strip())
    return match.group("fp") if match else None


def open_sealed(sealed: str, private: X25519PrivateKey, *, context: str) -> Opened:
    """Decrypt a sealed value for ``context``; ``SealError`` says why not."""
    match = _ENVELOPE.fullmatch(sealed.strip())
    if match is None:
        raise SealError("this is not a sealed hand-over value")
    public = private.public_key()
    mine = fingerprint(public)
    if match.group("fp") != mine:
        raise SealError(
            f"sealed to the hand-over key {match.group('fp')}, not to yours ({mine}): the "
            "tenant profile's handover_public_key is not the public half of your key"
        )
    try:
        blob = _unb64(match.group("body"))
    except (binascii.Error, ValueError):
        raise SealError("the sealed value is damaged") from None
    if len(blob) < 32 + 16:
        raise SealError("the sealed value is damaged")
    kind = CredentialKind(match.group("kind"))
    eph_raw, body = blob[:32], blob[32:]
    cipher, nonce = _cipher(
        private.exchange(X25519PublicKey.from_public_bytes(eph_raw)), eph_raw, _raw(public)
    )
    try:
        plaintext = cipher.decrypt(nonce, body, _aad(context, kind, mine))
    except InvalidTag:
        raise SealError(
            "the sealed value does not open for this run: it belongs to another run or was altered"
        ) from None
    return Opened(kind=kind, value=SecretStr(plaintext.decode("utf-8")))


# --- the private key file -----------------------------------------------------------------------


def generate_key_file(path: Path) -> str:
    """Write a new private key to ``path`` (mode 0600, never over an existing file) and return
    the public key text for the tenant profile."""
    private = X25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise SealError(f"{path} exists; refusing to overwrite a hand-over key") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return public_key_text(private.public_key())


def load_private_key(path: Path) -> X25519PrivateKey:
    """The hand-over private key from ``path``; refuses a file others can read."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise SealError(f"{path} is not a regular file")
        if info.st_mode & 0o077:
            raise SealError(
                f"{path} can be read by other users (mode {stat.S_IMODE(info.st_mode):04o}); "
                f"run: chmod 600 {path}"
            )
        data = path.read_bytes()[: 64 * 1024]
    except OSError as exc:
        raise SealError(f"cannot read the hand-over key {path} ({type(exc).__name__})") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise SealError(f"{path} is not an unencrypted PEM private key") from None
    if not isinstance(key, X25519PrivateKey):
        raise SealError(f"{path} is not an X25519 key")
    return key
