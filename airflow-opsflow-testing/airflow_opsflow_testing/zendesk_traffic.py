"""Traffic control of :class:`~airflow_opsflow_testing.zendesk_server.FakeZendesk`: rate limits, faults, request log.

Rate limit: at most ``rate_limit`` requests per rolling ``rate_window`` seconds, then 429 with ``Retry-After``
(seconds until a slot frees) and Zendesk's plain-text body ``Number of allowed API requests per minute
exceeded``; the incremental exports also count against their own limit (Zendesk: 10 a minute), and so does
the Search Export API (Zendesk: 100 a minute per account). Every answer
carries ``X-Rate-Limit``, ``X-Rate-Limit-Remaining`` and ``ratelimit-limit/-remaining/-reset``, as Zendesk's
ticketing endpoints do. Faults pick requests by operation name, path prefix or any request.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Literal

from airflow_opsflow_testing.local_http import JsonReply

RATE_LIMITED = "Number of allowed API requests per minute exceeded"
EXPORT_LIMITED = "Number of allowed incremental export API requests per minute exceeded"
SEARCH_EXPORT_LIMITED = "Number of allowed search export API requests per minute exceeded"  # the fake's words
WRITES = ("POST", "PUT", "DELETE")


@dataclass(frozen=True)
class RecordedRequest:
    """One request as it arrived (without Authorization) and how it was answered."""

    name: str  # the operation ("create_ticket", "search", "job_status"...), "unknown" for unrouted paths
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any  # parsed JSON, or None
    status: int | None  # None when the answer was dropped
    at: float  # time.time() on arrival
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def is_write(self) -> bool:
        return self.method in WRITES


@dataclass
class Fault:
    target: str | None  # an operation name, a path prefix ("/..."), or None: any request
    kind: Literal["fail", "drop", "delay"]
    remaining: int
    status: int = 503
    retry_after: int | None = None
    body: Any = None
    seconds: float = 0.0


class Traffic:
    """Mixed into FakeZendesk: the rolling rate windows, the injected faults and the log of requests."""

    operations: list[str]

    def _init_traffic(self, rate_limit: int, rate_window: float, incremental_limit: int,
                      search_export_limit: int = 100) -> None:
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._faults: list[Fault] = []
        self._latency = 0.0
        self._window: deque[float] = deque()
        self._export_window: deque[float] = deque()
        self._search_export_window: deque[float] = deque()
        self.set_rate_limit(rate_limit, rate_window, incremental_limit, search_export_limit)

    def set_rate_limit(self, per_window: int, window_seconds: float = 60.0,
                       incremental_limit: int | None = None, search_export_limit: int | None = None) -> None:
        """At most ``per_window`` requests per rolling ``window_seconds`` (and ``incremental_limit`` incremental
        exports, ``search_export_limit`` search exports a minute), then 429 + ``Retry-After``; small windows make
        429s quick to reach in tests."""
        if per_window < 1 or window_seconds <= 0:
            raise ValueError("the rate limit needs per_window >= 1 and window_seconds > 0")
        with self._lock:
            self.rate_limit, self.rate_window = per_window, window_seconds
            if incremental_limit is not None:
                self.incremental_limit = incremental_limit
            if search_export_limit is not None:
                self.search_export_limit = search_export_limit
            self._window.clear()
            self._export_window.clear()
            self._search_export_window.clear()

    # --- faults -------------------------------------------------------------------------------------------

    def _check_target(self, target: str | None) -> None:
        if target is not None and not target.startswith("/") and target not in self.operations:
            raise ValueError(f"unknown operation {target!r}: one of {self.operations}, or a path prefix")

    def fail_next(self, target: str | None = None, *, status: int = 503, retry_after: int | None = None,
                  times: int = 1, body: Any = None) -> None:
        """Refuse the next ``times`` requests of ``target`` (operation name, path prefix, None: any), unapplied.

        A 429 carries Zendesk's plain-text body unless ``body`` is given; ``Retry-After`` is sent unless None.
        """
        self._check_target(target)
        with self._lock:
            self._faults.append(Fault(target, "fail", times, status, retry_after, body))

    def drop_response_next(self, target: str | None = None, times: int = 1) -> None:
        """Apply the next ``times`` requests of ``target``, then close the connection without answering."""
        self._check_target(target)
        with self._lock:
            self._faults.append(Fault(target, "drop", times))

    def delay_next(self, target: str | None = None, seconds: float = 1.0, times: int = 1) -> None:
        """Apply the next ``times`` requests of ``target``, then wait ``seconds`` before answering."""
        self._check_target(target)
        with self._lock:
            self._faults.append(Fault(target, "delay", times, seconds=seconds))

    def latency(self, seconds: float) -> None:
        """Hold every request ``seconds`` before handling it (0 turns it off)."""
        self._latency = max(0.0, seconds)

    def _take_fault(self, name: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                target = fault.target
                if target is None or target == name or (target.startswith("/") and path.startswith(target)):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def mark(self) -> int:
        """A position in :attr:`requests`, for ``calls(since=...)``: what one run did."""
        with self._lock:
            return len(self._requests)

    def calls(self, name: str | None = None, *, method: str | None = None, path_prefix: str | None = None,
              since: int = 0) -> list[RecordedRequest]:
        """Recorded requests by operation name, HTTP method and/or path prefix, from ``since`` on."""
        return [r for r in self.requests[since:] if (name is None or r.name == name)
                and (method is None or r.method == method.upper())
                and (path_prefix is None or r.path.startswith(path_prefix))]

    def writes(self, since: int = 0) -> list[RecordedRequest]:
        return [r for r in self.requests[since:] if r.is_write]

    def _forget_traffic(self) -> None:
        with self._lock:
            self._requests.clear()
            self._faults.clear()
            self._window.clear()
            self._export_window.clear()
            self._search_export_window.clear()
        self._latency = 0.0

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _admit(self, name: str) -> tuple[JsonReply | None, dict[str, str]]:
        """Count the request against the rolling window (and the exports' own): a 429 when over, the headers."""
        now = time.monotonic()
        with self._lock:
            limited: str | None = None
            windows = [(self._window, self.rate_limit, self.rate_window, RATE_LIMITED)]
            if name.startswith("incremental_"):
                windows.append((self._export_window, self.incremental_limit, 60.0, EXPORT_LIMITED))
            elif name == "search_export":
                windows.append((self._search_export_window, self.search_export_limit, 60.0, SEARCH_EXPORT_LIMITED))
            wait = 0.0
            for window, limit, span, text in windows:
                while window and window[0] <= now - span:
                    window.popleft()
                if len(window) >= limit and limited is None:
                    limited, wait = text, window[0] + span - now
            if limited is None:
                for window, *_ in windows:
                    window.append(now)
            reset = (self._window[0] + self.rate_window - now) if self._window else self.rate_window
            remaining = str(max(0, self.rate_limit - len(self._window)))
            headers = {"X-Rate-Limit": str(self.rate_limit), "X-Rate-Limit-Remaining": remaining,
                       "ratelimit-limit": str(self.rate_limit), "ratelimit-remaining": remaining,
                       "ratelimit-reset": str(max(1, math.ceil(reset)))}
        if limited is None:
            return None, headers
        return JsonReply(429, limited, {"Retry-After": str(max(1, math.ceil(wait)))}), headers


def fault_reply(fault: Fault) -> JsonReply:
    headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
    if fault.body is not None:
        return JsonReply(fault.status, fault.body, headers)
    if fault.status == 429:
        return JsonReply(429, RATE_LIMITED, headers)
    try:
        phrase = HTTPStatus(fault.status).phrase
    except ValueError:
        phrase = "Injected failure"
    return JsonReply(fault.status, {"error": phrase.replace(" ", ""), "description": phrase}, headers)
