"""Password generation for the reset step (``secrets`` only, never ``random``), and the one
place a generated password is kept in clear: this process's memory, until the reset is done.

The run stores the password only sealed to the hand-over team's key (``playbook.sealing``); the
worker cannot open it. A retried reset (a task retry, same process) must apply the value that was
sealed, so the clear value stays here, keyed by the run's hand-over block, and nowhere else.
"""

from __future__ import annotations

import secrets
import string
import threading

from pydantic import SecretStr

# Entra's documented symbol set (concept-sspr-policy), minus space, quotes, backslash and
# backtick: those survive copy/paste and shells badly and add nothing to the strength.
SYMBOLS = "@#$%^&*-_!+=[]{}|:,.?/~()<>;"
LOWER = string.ascii_lowercase
UPPER = string.ascii_uppercase
DIGITS = string.digits
CLASSES = (LOWER, UPPER, DIGITS, SYMBOLS)
ALPHABET = "".join(CLASSES)
MIN_LENGTH = 20
DEFAULT_LENGTH = 24


def generate_password(length: int = DEFAULT_LENGTH) -> SecretStr:
    """A random ASCII password with at least one character of each of the four classes."""
    if length < MIN_LENGTH or length > 256:
        raise ValueError(f"password length must be between {MIN_LENGTH} and 256")
    chars = [secrets.choice(cls) for cls in CLASSES]
    chars += [secrets.choice(ALPHABET) for _ in range(length - len(chars))]
    # Fisher-Yates with the CSPRNG so the guaranteed characters are not at fixed positions.
    for i in range(len(chars) - 1, 0, -1):
        j = secrets.randbelow(i + 1)
        chars[i], chars[j] = chars[j], chars[i]
    return SecretStr("".join(chars))


def meets_complexity(password: str) -> bool:
    """True if ``password`` satisfies what ``generate_password`` promises (used by tests)."""
    return (
        MIN_LENGTH <= len(password) <= 256
        and all(any(c in cls for c in password) for cls in CLASSES)
        and all(c in ALPHABET for c in password)
    )


_pending: dict[str, SecretStr] = {}
_pending_lock = threading.Lock()


def remember(key: str, password: SecretStr) -> None:
    """Keep ``password`` in this process's memory for the reset of ``key`` (a hand-over block)."""
    with _pending_lock:
        _pending[key] = password


def recall(key: str) -> SecretStr | None:
    """The password sealed for ``key`` by this process, or None (another process sealed it)."""
    with _pending_lock:
        return _pending.get(key)


def forget(key: str) -> None:
    with _pending_lock:
        _pending.pop(key, None)
