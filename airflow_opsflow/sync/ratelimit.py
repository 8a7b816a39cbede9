"""One request budget per destination, shared by all sending threads.

A token bucket paces requests (``max_requests`` per ``per_seconds``); :meth:`RateLimiter.pause` stops
every thread until a deadline when the destination says so (``Retry-After``, a rate-limit window that
ran out); :meth:`RateLimiter.observe` reads the common rate-limit headers so we slow down *before* the
429 (``X-RateLimit-Remaining: 0`` + ``X-RateLimit-Reset``, HubSpot's ``X-HubSpot-RateLimit-*``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping


class RateLimiter:
    """Thread-safe pacing for one destination.

    :param max_requests: requests allowed per ``per_seconds`` (None: no pacing, only pauses).
    :param per_seconds: the window length.
    """

    def __init__(self, max_requests: int | None = None, per_seconds: float = 1.0) -> None:
        # Even pacing without bursts: a rolling window (HubSpot's 10 s) never sees more than its budget;
        # long windows keep a 10 % margin for other clients of the same account.
        margin = 0.9 if per_seconds > 1 else 1.0
        self.rate = (max_requests * margin / per_seconds) if max_requests else None
        self.capacity = 1.0
        self._tokens = self.capacity
        self._stamp = time.monotonic()
        self._paused_until = 0.0
        self._lock = threading.Lock()
        self.waited = 0.0  # seconds threads spent waiting (reported, never counted as failures)

    def acquire(self) -> None:
        """Block until a request may go out."""
        while True:
            with self._lock:
                now = time.monotonic()
                wait = self._paused_until - now
                if wait <= 0 and self.rate is not None:
                    self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
                    self._stamp = now
                    if self._tokens >= 1:
                        self._tokens -= 1
                        return
                    wait = (1 - self._tokens) / self.rate
                elif wait <= 0:
                    return
                self.waited += wait
            time.sleep(min(wait, 5.0))

    def pause(self, seconds: float) -> None:
        """Hold every thread for ``seconds`` (extends, never shortens, a pause in force)."""
        with self._lock:
            self._paused_until = max(self._paused_until, time.monotonic() + max(0.0, seconds))

    def observe(self, headers: Mapping[str, str]) -> None:
        """Pause until the window resets when the destination says the budget is spent."""
        lower = {k.lower(): v for k, v in headers.items()}
        remaining = lower.get("x-ratelimit-remaining") or lower.get("x-hubspot-ratelimit-remaining")
        if remaining is None:
            return
        try:
            if int(float(remaining)) > 0:
                return
        except ValueError:
            return
        reset = lower.get("x-ratelimit-reset")
        interval = lower.get("x-hubspot-ratelimit-interval-milliseconds")
        seconds = 1.0
        try:
            if reset is not None:
                value = float(reset)
                # Some APIs send an epoch timestamp, others the seconds left.
                seconds = value - time.time() if value > 1_000_000_000 else value
            elif interval is not None:
                seconds = float(interval) / 1000.0
        except ValueError:
            pass
        self.pause(min(max(seconds, 0.0), 300.0))
