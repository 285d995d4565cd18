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


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            SENDING_LIMIT,
            {
                "kind": "EmailSendingLimitExceeded",
                "internal_recipient_count_today": 5,
                "external_recipient_count_today": 501,
                "exceeding_limit_type": "External",
                "last_message_trace_id": "6e7f1c2a-1111-4a4a-9b9b-0123456789ab",
                "last_message_recipient_count": 1,
                "extra": (),
                "raw": SENDING_LIMIT,
            },
            id="sending-limit-format",
        ),
        pytest.param(
            OUTBOUND_SPAM,
            {
                "kind": "OutboundSpam",
                "outbound_spam_last_24h": 12,
                "outbound_mail_last_24h": 20,
                "outbound_spam_percent": 60.0,
                "last_message_trace_id": "0b3f5d7e-2222-4c4c-8d8d-abcdef012345",
                "extra": (),
            },
            id="outbound-spam-format",
        ),
        pytest.param(
            "  emailsendinglimitexceeded ; internalrecipientcounttoday : 7 ;"
            " EXTERNAL_RECIPIENT_COUNT_TODAY= 3 ; exceedinglimittype:internal ;"
            " last messagetraceid : abc ; OutboundSpamPercent = 12.5% ",
            {
                "kind": "emailsendinglimitexceeded",
                "internal_recipient_count_today": 7,
                "external_recipient_count_today": 3,
                "exceeding_limit_type": "Internal",
                "last_message_trace_id": "abc",
                "outbound_spam_percent": 12.5,
            },
            id="colon-separators-whitespace-and-case",
        ),
    ],
)
def test_parsed_fields(text: str, expected: dict[str, object]) -> None:
    r = parse_reason(text)
    for name, value in expected.items():
        assert getattr(r, name) == value, name


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
