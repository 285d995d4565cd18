"""Fault injection per endpoint: 429, 503, latency, dropped connections and expired tokens.

``drop`` closes the connection before the request is handled (nothing happened); ``drop_after``
handles it first and then closes the connection (the write happened, the answer is lost).
"""

from __future__ import annotations

import fnmatch
import random
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

FaultKind = Literal["429", "503", "latency", "drop", "drop_after", "expired_token"]
FAULT_KINDS: tuple[str, ...] = ("429", "503", "latency", "drop", "drop_after", "expired_token")

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
)


@dataclass
class FaultRule:
    endpoint: str  # exact name, "exo.<Cmdlet>", or a glob such as "*" or "exo.*"
    kind: str
    count: int | None = None  # the next N matching calls; None = unlimited
    rate: float | None = None  # probability per matching call; None = always
    retry_after: float | None = None
    seconds: float = 0.0
    body: str = "json"  # "json" or "text" (Exchange plain-text throttle)
    applied: int = 0

    def matches(self, endpoint: str) -> bool:
        return fnmatch.fnmatchcase(endpoint.lower(), self.endpoint.lower())

    def describe(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "kind": self.kind,
            "count": self.count,
            "rate": self.rate,
            "retry_after": self.retry_after,
            "seconds": self.seconds,
            "body": self.body,
            "applied": self.applied,
        }


@dataclass
class FaultDecision:
    latency: float = 0.0
    rule: FaultRule | None = None  # the terminal fault (anything but latency)
    names: list[str] = field(default_factory=list)


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
    ) -> FaultRule:
        kind = str(kind)
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; use one of {FAULT_KINDS}")
        if rate is not None and not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be within 0..1")
        if count is not None and count < 0:
            raise ValueError("count must be >= 0")
        if body not in ("json", "text"):
            raise ValueError("body must be 'json' or 'text'")
        if kind == "latency" and not seconds:
            raise ValueError("a latency fault needs seconds")
        rule = FaultRule(endpoint, kind, count, rate, retry_after, float(seconds or 0.0), body)
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

    def decide(self, endpoint: str) -> FaultDecision:
        """Consume the rules matching this call. Latency adds up; the first other fault wins."""
        decision = FaultDecision()
        with self._lock:
            for rule in list(self._rules):
                if not rule.matches(endpoint):
                    continue
                if rule.kind != "latency" and decision.rule is not None:
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
