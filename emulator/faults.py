"""Fault injection per endpoint: 429, 503, latency, dropped connections, expired tokens, and
Microsoft's per-app request limits.

``drop`` closes the connection before the request is handled (nothing happened); ``drop_after``
handles it first and then closes the connection (the write happened, the answer is lost).

``rate_limit`` enforces "at most ``limit`` requests per ``window`` seconds" per tenant and app, as
Microsoft does for the reports APIs and message trace; calls over the limit get a 429 whose
``Retry-After`` is the time until a slot frees up. :data:`MICROSOFT_LIMITS` holds the two stated
limits, ready for ``Faults.add(**spec)``. An endpoint pattern may list alternatives separated by
``|``; the calls matching one ``rate_limit`` rule share its budget.

``body`` shapes the answer: ``json`` (default), ``text`` (Exchange plain-text throttle),
``message`` (Exchange 429 whose wait is only in the error text, no ``Retry-After``) and ``empty``
(an Exchange 401 without a body: the reason is in ``WWW-Authenticate`` and ``x-ms-diagnostics``).
"""

from __future__ import annotations

import fnmatch
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

FaultKind = Literal["429", "503", "latency", "drop", "drop_after", "expired_token", "rate_limit"]
FAULT_KINDS: tuple[str, ...] = (
    "429",
    "503",
    "latency",
    "drop",
    "drop_after",
    "expired_token",
    "rate_limit",
)
BODIES: tuple[str, ...] = ("json", "text", "message", "empty")

ENDPOINTS: tuple[str, ...] = (
    "token",
    "graph.get_user",
    "graph.list_users",
    "graph.update_user",
    "graph.revoke_sessions",
    "graph.create_tap",
    "graph.list_taps",
    "graph.message_rules",
    "graph.member_of",
    "graph.service_principal",
    "graph.set_account_enabled",
    "graph.auth_methods",
    "graph.delete_auth_method",
    "graph.directory_audits",
    "graph.sign_ins",
    "graph.oauth2_grants",
    "graph.delete_oauth2_grant",
)

# Microsoft's stated limits (learn.microsoft.com: Graph service-specific throttling limits, the
# identity and access reports row, which also covers authenticationMethod; Get-MessageTraceV2).
REPORTS_ENDPOINTS = (
    "graph.sign_ins|graph.directory_audits|graph.auth_methods|graph.delete_auth_method"
)
MICROSOFT_LIMITS: tuple[dict[str, Any], ...] = (
    {"endpoint": REPORTS_ENDPOINTS, "kind": "rate_limit", "limit": 5, "window": 10.0},
    {"endpoint": "exo.Get-MessageTraceV2", "kind": "rate_limit", "limit": 100, "window": 300.0},
)


@dataclass
class FaultRule:
    endpoint: str  # exact name, "exo.<Cmdlet>", or a glob such as "*" or "exo.*"
    kind: str
    count: int | None = None  # the next N matching calls; None = unlimited
    rate: float | None = None  # probability per matching call; None = always
    retry_after: float | None = None
    seconds: float = 0.0
    body: str = "json"  # see BODIES
    limit: int | None = None  # rate_limit: requests per window, per tenant and app
    window: float | None = None  # rate_limit: seconds
    applied: int = 0
    _sent: dict[str, deque[float]] = field(default_factory=dict, repr=False)

    def matches(self, endpoint: str) -> bool:
        name = endpoint.lower()
        return any(
            fnmatch.fnmatchcase(name, pattern.strip().lower())
            for pattern in self.endpoint.split("|")
        )

    def over_limit(self, key: str, now: float) -> float | None:
        """``rate_limit``: record an accepted call, or return the wait (s) when over the limit."""
        assert self.limit is not None and self.window is not None
        sent = self._sent.setdefault(key, deque())
        while sent and sent[0] <= now - self.window:
            sent.popleft()
        if len(sent) < self.limit:
            sent.append(now)
            return None
        return max(0.001, sent[0] + self.window - now)

    def describe(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "kind": self.kind,
            "count": self.count,
            "rate": self.rate,
            "retry_after": self.retry_after,
            "seconds": self.seconds,
            "body": self.body,
            "limit": self.limit,
            "window": self.window,
            "applied": self.applied,
        }


@dataclass
class FaultDecision:
    latency: float = 0.0
    rule: FaultRule | None = None  # the terminal fault (anything but latency)
    names: list[str] = field(default_factory=list)
    retry_after: float | None = None  # rate_limit: the computed wait


class Faults:
    """Registered fault rules. Deterministic: ``rate`` draws from a seeded RNG."""

    def __init__(self, seed: int = 1234) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._seed = seed
        self._rng = random.Random(seed)

    def add(
        self,
        endpoint: str,
        kind: str,
        count: int | None = None,
        rate: float | None = None,
        retry_after: float | None = None,
        seconds: float | None = None,
        body: str = "json",
        limit: int | None = None,
        window: float | None = None,
    ) -> FaultRule:
        kind = str(kind)
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; use one of {FAULT_KINDS}")
        if rate is not None and not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be within 0..1")
        if count is not None and count < 0:
            raise ValueError("count must be >= 0")
        if body not in BODIES:
            raise ValueError(f"body must be one of {BODIES}")
        if kind == "latency" and not seconds:
            raise ValueError("a latency fault needs seconds")
        if kind == "rate_limit":
            if limit is None or limit < 1 or window is None or window <= 0:
                raise ValueError("a rate_limit fault needs limit >= 1 and window > 0 (seconds)")
            count, rate = None, None  # a limit is standing, not consumed
        elif limit is not None or window is not None:
            raise ValueError("limit and window belong to rate_limit faults only")
        rule = FaultRule(
            endpoint,
            kind,
            count,
            rate,
            retry_after,
            float(seconds or 0.0),
            body,
            limit,
            float(window) if window is not None else None,
        )
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            self._rng = random.Random(self._seed)

    def reseed(self, seed: int) -> None:
        with self._lock:
            self._seed = seed
            self._rng = random.Random(seed)

    @property
    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def decide(self, endpoint: str, key: str = "") -> FaultDecision:
        """Consume the rules matching this call. Latency adds up; the first other fault wins.

        ``key`` names the caller (tenant and app) for ``rate_limit`` rules.
        """
        decision = FaultDecision()
        now = time.monotonic()
        with self._lock:
            for rule in list(self._rules):
                if not rule.matches(endpoint):
                    continue
                if rule.kind != "latency" and decision.rule is not None:
                    continue
                if rule.kind == "rate_limit":
                    wait = rule.over_limit(key, now)
                    if wait is None:
                        continue
                    rule.applied += 1
                    decision.names.append(rule.kind)
                    decision.rule, decision.retry_after = rule, wait
                    continue
                if rule.rate is not None and self._rng.random() >= rule.rate:
                    continue
                rule.applied += 1
                if rule.count is not None:
                    rule.count -= 1
                    if rule.count <= 0:
                        self._rules.remove(rule)
                decision.names.append(rule.kind)
                if rule.kind == "latency":
                    decision.latency += rule.seconds
                else:
                    decision.rule = rule
        return decision
