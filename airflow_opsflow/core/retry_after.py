"""The one reader of HTTP ``Retry-After`` headers (sync transport, Jira notifier, ...).

RFC 9110 (section 10.2.3) allows delay-seconds (``120``) or an HTTP-date (``Wed, 21 Oct 2015 07:28:00 GMT``).
A header we cannot read counts as absent, so the caller falls back to its own back-off. The caller names the
longest wait it would honour: a server's ``Retry-After: 99999999999`` must not park a worker for centuries.
No Airflow import: the engines use it too.
"""

from __future__ import annotations

import math
import re
import time
from datetime import UTC
from email.utils import parsedate_to_datetime

# RFC delay-seconds is 1*DIGIT; a decimal fraction is tolerated (we always accepted one). ASCII only: float()
# would also read "٣", "1_0", "1e3", "nan", "-5".
_DELAY_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def parse_retry_after(value: str | None, *, maximum: float, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait, between 0 and ``maximum``; None when absent or unreadable.

    :param value: the header's value (None when the answer had none).
    :param maximum: the longest wait returned; longer ones are cut to it.
    :param now: the epoch time an HTTP-date is counted from (default: the clock). A date in the past is 0.
    """
    if not isinstance(value, str):
        return None
    value = value.strip()
    if not value:
        return None
    if _DELAY_SECONDS.fullmatch(value):
        seconds = float(value)  # inf for a few hundred digits: cut to maximum below
    else:
        try:
            when = parsedate_to_datetime(value)
            if when.tzinfo is None:  # asctime and "-0000" dates carry no zone; an HTTP-date is always GMT
                when = when.replace(tzinfo=UTC)
            seconds = when.timestamp() - (time.time() if now is None else now)
        except (TypeError, ValueError, OverflowError, IndexError):  # not a date, or one datetime cannot hold
            return None
    if math.isnan(seconds):
        return None
    return min(max(0.0, seconds), maximum)
