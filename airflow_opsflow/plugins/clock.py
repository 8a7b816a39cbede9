"""The API's "now": every answer carries it, and ages are measured from it. One place, so tests pin it."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    """The server's current time (aware, UTC)."""
    return datetime.now(UTC)
