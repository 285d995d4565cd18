"""The one translation boundary: every documented error body maps to the right m365.errors class.

Built from real ``requests.Response`` objects (no network), in the way httpx asserts that every
upstream exception is mapped. The emulator tests cover the same paths over the wire; these pin
down the shapes the emulator does not produce (Exchange not-found as 400, HTML 502...).
"""

from __future__ import annotations

import json

import pytest
import requests

from m365.errors import (
    ApiError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    ServiceUnavailableError,
    ThrottledError,
    UnblockLimitError,
)
from m365.transport import parse_error, raise_for_response


def response(
    status: int,
    body: object = None,
    *,
    text: str | None = None,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r._content = (
        (text if text is not None else json.dumps(body)).encode()
        if (body is not None or text is not None)
        else b""
    )
    r.headers["Content-Type"] = content_type
    r.headers.update(headers or {})
    return r


def graph_error(code: str, message: str, request_id: str) -> dict:  # type: ignore[type-arg]
    """A Graph error body: code, message and the request id in innerError."""
    return {"error": {"code": code, "message": message, "innerError": {"request-id": request_id}}}


def exo_error(status: int, detail: str, internal: str = "", code: str = "BadRequest") -> dict:  # type: ignore[type-arg]
    return {
        "error": {
            "code": code,
            "message": "Error executing cmdlet",
            "details": [{"code": "Context", "target": "", "message": detail}],
            "innererror": {
                "message": "Error executing cmdlet",
                "type": "Microsoft.Exchange.Admin.OData.Core.ODataServiceException",
                "internalexception": {
                    "message": internal,
                    "type": "DirectInvokeCmdletExecutionException",
                },
            },
        }
    }


def test_graph_not_found_keeps_code_and_request_id() -> None:
    r = response(
        404,
        graph_error("Request_ResourceNotFound", "Resource 'x' does not exist", "body-id"),
        headers={"request-id": "header-id"},
    )
    with pytest.raises(NotFoundError) as info:
        raise_for_response(r, "get user")
    assert info.value.code == "Request_ResourceNotFound"
    assert info.value.request_id == "header-id"
    assert "does not exist" in str(info.value)


def test_request_id_from_body_when_no_header() -> None:
    r = response(403, graph_error("Authorization_RequestDenied", "no", "body-id"))
    with pytest.raises(PermissionDeniedError) as info:
        raise_for_response(r, "reset password")
    assert info.value.request_id == "body-id"


def test_exchange_not_found_as_400() -> None:
    detail = (
        "Ex6F9304|Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException|"
        "The operation couldn't be performed because object 'x' couldn't be found on 'y'."
    )
    r = response(400, exo_error(400, detail), headers={"Request-Id": "exo-id"})
    with pytest.raises(NotFoundError) as info:
        raise_for_response(r, "Get-Mailbox")
    assert info.value.request_id == "exo-id"
    assert str(info.value).startswith("Get-Mailbox: HTTP 400 BadRequest: The operation couldn't")


def test_exchange_unblock_limit() -> None:
    detail = (
        "Ex1|Microsoft.Exchange.Management.SystemConfigurationTasks.UnblockLimitExceededException|"
        "You've exceeded the unblock limit for this sender. Contact Microsoft Support to remove "
        "the restriction."
    )
    with pytest.raises(UnblockLimitError):
        raise_for_response(response(400, exo_error(400, detail)), "Remove-BlockedSenderAddress")


def test_exchange_invalid_operation_uses_internal_exception_message() -> None:
    body = exo_error(400, "", internal="Cannot bind parameter 'SenderAddress'.")
    body["error"]["details"] = []
    with pytest.raises(InvalidRequestError) as info:
        raise_for_response(response(400, body), "Get-BlockedSenderAddress")
    assert "Cannot bind parameter" in str(info.value)


def test_plain_text_throttle() -> None:
    r = response(
        429,
        text=(
            "You have reached the maximum number of concurrent requests per tenant."
            " Please wait and try again"
        ),
        content_type="text/plain",
        headers={"Retry-After": "3"},
    )
    with pytest.raises(ThrottledError) as info:
        raise_for_response(r, "Get-BlockedSenderAddress")
    assert info.value.retry_after == 3.0
    assert "maximum number of concurrent requests" in str(info.value)


def test_json_content_type_with_broken_json_is_read_as_text() -> None:
    r = response(502, text="<html>Bad Gateway</html>", content_type="application/json")
    assert parse_error(r).message == "<html>Bad Gateway</html>"
    with pytest.raises(ServiceUnavailableError):
        raise_for_response(r, "x")


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, InvalidRequestError),
        (401, PermissionDeniedError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (408, ServiceUnavailableError),
        (409, InvalidRequestError),
        (429, ThrottledError),
        (500, ServiceUnavailableError),
        (501, ApiError),
        (502, ServiceUnavailableError),
        (503, ServiceUnavailableError),
        (504, ServiceUnavailableError),
    ],
)
def test_status_mapping(status: int, expected: type[Exception]) -> None:
    with pytest.raises(expected) as info:
        raise_for_response(response(status, text="", content_type="text/plain"), "x")
    assert type(info.value) is expected


def test_messages_are_bounded() -> None:
    r = response(400, {"error": {"code": "Request_BadRequest", "message": "y" * 100_000}})
    with pytest.raises(InvalidRequestError) as info:
        raise_for_response(r, "x")
    assert len(str(info.value)) < 700


def test_2xx_passes() -> None:
    raise_for_response(response(204), "x")
