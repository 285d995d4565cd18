"""The request log. Holds names and identifiers only: never bodies, passwords, TAPs or secrets."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class RecordedRequest:
    monotonic: float
    time: datetime
    method: str
    path: str
    endpoint: str
    status: int  # 0 = connection dropped without a response
    cmdlet: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)  # non-secret EXO parameters
    changed_fields: tuple[str, ...] = ()  # Graph writes: names only
    tenant: str | None = None
    app: str | None = None  # client id
    fault: str | None = None
    write: bool = False
    request_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["time"] = self.time.isoformat()
        data["changed_fields"] = list(self.changed_fields)
        return data


class RequestLog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[RecordedRequest] = []

    def append(self, item: RecordedRequest) -> None:
        with self._lock:
            self._items.append(item)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def items(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._items)
