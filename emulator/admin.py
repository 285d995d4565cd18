"""Admin API under /_emulator/ for tests and demos that run the emulator in another process."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from .wire import Request, Response, json_response

if TYPE_CHECKING:
    from .core import Core


def _bad(message: str) -> Response:
    return json_response(400, {"error": message})


def handle(core: Core, req: Request) -> Response:
    path = req.path.rstrip("/")
    m = req.method
    try:
        body: Any = req.json() if req.body else {}
    except ValueError:
        return _bad("body must be JSON")
    try:
        if path == "/_emulator/info" and m == "GET":
            return json_response(200, core.info_json)
        if path == "/_emulator/state" and m == "GET":
            return json_response(
                200,
                {
                    "tenants": core.state.summary(),
                    "faults": [r.describe() for r in core.faults.rules],
                    "latency": core.latency,
                },
            )
        if path == "/_emulator/reset" and m == "POST":
            core.reset_hook()
            return json_response(200, {"reset": True})
        if path == "/_emulator/faults":
            if m == "GET":
                return json_response(200, [r.describe() for r in core.faults.rules])
            if m == "DELETE":
                core.faults.clear()
                return json_response(200, {"cleared": True})
            if m == "POST":
                specs = body if isinstance(body, list) else [body]
                rules = [core.add_fault(dict(spec)) for spec in specs]
                return json_response(201, [r.describe() for r in rules])
        if path == "/_emulator/requests":
            if m == "GET":
                return Response(
                    200, core.requests_json().encode(), {"Content-Type": "application/json"}
                )
            if m == "DELETE":
                core.log.clear()
                return json_response(200, {"cleared": True})
        if path == "/_emulator/restricted" and m == "POST":
            created = body.get("created")
            entry = core.state.restrict(
                str(body["tenant"]),
                str(body["address"]),
                str(body.get("reason", "")),
                datetime.fromisoformat(created) if created else None,
                bool(body.get("temporary_block", False)),
            )
            return json_response(201, entry.summary())
        if path == "/_emulator/settings" and m == "POST":
            tenant = str(body.pop("tenant"))
            settings = core.state.update_settings(tenant, **body)
            return json_response(200, settings.model_dump())
        if path == "/_emulator/latency" and m == "POST":
            core.latency = max(float(body.get("seconds", 0.0)), 0.0)
            return json_response(200, {"latency": core.latency})
        if path == "/_emulator/invalidate-tokens" and m == "POST":
            core.tokens.invalidate_all()
            return json_response(200, {"invalidated": True})
    except (KeyError, TypeError, ValueError, ValidationError) as exc:
        return _bad(f"{type(exc).__name__}: {exc}")
    return json_response(404, {"error": f"no admin endpoint {m} {path}"})
