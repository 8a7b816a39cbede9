"""The destination interface: what a sync asks of a place it writes to.

A destination sends one batch per call and answers per record, so the engine can advance each key's
hash on its own. It signals trouble with two exceptions: :class:`TransientError` (retry the same batch
later: 429, 5xx, timeouts, connection resets; ``rate_limited`` waits are not failures) and
:class:`BatchRejected` (the request itself was refused, e.g. HTTP 400 for a whole batch: the engine
splits the batch to find the record at fault).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

Operation = Literal["upsert", "insert", "update", "delete"]


@dataclass(slots=True)
class Record:
    """One record to write (``fields`` is None for deletes).

    :param key: the key's text form (the state store's key).
    :param key_values: the key columns' values, in primary-key order.
    :param fields: the mapped destination fields.
    :param row_hash: the hash of the mapped fields (the idempotency key is built from it).
    :param ref: the destination's own id for the record, when a previous write returned one.
    :param stored: the state store has a row for this key (False: its first confirmation is a plain insert).
    :param write_id: this write's id: the run's, or that of an earlier write of the key that may have
        reached the destination unconfirmed (a re-send then carries the same idempotency key).
    :param pending: that earlier write was started and never answered (a run killed mid-write): a destination
        whose writes outlive the request (a Bulk job) waits for them before writing newer values.
    """

    key: str
    key_values: tuple[Any, ...]
    fields: dict[str, Any] | None
    row_hash: str | None
    ref: str | None = None
    stored: bool = True
    write_id: str = ""
    pending: bool = False


@dataclass(frozen=True, slots=True)
class Outcome:
    """The destination's answer for one record: ``ok``, ``missing`` (update of an absent record) or an error."""

    status: Literal["ok", "missing", "error"] = "ok"
    error: str | None = None
    ref: str | None = None


OK = Outcome()


class TransientError(Exception):
    """Try the same batch again later.

    :param retry_after: seconds the destination asked us to wait (``Retry-After``/rate-limit headers).
    :param rate_limited: a rate-limit answer (429): waiting is expected, not a failed attempt.
    """

    def __init__(self, message: str, retry_after: float | None = None, rate_limited: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.rate_limited = rate_limited


class DestinationFailed(Exception):
    """Stop the sync: no batch can succeed (bad credentials, an endpoint that does not exist, ...)."""


class BatchRejected(Exception):
    """The destination refused the request as a whole (a 4xx for the batch): split it to isolate records.

    :param status: the HTTP status, when the refusal was one (a 404 tells "no such record" to readers).
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class DestinationClient(ABC):
    """A place a sync writes to.

    Subclasses set ``name`` (for logs and errors), ``max_batch`` (the most records one request takes),
    ``operations`` (what they can do) and implement :meth:`send`; :meth:`read` is optional (dry runs show
    field-level diffs against it). ``send`` is called from several threads at once.
    """

    name: ClassVar[str] = "destination"
    max_batch: ClassVar[int] = 100
    operations: ClassVar[frozenset[str]] = frozenset({"upsert", "insert", "update", "delete"})
    plans_refs: ClassVar[bool] = False  # planned_ref() gives something (else it is not called)

    def preflight(self, fields: Sequence[str], mode: str) -> list[str]:
        """Problems that make the sync pointless before it starts (e.g. a required field is not mapped)."""
        return []

    def fingerprint(self) -> Any:
        """What identifies the destination's configuration: records are re-sent when it changes."""
        return type(self).__name__

    @abstractmethod
    def send(self, op: Operation, records: Sequence[Record]) -> list[Outcome]:
        """Write one batch; return one Outcome per record, in order."""

    def planned_ref(self, record: Record) -> str | None:
        """The ref the record will have once written, if known before sending: kept with its write-ahead
        mark, so that a record a killed run may have created can still be deleted by mirror."""
        return None

    def read(self, records: Sequence[Record]) -> dict[str, dict[str, Any] | None] | None:
        """The destination's current fields for these keys (None: this destination cannot be read)."""
        return None

    def requests_for(self, op: Operation, records: int, batch_size: int) -> int:
        """Requests that sending ``records`` records costs (for dry-run estimates)."""
        return -(-records // batch_size)

    def close(self) -> None:  # noqa: B027 - optional hook, most destinations hold nothing to release
        """Release connections."""
