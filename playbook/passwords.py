"""Password generation for the reset step (``secrets`` only, never ``random``)."""

from __future__ import annotations

import secrets
import string

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
