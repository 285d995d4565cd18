"""Request/response values passed between the HTTP server and the endpoint handlers."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from typing import Any

JSON = "application/json; charset=utf-8"
ODATA_JSON = (
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;"
    "charset=utf-8"
)


@dataclass
class Request:
    method: str
    path: str  # without the query string, still percent-encoded
    query: dict[str, str]
    raw_query: str
    headers: Message
    body: bytes
    base_url: str  # https://127.0.0.1:P

    def header(self, name: str) -> str | None:
        value = self.headers.get(name)
        return str(value) if value is not None else None

    def json(self) -> Any:
        if not self.body:
            return None
        return json.loads(self.body.decode("utf-8"))

    @property
    def url(self) -> str:
        return self.base_url + self.path + (f"?{self.raw_query}" if self.raw_query else "")


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False  # close the connection without answering


def json_response(
    status: int,
    payload: Any,
    headers: dict[str, str] | None = None,
    content_type: str = JSON,
) -> Response:
    out = {"Content-Type": content_type}
    out.update(headers or {})
    return Response(status, json.dumps(payload).encode("utf-8"), out)


def text_response(status: int, text: str, headers: dict[str, str] | None = None) -> Response:
    out = {"Content-Type": "text/plain; charset=utf-8"}
    out.update(headers or {})
    return Response(status, text.encode("utf-8"), out)


@dataclass
class Call:
    """What the request log records about one call; filled in by the handlers."""

    endpoint: str = "unknown"
    cmdlet: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    changed_fields: tuple[str, ...] = ()
    tenant: str | None = None
    app: str | None = None
    write: bool = False
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    client_request_id: str | None = None


def format_retry_after(seconds: float) -> str:
    """Integral values as "2", fractions as "0.5" (Graph sends fractions such as 2.128)."""
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


def graph_date() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def exo_datetime(value: datetime) -> str:
    """Exchange's round-trip format: 2022-09-21T08:07:47.0000000+00:00."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond * 10:07d}+00:00"


def parse_datetime(value: object) -> datetime | None:
    """A time a client sent (ISO 8601, ``Z`` or an offset, up to seven fractional digits as .NET
    writes them); a time without a zone is UTC. None for anything else."""
    if not isinstance(value, str):
        return None
    text = value.strip().replace("Z", "+00:00")
    head, dot, tail = text.partition(".")
    if dot:
        # only the leading digits: the zone ("+00:00") has digits too; Python takes six
        digits = tail[: len(tail) - len(tail.lstrip("0123456789"))]
        text = f"{head}.{digits[:6]}{tail[len(digits) :]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
