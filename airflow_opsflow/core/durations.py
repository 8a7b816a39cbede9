"""Durations as people write them in check specs: ``"2h"``, ``"1d 6h"``, ``"PT90M"``, ``"500ms"``, seconds."""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Any

# Longer than any freshness, SLA or reminder a check can mean (and far below timedelta's limit).
MAX_DURATION = timedelta(days=5 * 366)
# A statement timeout is sent in milliseconds: below 1 ms it would round to 0, "no timeout"; above
# PostgreSQL's limit (2^31 - 1 ms, about 24.8 days) the server refuses it.
MIN_STATEMENT_TIMEOUT = timedelta(milliseconds=1)
MAX_STATEMENT_TIMEOUT = timedelta(days=24)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(
    r"(\d+(?:\.\d+)?)\s*(milliseconds?|msecs?|ms|seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h|days?|d|weeks?|w)\b",
    re.IGNORECASE,
)
_ISO = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$", re.IGNORECASE)


def parse_duration(value: Any, maximum: timedelta = MAX_DURATION) -> timedelta:
    """Parse a positive, finite duration of at most ``maximum``; raise ``ValueError`` naming the
    accepted forms otherwise (never ``OverflowError``: ``.inf`` and ``10**40`` are errors too)."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int) and not isinstance(value, bool):
        # Compared as an integer first: a huge one cannot even be converted to a float.
        seconds = float(value) if abs(value) <= 10**15 else math.inf if value > 0 else -math.inf
    elif isinstance(value, float):
        seconds = value
    elif isinstance(value, str):
        seconds = _parse_text(value.strip())
    else:
        raise ValueError(f"expected a duration such as '2h', got {value!r}")
    if math.isnan(seconds):
        raise ValueError(f"expected a duration such as '2h', got {value!r}")
    if seconds <= 0:
        raise ValueError(f"a duration must be positive, got {value!r}")
    if seconds > maximum.total_seconds():
        raise ValueError(f"duration {_shown(value)} is too long (at most {format_duration(maximum)})")
    delta = timedelta(seconds=seconds)
    if not delta:
        raise ValueError(f"duration {_shown(value)} rounds to 0 (durations count microseconds at most)")
    return delta


def parse_statement_timeout(value: Any) -> timedelta:
    """A statement timeout: a duration from 1 ms (it must never round down to 0, "no timeout") to 24 days."""
    timeout = parse_duration(value, MAX_STATEMENT_TIMEOUT)
    if timeout < MIN_STATEMENT_TIMEOUT:
        raise ValueError(f"statement timeout {_shown(value)} is below 1 ms: databases count it in "
                         "milliseconds and it would round to 0, which means no timeout at all")
    return timeout


def _shown(value: Any) -> str:
    text = repr(value) if not isinstance(value, int) or abs(value) < 10**24 else "<a huge number>"
    return text if len(text) <= 60 else text[:57] + "..."


def _parse_text(text: str) -> float:
    if len(text) > 200:
        raise ValueError(f"cannot read duration {text[:40]!r}...: use e.g. '30m', '2h', '1d 6h', 'PT2H' or seconds")
    iso = _ISO.match(text)
    if iso and any(iso.groups()):
        d, h, m, s = (float(g) if g else 0.0 for g in iso.groups())
        return d * 86400 + h * 3600 + m * 60 + s
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if text[pos:match.start()].strip(" ,"):
            break
        unit = match.group(2).lower()
        total += float(match.group(1)) * (0.001 if unit.startswith(("ms", "milli")) else _UNITS[unit[0]])
        pos = match.end()
    else:
        if pos and not text[pos:].strip():
            return total
    raise ValueError(f"cannot read duration {text!r}: use e.g. '30m', '2h', '1d 6h', 'PT2H' or seconds")


def format_duration(delta: timedelta) -> str:
    """``timedelta(hours=26, minutes=5)`` -> ``"1d 2h 5m"`` (seconds shown only under a minute)."""
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return f"{seconds}s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        n, seconds = divmod(seconds, size)
        if n:
            parts.append(f"{n}{unit}")
    return " ".join(parts)
