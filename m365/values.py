"""The values Graph and Exchange both put in JSON: timestamps and strings, read and written once.

Both APIs write ISO 8601 times with ``Z`` or an offset and up to seven fractional digits (.NET's
precision); both take a UTC time with whole seconds in a filter or a cmdlet parameter.
"""

from __future__ import annotations

from datetime import UTC, datetime


def nonempty_str(value: object) -> str | None:
    """A string with something in it, or None (absent, null, empty or another type)."""
    return value if isinstance(value, str) and value else None


def parse_timestamp(value: object) -> datetime | None:
    """An ISO 8601 time as the service wrote it; None for anything else. A time without a zone
    stays naive: whether it means UTC is the caller's to say."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    head, dot, tail = text.partition(".")
    if dot:
        # only the leading digits: the zone ("+00:00") has digits too; Python takes six
        digits = tail[: len(tail) - len(tail.lstrip("0123456789"))]
        text = f"{head}.{digits[:6]}{tail[len(digits) :]}"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def assume_utc(value: datetime) -> datetime:
    """``value`` with UTC as its zone when it has none; an aware time unchanged."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def as_utc(value: datetime) -> datetime:
    """``value`` in UTC (a naive time is taken to be UTC already)."""
    return assume_utc(value).astimezone(UTC)


def utc_timestamp(value: datetime) -> str:
    """UTC, whole seconds, ``Z``: a DateTimeOffset in Graph's ``$filter``, ``StartDate`` and
    ``EndDate`` of Get-MessageTraceV2."""
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")
