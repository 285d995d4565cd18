"""Tolerant parser for the ``Reason`` of a Restricted users entry.

Two shapes are known (neither documented by Microsoft)::

    EmailSendingLimitExceeded;InternalRecipientCountToday=5;ExternalRecipientCountToday=501;
        ExceedingLimitType=External;Last MessagetraceId=<id>;LastMessageRcptCount=1;
    OutboundSpamLast24Hours=12;OutboundMailLast24Hours=20;OutboundSpamPercent=60;
        Last Spam Message MessagetraceId:<id>

Parts are split on ``;``, then each on the first ``=`` or ``:``. Keys are compared without case,
spaces, ``_`` or ``-``. A bare word becomes ``kind``; unknown keys and unparsable values go to
``extra``. It never raises, and the work is bounded however long the input is.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .models import RestrictionReason
from .values import nonempty_str

MAX_INPUT = 4096  # characters looked at; the rest is ignored
MAX_PARTS = 64
MAX_EXTRA = 32
MAX_KEY = 64
MAX_VALUE = 256

_INT = re.compile(r"^[+-]?[0-9]{1,18}$", re.ASCII)
_FLOAT = re.compile(r"^[+-]?(?:[0-9]{1,18}(?:\.[0-9]{0,12})?|\.[0-9]{1,12})$", re.ASCII)
_KIND = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$", re.ASCII)
_SEPARATOR = re.compile(r"[=:]")
_NORMALISE = re.compile(r"[\s_\-]+")

_INT_FIELDS: dict[str, str] = {
    "internalrecipientcounttoday": "internal_recipient_count_today",
    "externalrecipientcounttoday": "external_recipient_count_today",
    "outboundspamlast24hours": "outbound_spam_last_24h",
    "outboundmaillast24hours": "outbound_mail_last_24h",
    "lastmessagercptcount": "last_message_recipient_count",
    "lastmessagerecipientcount": "last_message_recipient_count",
}
_TRACE_KEYS = frozenset(
    {
        "lastmessagetraceid",
        "lastspammessagemessagetraceid",
        "lastspammessagetraceid",
        "messagetraceid",
    }
)


def _int(value: str) -> int | None:
    return int(value) if _INT.fullmatch(value) else None


def _percent(value: str) -> float | None:
    text = value.rstrip("%").strip()
    return float(text) if _FLOAT.fullmatch(text) else None


def _limit_type(value: str) -> str | None:
    lowered = value.lower()
    if lowered in ("internal", "external"):
        return lowered.capitalize()
    return value or None


def parse_reason(text: str | None) -> RestrictionReason:
    """Parse a ``Reason`` string into a :class:`RestrictionReason`; never raises."""
    if text is None:
        return RestrictionReason()
    if not isinstance(text, str):
        return RestrictionReason(extra=(("unparsed", type(text).__name__),))
    raw = text[:MAX_INPUT]
    fields: dict[str, object] = {}
    extra: list[tuple[str, str]] = []

    def keep(key: str, value: str) -> None:
        if len(extra) < MAX_EXTRA:
            extra.append((key[:MAX_KEY], value[:MAX_VALUE]))

    def put(name: str, value: object, key: str, original: str) -> None:
        if value is None:
            keep(key, original)
        elif name not in fields:  # first occurrence wins
            fields[name] = value

    parsers: dict[str, Callable[[str], object]] = {name: _int for name in _INT_FIELDS}

    for part in raw.split(";", MAX_PARTS)[:MAX_PARTS]:
        part = part.strip()
        if not part:
            continue
        match = _SEPARATOR.search(part)
        if match is None:
            if "kind" not in fields and _KIND.fullmatch(part):
                fields["kind"] = part
            else:
                keep(part, "")
            continue
        key = part[: match.start()].strip()
        value = part[match.end() :].strip()
        norm = _NORMALISE.sub("", key).lower()
        if norm in _INT_FIELDS:
            put(_INT_FIELDS[norm], parsers[norm](value), key, value)
        elif norm == "outboundspampercent":
            put("outbound_spam_percent", _percent(value), key, value)
        elif norm == "exceedinglimittype":
            put("exceeding_limit_type", _limit_type(value[:MAX_VALUE]), key, value)
        elif norm in _TRACE_KEYS:
            put("last_message_trace_id", value[:MAX_VALUE] or None, key, value)
        elif norm in ("reason", "kind", "type") and "kind" not in fields and value:
            fields["kind"] = value[:MAX_VALUE]
        else:
            keep(key, value)

    if "kind" not in fields and any(
        name in fields for name in ("outbound_spam_last_24h", "outbound_mail_last_24h")
    ):
        fields["kind"] = "OutboundSpam"

    return RestrictionReason(
        raw=raw,
        kind=nonempty_str(fields.get("kind")),
        exceeding_limit_type=nonempty_str(fields.get("exceeding_limit_type")),
        internal_recipient_count_today=_int_or_none(fields.get("internal_recipient_count_today")),
        external_recipient_count_today=_int_or_none(fields.get("external_recipient_count_today")),
        outbound_spam_last_24h=_int_or_none(fields.get("outbound_spam_last_24h")),
        outbound_mail_last_24h=_int_or_none(fields.get("outbound_mail_last_24h")),
        outbound_spam_percent=_float_or_none(fields.get("outbound_spam_percent")),
        last_message_trace_id=nonempty_str(fields.get("last_message_trace_id")),
        last_message_recipient_count=_int_or_none(fields.get("last_message_recipient_count")),
        extra=tuple(extra),
    )


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float_or_none(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
