"""parse_reason: both documented shapes, separators, case, whitespace, junk, huge input."""

from __future__ import annotations

import pytest

from m365.models import RestrictionReason
from m365.reason import MAX_EXTRA, MAX_INPUT, parse_reason

SENDING_LIMIT = (
    "EmailSendingLimitExceeded;InternalRecipientCountToday=5;ExternalRecipientCountToday=501;"
    "ExceedingLimitType=External;Last MessagetraceId=6e7f1c2a-1111-4a4a-9b9b-0123456789ab;"
    "LastMessageRcptCount=1;"
)
OUTBOUND_SPAM = (
    "OutboundSpamLast24Hours=12;OutboundMailLast24Hours=20;OutboundSpamPercent=60;"
    "Last Spam Message MessagetraceId:0b3f5d7e-2222-4c4c-8d8d-abcdef012345"
)


def test_sending_limit_format() -> None:
    r = parse_reason(SENDING_LIMIT)
    assert r.kind == "EmailSendingLimitExceeded"
    assert r.internal_recipient_count_today == 5
    assert r.external_recipient_count_today == 501
    assert r.exceeding_limit_type == "External"
    assert r.last_message_trace_id == "6e7f1c2a-1111-4a4a-9b9b-0123456789ab"
    assert r.last_message_recipient_count == 1
    assert r.extra == ()
    assert r.raw == SENDING_LIMIT


def test_outbound_spam_format() -> None:
    r = parse_reason(OUTBOUND_SPAM)
    assert r.kind == "OutboundSpam"
    assert r.outbound_spam_last_24h == 12
    assert r.outbound_mail_last_24h == 20
    assert r.outbound_spam_percent == 60.0
    assert r.last_message_trace_id == "0b3f5d7e-2222-4c4c-8d8d-abcdef012345"
    assert r.extra == ()


def test_colon_separators_whitespace_and_case() -> None:
    r = parse_reason(
        "  emailsendinglimitexceeded ; internalrecipientcounttoday : 7 ;"
        " EXTERNAL_RECIPIENT_COUNT_TODAY= 3 ; exceedinglimittype:internal ;"
        " last messagetraceid : abc ; OutboundSpamPercent = 12.5% "
    )
    assert r.kind == "emailsendinglimitexceeded"
    assert r.internal_recipient_count_today == 7
    assert r.external_recipient_count_today == 3
    assert r.exceeding_limit_type == "Internal"
    assert r.last_message_trace_id == "abc"
    assert r.outbound_spam_percent == 12.5


def test_trace_id_keeps_later_separators() -> None:
    r = parse_reason("Last MessagetraceId=a:b=c")
    assert r.last_message_trace_id == "a:b=c"


@pytest.mark.parametrize("text", [None, ""])
def test_empty(text: str | None) -> None:
    assert parse_reason(text) == RestrictionReason(raw=text or "")


def test_unknown_keys_and_bad_values_go_to_extra() -> None:
    r = parse_reason("Foo=bar;InternalRecipientCountToday=lots;;;=;OutboundSpamPercent=1e9")
    assert r.internal_recipient_count_today is None
    assert r.outbound_spam_percent is None
    assert ("Foo", "bar") in r.extra
    assert ("InternalRecipientCountToday", "lots") in r.extra
    assert ("OutboundSpamPercent", "1e9") in r.extra


def test_non_ascii_digits_are_not_numbers() -> None:
    r = parse_reason("InternalRecipientCountToday=\u0661\u0662")  # Arabic-Indic digits
    assert r.internal_recipient_count_today is None


@pytest.mark.parametrize(
    "junk",
    [
        ";;;;",
        "=====",
        ":::",
        "\x00\x01\x02;\r\n=\t:",
        "<script>alert(1)</script>",
        "ünïcödé=✓;🙂:🙃",
        "InternalRecipientCountToday=99999999999999999999999999999",
        "a" * 10_000,
    ],
)
def test_junk_never_raises(junk: str) -> None:
    r = parse_reason(junk)
    assert isinstance(r, RestrictionReason)
    assert len(r.raw) <= MAX_INPUT


def test_not_a_string_never_raises() -> None:
    r = parse_reason(12345)  # type: ignore[arg-type]
    assert isinstance(r, RestrictionReason)


def test_huge_input_is_bounded() -> None:
    text = ("Key=value;" * 1_000_000) + SENDING_LIMIT  # ~10 MB
    r = parse_reason(text)
    assert len(r.raw) == MAX_INPUT
    assert len(r.extra) <= MAX_EXTRA
    assert r.internal_recipient_count_today is None  # beyond the window, ignored


def test_first_occurrence_wins() -> None:
    r = parse_reason("InternalRecipientCountToday=1;InternalRecipientCountToday=2")
    assert r.internal_recipient_count_today == 1
