"""The state store's timestamps: ISO-8601 text in UTC, as ``datetime.isoformat()`` writes it.

``2024-05-01T12:34:56.789012+00:00`` (the fraction only when there are microseconds): every row was written
in that shape, and the columns are sized for it (``VARCHAR(32)``), so it must not change. A naive datetime
means UTC, on the way in and out: the store is UTC, and the host's time zone must not leak into it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, overload


@overload
def to_text(at: datetime) -> str: ...


@overload
def to_text(at: None) -> None: ...


def to_text(at: datetime | None) -> str | None:
    """``at`` as the store's UTC text (naive: taken as UTC); None stays None."""
    if at is None:
        return None
    return (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).astimezone(UTC).isoformat()


def from_text(text: str | None) -> datetime | None:
    """The aware UTC datetime of a stored text (naive text: taken as UTC); None or empty: None."""
    if not text:
        return None
    at = datetime.fromisoformat(text)
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def parse_time(value: Any) -> datetime | None:
    """A vendor's timestamp (ISO-8601 with ``Z``, ``+00:00`` or ``+0000``, as Jira, HubSpot, Salesforce and
    Zendesk write them) as an aware UTC datetime; None when absent or unreadable (a ticket without one)."""
    if not value:
        return None
    try:
        return from_text(str(value))
    except ValueError:
        return None


def now_text() -> str:
    """The current time as the store's text."""
    return datetime.now(UTC).isoformat()
