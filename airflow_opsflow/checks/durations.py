"""Durations as people write them in check specs: ``"2h"``, ``"1d 6h"``, ``"PT90M"``, seconds."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(
    r"(\d+(?:\.\d+)?)\s*(seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h|days?|d|weeks?|w)\b", re.IGNORECASE
)
_ISO = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$", re.IGNORECASE)


def parse_duration(value: Any) -> timedelta:
    """Parse a positive duration; raise ``ValueError`` naming the accepted forms otherwise."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = _parse_text(value.strip())
    else:
        raise ValueError(f"expected a duration such as '2h', got {value!r}")
    if seconds <= 0:
        raise ValueError(f"a duration must be positive, got {value!r}")
    return timedelta(seconds=seconds)


def _parse_text(text: str) -> float:
    iso = _ISO.match(text)
    if iso and any(iso.groups()):
        d, h, m, s = (float(g) if g else 0.0 for g in iso.groups())
        return d * 86400 + h * 3600 + m * 60 + s
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if text[pos:match.start()].strip(" ,"):
            break
        total += float(match.group(1)) * _UNITS[match.group(2)[0].lower()]
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
