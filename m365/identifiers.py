"""Validation and escaping of identifiers before they go into a URL, an OData filter or a cmdlet.

Validation happens before any request: a malformed identifier raises
:class:`m365.errors.InvalidIdentifierError` (also a ``ValueError``), never an HTTP call.
What is accepted:

- an object id (GUID);
- an SMTP address / UPN: a local part of ``A-Z a-z 0-9 . _ % + - ' ! # ^ ~`` (Entra UPN rules plus
  ``%`` and ``+`` seen in aliases), ``@``, and a DNS domain. Nothing else: no slash, backslash,
  double quote, whitespace, control character, ``?``, ``&``, ``$`` or ``(``.

The apostrophe is legal in addresses (``o'brien@contoso.com``), so it is escaped, not refused:
doubled inside OData string literals and percent-encoded inside path segments.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from .errors import InvalidIdentifierError

MAX_ADDRESS_LENGTH = 256
MAX_IDENTITY_LENGTH = 512

_GUID = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", re.ASCII
)
_LOCAL = r"[A-Za-z0-9._%+'!#^~-]{1,64}"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ADDRESS = re.compile(rf"^{_LOCAL}@{_LABEL}(?:\.{_LABEL})+$", re.ASCII)
# Exchange identities: names, "mailbox\\ruleid", addresses. Printable, no control characters.
_IDENTITY = re.compile(r"^[^\x00-\x1f\x7f]+$")


def _describe(value: object) -> str:
    if not isinstance(value, str):
        return type(value).__name__
    return f"{len(value)} characters"


def is_guid(value: str) -> bool:
    return bool(_GUID.fullmatch(value))


def is_address(value: str) -> bool:
    return len(value) <= MAX_ADDRESS_LENGTH and bool(_ADDRESS.fullmatch(value))


def validate_user_identifier(value: object) -> str:
    """An object id or an address, surrounding blanks stripped; else ``InvalidIdentifierError``."""
    if not isinstance(value, str):
        raise InvalidIdentifierError(f"user identifier must be a string, got {_describe(value)}")
    candidate = value.strip(" \t")
    if len(candidate) > MAX_ADDRESS_LENGTH:
        raise InvalidIdentifierError(f"user identifier too long ({_describe(value)})")
    if is_guid(candidate) or is_address(candidate):
        return candidate
    # The value itself is not echoed: it may be hostile (CR/LF, markup) or huge.
    raise InvalidIdentifierError(
        f"not an object id or e-mail address ({_describe(value)}); nothing was sent"
    )


def validate_address(value: object, what: str = "address") -> str:
    if not isinstance(value, str):
        raise InvalidIdentifierError(f"{what} must be a string, got {_describe(value)}")
    candidate = value.strip(" \t")
    if not is_address(candidate):
        raise InvalidIdentifierError(f"{what} is not an e-mail address ({_describe(value)})")
    return candidate


def validate_guid(value: object, what: str = "id") -> str:
    if not isinstance(value, str) or not is_guid(value.strip()):
        raise InvalidIdentifierError(f"{what} must be a GUID ({_describe(value)})")
    return value.strip()


_OPAQUE_ID = re.compile(r"^[A-Za-z0-9_\-=.+]{1,200}$", re.ASCII)


def validate_opaque_id(value: object, what: str = "id") -> str:
    """A Graph object id that is not always a GUID (authentication methods, permission grants):
    letters, digits and ``_ - = . +`` only, at most 200 characters."""
    if not isinstance(value, str) or not _OPAQUE_ID.fullmatch(value.strip()):
        raise InvalidIdentifierError(f"{what} is not a Graph object id ({_describe(value)})")
    return value.strip()


def validate_identity(value: object, what: str = "identity") -> str:
    """An Exchange ``-Identity``/``-Mailbox`` value: printable and bounded."""
    if not isinstance(value, str):
        raise InvalidIdentifierError(f"{what} must be a string, got {_describe(value)}")
    candidate = value.strip()
    if not candidate or len(candidate) > MAX_IDENTITY_LENGTH or not _IDENTITY.fullmatch(candidate):
        raise InvalidIdentifierError(f"{what} is empty, too long or has control characters")
    return candidate


def path_segment(value: str) -> str:
    """Percent-encode a validated identifier for one URL path segment (``'`` -> ``%27``)."""
    return quote(value, safe="@")


def odata_literal(value: str) -> str:
    """An OData string literal: single quotes doubled, enclosed in single quotes."""
    return "'" + value.replace("'", "''") + "'"
