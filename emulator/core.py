"""Routing, fault injection and request logging, independent of the HTTP server."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from . import admin, exchange, graph, identity
from .faults import FaultRule, Faults
from .recording import RecordedRequest, RequestLog
from .state import EmulatorState
from .tokens import TokenService, peek_claims
from .wire import (
    Call,
    Request,
    Response,
    format_retry_after,
    graph_date,
    json_response,
    text_response,
)

log = logging.getLogger("emulator")

_DISCOVERY = re.compile(r"^/([^/]+)/v2\.0/\.well-known/openid-configuration$")
_JWKS = re.compile(r"^/([^/]+)/discovery/v2\.0/keys$")
_TOKEN = re.compile(r"^/([^/]+)/oauth2/v2\.0/token$")
_EXO = re.compile(r"^/exo/adminapi/beta/([^/]+)/InvokeCommand$", re.IGNORECASE)

EXO_THROTTLE_TEXT = (
    "You have reached the maximum number of concurrent requests per tenant. "
    "Please wait and try again"
)


class Core:
    """Everything the handlers need. Owned by ``Emulator``; the server calls ``dispatch``."""

    def __init__(self, state: EmulatorState, tokens: TokenService) -> None:
        self.state = state
        self.tokens = tokens
        self.faults = Faults()
        self.log = RequestLog()
        self.latency = 0.0
        self.reset_hook: Callable[[], None] = lambda: None  # set by Emulator
        self.info_json: dict[str, Any] = {}
        self.exo_budget: dict[str, tuple[float, int]] = {}  # tenant id -> (window start, used)

    # ---- entry point --------------------------------------------------------------------

    def dispatch(self, req: Request) -> Response:
        if req.path.startswith("/_emulator/") or req.path == "/_emulator":
            return admin.handle(self, req)
        if self.latency > 0:
            time.sleep(self.latency)
        call = Call(client_request_id=req.header("client-request-id"))
        handler = self._route(req, call)
        decision = self.faults.decide(call.endpoint, key=f"{call.tenant}|{call.app}")
        if decision.latency > 0:
            time.sleep(decision.latency)
        fault = decision.rule
        if fault is not None and fault.kind != "drop_after":
            response = self._fault_response(req, call, fault, decision.retry_after)
        else:
            response = self._handle(req, handler)
        response.headers.setdefault("request-id", call.request_id)
        if req.header("client-request-id"):
            response.headers.setdefault("client-request-id", str(req.header("client-request-id")))
        if fault is not None and fault.kind == "drop_after":
            # Applied, then the answer is lost: the log keeps the status the handler gave.
            self._record(req, call, response, decision.names)
            return Response(0, drop=True)
        self._record(req, call, response, decision.names)
        return response

    @staticmethod
    def _handle(req: Request, handler: Callable[[], Response]) -> Response:
        try:
            return handler()
        except Exception:  # a bug must still answer 500 and be logged
            log.exception("handler failed for %s %s", req.method, req.path)
            return json_response(
                500, {"error": {"code": "InternalServerError", "message": "emulator error"}}
            )

    def _record(self, req: Request, call: Call, response: Response, faults: list[str]) -> None:
        self.log.append(
            RecordedRequest(
                monotonic=time.monotonic(),
                time=datetime.now(UTC),
                method=req.method,
                path=req.path,
                endpoint=call.endpoint,
                status=0 if response.drop else response.status,
                cmdlet=call.cmdlet,
                parameters=dict(call.parameters),
                changed_fields=call.changed_fields,
                tenant=call.tenant,
                app=call.app,
                fault=",".join(faults) or None,
                write=call.write,
                request_id=call.request_id,
            )
        )
        log.info(
            "%s %s %s -> %s%s",
            req.method,
            call.endpoint,
            call.cmdlet or "",
            "drop" if response.drop else response.status,
            f" [fault {','.join(faults)}]" if faults else "",
        )

    # ---- routing ------------------------------------------------------------------------

    def _route(self, req: Request, call: Call) -> Any:
        path = req.path
        m = _TOKEN.match(path)
        if m and req.method == "POST":
            call.endpoint = "token"
            return lambda: identity.token(self, req, call, m.group(1))
        m = _DISCOVERY.match(path)
        if m and req.method == "GET":
            call.endpoint = "discovery"
            return lambda: identity.discovery(self, req, m.group(1))
        m = _JWKS.match(path)
        if m and req.method == "GET":
            call.endpoint = "jwks"
            return lambda: identity.jwks(self, req, m.group(1))
        if path.startswith("/graph/v1.0/"):
            self._label_from_token(req, call)
            return graph.route(self, req, call)
        m = _EXO.match(path)
        if m:
            self._label_from_token(req, call)
            return exchange.route(self, req, call, m.group(1))
        call.endpoint = "unknown"
        return lambda: json_response(
            404, {"error": {"code": "NotFound", "message": f"No emulated endpoint at {path}"}}
        )

    def _label_from_token(self, req: Request, call: Call) -> None:
        claims = peek_claims(req.header("Authorization"))
        tid = claims.get("tid")
        if isinstance(tid, str):
            ts = self.state.find_tenant(tid)
            call.tenant = ts.name if ts else tid
        appid = claims.get("appid")
        call.app = appid if isinstance(appid, str) else None

    # ---- faults -------------------------------------------------------------------------

    def _fault_response(
        self, req: Request, call: Call, fault: FaultRule, computed_wait: float | None = None
    ) -> Response:
        headers: dict[str, str] = {}
        wait_given = computed_wait if computed_wait is not None else fault.retry_after
        if wait_given is not None and fault.body != "message":
            headers["Retry-After"] = format_retry_after(round(wait_given, 3))
        if fault.kind == "drop":
            return Response(0, drop=True)
        family = call.endpoint.split(".", 1)[0]
        if fault.kind == "expired_token" and family == "exo" and fault.body == "empty":
            # Exchange may answer 401 with no body; the reason is only in the headers.
            return Response(401, b"", {**exchange.WWW_AUTHENTICATE, **exchange.DIAGNOSTICS})
        if fault.kind == "expired_token":
            if family == "token":
                return identity.aad_error(
                    400,
                    "invalid_client",
                    7000222,
                    "The provided client secret keys for app are expired.",
                    req.base_url,
                )
            if family == "exo":
                return exchange.unauthorized("The access token has expired.")
            return graph.error(
                401,
                "InvalidAuthenticationToken",
                "Access token has expired or is not yet valid.",
                call,
                headers=graph.WWW_AUTHENTICATE,
            )
        if fault.kind in ("429", "rate_limit"):
            wait = wait_given if wait_given is not None else 1
            if fault.body == "message" and family == "exo":
                return json_response(
                    429,
                    {
                        "error": {
                            "code": "TooManyRequests",
                            "message": (
                                "Too many requests for this tenant. Retry after "
                                f"{format_retry_after(wait)} seconds."
                            ),
                        }
                    },
                )
            if fault.body == "text":
                text = EXO_THROTTLE_TEXT if family == "exo" else "Too Many Requests"
                return text_response(429, text, headers)
            if family == "token":
                return json_response(
                    429,
                    {
                        "error": "temporarily_unavailable",
                        "error_description": "AADSTS50196: The server is throttling requests.",
                        "error_codes": [50196],
                    },
                    headers,
                )
            if family == "exo":
                return json_response(
                    429,
                    {
                        "error": {
                            "code": "TooManyRequests",
                            "message": (
                                "The request was throttled. Suggested backoff time: "
                                f"{format_retry_after(wait)} seconds"
                            ),
                        }
                    },
                    headers,
                )
            return json_response(
                429,
                {
                    "error": {
                        "code": "TooManyRequests",
                        "message": "Please retry again later.",
                        "innerError": {
                            "code": "429",
                            "status": "429",
                            "request-id": call.request_id,
                            "date": graph_date(),
                        },
                    }
                },
                headers,
            )
        # 503
        if fault.body == "text":
            return text_response(503, "Service Unavailable", headers)
        if family == "token":
            return json_response(
                503,
                {
                    "error": "temporarily_unavailable",
                    "error_description": "AADSTS90033: A transient error has "
                    "occurred. Please try again.",
                },
                headers,
            )
        if family == "exo":
            return json_response(
                503,
                {
                    "error": {
                        "code": "ServiceUnavailable",
                        "message": "The service is temporarily unavailable.",
                    }
                },
                headers,
            )
        return graph.error(
            503,
            "serviceNotAvailable",
            "The service is temporarily unavailable. Please retry later.",
            call,
            headers=headers,
        )

    # ---- helpers for the admin API --------------------------------------------------------

    def add_fault(self, spec: dict[str, Any]) -> FaultRule:
        allowed = {
            "endpoint",
            "kind",
            "count",
            "rate",
            "retry_after",
            "seconds",
            "body",
            "limit",
            "window",
        }
        unknown = set(spec) - allowed
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        return self.faults.add(**spec)

    def requests_json(self) -> str:
        return json.dumps([r.to_json() for r in self.log.items()])
