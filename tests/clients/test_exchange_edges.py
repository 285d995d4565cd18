"""Three Exchange edges: a 429 whose wait is only in its text, a 401 without a body, and a cmdlet
the app's role does not include. Each over the wire (emulator) and at the error boundary."""

from __future__ import annotations

import json

import pytest
import requests

from emulator import Emulator
from m365 import M365Clients, RetryPolicy, build_clients
from m365.config import TenantConfig
from m365.errors import InvalidRequestError, PermissionDeniedError, ThrottledError
from m365.transport import raise_for_response

from .helpers import calls, waits

CMDLET = "Get-BlockedSenderAddress"
LATE_SLACK = 1.5


def response(
    status: int, body: object = None, headers: dict[str, str] | None = None
) -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r._content = json.dumps(body).encode() if body is not None else b""
    r.headers["Content-Type"] = "application/json"
    r.headers.update(headers or {})
    return r


# -- (a) the wait is only in the error text -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "wait"),
    [
        ("Too many requests for this tenant. Retry after 30 seconds.", 30.0),
        ("The request was throttled. Suggested backoff time: 7 seconds", 7.0),
        ("Throttled; retry after 2.5 seconds", 2.5),
    ],
)
def test_wait_in_the_text_becomes_retry_after(text: str, wait: float) -> None:
    with pytest.raises(ThrottledError) as info:
        raise_for_response(
            response(429, {"error": {"code": "TooManyRequests", "message": text}}), CMDLET
        )
    assert info.value.retry_after == wait


def test_the_retry_after_header_wins_over_the_text() -> None:
    body = {"error": {"code": "TooManyRequests", "message": "Retry after 30 seconds"}}
    with pytest.raises(ThrottledError) as info:
        raise_for_response(response(429, body, {"Retry-After": "3"}), CMDLET)
    assert info.value.retry_after == 3.0


def test_a_thirty_second_wait_is_waited_out_not_given_up_on() -> None:
    """The default policy used to back off 0.5..2 s and give up after ~2.5 s on this answer."""
    sleeps: list[float] = []
    clock = {"t": 0.0}

    def sleep(s: float) -> None:
        sleeps.append(s)
        clock["t"] += s

    answers = iter([ThrottledError("429", status=429, retry_after=30.0)])

    def call() -> str:
        for exc in answers:
            raise exc
        return "ok"

    assert RetryPolicy().run(call, sleep=sleep, clock=lambda: clock["t"]) == "ok"
    assert sleeps == [30.0]


def test_exchange_429_with_the_wait_only_in_its_text_is_waited_out(
    clients: M365Clients, emulator: Emulator
) -> None:
    emulator.faults.add(
        endpoint=f"exo.{CMDLET}", kind="429", count=1, retry_after=2, body="message"
    )
    clients.exchange.get_blocked_senders()
    (wait,) = waits(emulator, f"exo.{CMDLET}", [429, 200])
    print("observed wait after 'Retry after 2 seconds' (no header) ->", round(wait, 3))
    assert 2.0 <= wait < 2.0 + LATE_SLACK


def test_a_wait_beyond_the_policy_is_a_clear_error_at_once(
    config: TenantConfig, emulator: Emulator
) -> None:
    emulator.faults.add(
        endpoint=f"exo.{CMDLET}", kind="429", count=1, retry_after=30, body="message"
    )
    clients = build_clients(config, retry_policy=RetryPolicy(max_wait_seconds=10))
    with pytest.raises(ThrottledError) as info:
        clients.exchange.get_blocked_senders()
    assert info.value.retry_after == 30.0
    assert "asks to wait 30s" in str(info.value) and "longer than this call may" in str(info.value)
    assert len(calls(emulator, f"exo.{CMDLET}")) == 1


# -- (b) 401 without a body ----------------------------------------------------------------------


def test_a_bodiless_401_is_explained_from_its_headers() -> None:
    headers = {
        "WWW-Authenticate": (
            'Bearer client_id="00000002-0000-0ff1-ce00-000000000000", error="invalid_token"'
        ),
        "x-ms-diagnostics": (
            '2000008;reason="The token has no roles claim.";error_category="invalid_token"'
        ),
    }
    r = response(401, None, headers)
    r.headers["Content-Type"] = ""
    with pytest.raises(PermissionDeniedError) as info:
        raise_for_response(r, CMDLET)
    text = str(info.value)
    assert "The token has no roles claim." in text
    assert "WWW-Authenticate error invalid_token" in text
    assert text != f"{CMDLET}: HTTP 401"


def test_a_bodiless_401_without_headers_says_so() -> None:
    with pytest.raises(PermissionDeniedError) as info:
        raise_for_response(response(401), CMDLET)
    assert "no reason given" in str(info.value)


def test_exchange_401_with_an_empty_body_over_the_wire(
    clients: M365Clients, emulator: Emulator
) -> None:
    emulator.faults.add(endpoint=f"exo.{CMDLET}", kind="expired_token", count=2, body="empty")
    with pytest.raises(PermissionDeniedError) as info:
        clients.exchange.get_blocked_senders()
    text = str(info.value)
    assert "The access token has expired" in text and "invalid_token" in text
    # one fresh token was tried (the 401 rule), then the reason surfaced
    assert [r.status for r in calls(emulator, f"exo.{CMDLET}")] == [401, 401]


# -- (c) a cmdlet the role lacks -----------------------------------------------------------------


def _command_not_found(name: str) -> dict[str, object]:
    text = (
        f"The term '{name}' is not recognized as a name of a cmdlet, function, script file, "
        "or executable program."
    )
    return {
        "error": {
            "code": "BadRequest",
            "message": "Invalid Operation",
            "details": [
                {
                    "code": "Context",
                    "message": f"Ex1|System.Management.Automation.CommandNotFoundException|{text}",
                }
            ],
        }
    }


def test_command_not_found_is_a_permission_error_naming_the_role() -> None:
    with pytest.raises(PermissionDeniedError) as info:
        raise_for_response(
            response(400, _command_not_found("Get-MessageTraceV2")), "Get-MessageTraceV2"
        )
    assert not isinstance(info.value, InvalidRequestError)
    assert info.value.code == "CommandNotFoundException"
    assert "Get-MessageTraceV2" in str(info.value)
    assert "Exchange Administrator" in str(info.value)


def test_command_not_found_over_the_wire(clients: M365Clients, emulator: Emulator) -> None:
    with pytest.raises(PermissionDeniedError) as info:
        clients.exchange.invoke("Get-NotInThisRole", {})
    assert info.value.code == "CommandNotFoundException" and info.value.status == 400
    assert "Get-NotInThisRole" in str(info.value)
    assert "assign the Entra role Exchange Administrator" in str(info.value)
