"""The state of one fake Zendesk account: records, the clock, ids, the change sequence and the search index.

Search sees an *index*, not the records: every write adds a snapshot (the record's JSON) that becomes
searchable ``search_delay`` seconds later, as Zendesk's search index lags live data. Until then a new ticket is
missing from results and an edited one matches, and is returned, in its previous state. Reads by id are fresh.
Every write also takes the next number of a change sequence, which orders the incremental exports.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from airflow_opsflow_testing.zendesk_schema import CustomField, JsonDict, Organization, Ticket, User, iso

Kind = Literal["ticket", "user", "organization"]
Record = Ticket | User | Organization


class ZendeskStore:
    """Records and bookkeeping; every public method takes :attr:`lock` (an RLock: the HTTP server is threaded)."""

    def __init__(self, public_url: Callable[[], str]) -> None:
        self.public_url = public_url
        self.lock = threading.RLock()
        self.search_delay = 0.0
        self.clock_offset = timedelta()
        self.fields: dict[str, dict[str, CustomField]] = {"organization": {}, "user": {}}
        self._field_ids = itertools.count(360000100001)
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.tickets: dict[int, Ticket] = {}
            self.users: dict[int, User] = {}
            self.organizations: dict[int, Organization] = {}
            self.seq: dict[tuple[Kind, int], int] = {}  # the last change of each record
            self._index: dict[tuple[Kind, int], list[tuple[float, JsonDict]]] = {}
            self._ticket_ids = itertools.count(1)
            self._ids = itertools.count(360000200001)  # users, organizations, comments, audits
            self._seq = itertools.count(1)

    # --- time and ids ------------------------------------------------------------------------------------

    def now(self) -> datetime:
        """The account's clock: UTC wall time (whole seconds, as Zendesk stamps) moved by ``advance``."""
        return (datetime.now(UTC) + self.clock_offset).replace(microsecond=0)

    def next_ticket_id(self) -> int:
        return next(self._ticket_ids)

    def next_id(self) -> int:
        return next(self._ids)

    def next_field_id(self) -> int:
        return next(self._field_ids)

    # --- writes and the index ----------------------------------------------------------------------------

    def commit(self, kind: Kind, record: Record, *, searchable_now: bool = False) -> None:
        """Record a write: the next change number, and a snapshot searchable after the delay."""
        with self.lock:
            key = (kind, record.id)
            self.seq[key] = next(self._seq)
            visible = 0.0 if searchable_now else time.monotonic() + self.search_delay
            self._index.setdefault(key, []).append((visible, self.document(kind, record)))

    def set_search_delay(self, seconds: float) -> None:
        """Set the lag; pending snapshots then become visible no later than ``seconds`` from now."""
        with self.lock:
            self.search_delay = max(0.0, seconds)
            latest = time.monotonic() + self.search_delay
            for versions in self._index.values():
                versions[:] = [(min(at, latest), doc) for at, doc in versions]

    def document(self, kind: Kind, record: Record) -> JsonDict:
        """The record's JSON, plus ``_text`` (what free-text search reads) and ``_kind``."""
        doc = record.render(self.public_url())
        doc["_kind"] = kind
        if isinstance(record, Ticket):
            doc["_text"] = " ".join([record.subject or "", *(c.body for c in record.comments)]).lower()
            doc["_solved_at"] = iso(record.solved_at)
        elif isinstance(record, User):
            doc["_text"] = f"{record.name} {record.email or ''} {record.notes or ''}".lower()
        else:
            doc["_text"] = f"{record.name} {record.details or ''} {record.notes or ''}".lower()
        if isinstance(record, Ticket) and record.organization_id in self.organizations:
            doc["_organization"] = self.organizations[record.organization_id].name.lower()
        return doc

    def indexed(self) -> list[JsonDict]:
        """The newest searchable snapshot of every record, in id order within each kind. Snapshots are never
        changed once taken, so they are shared, not copied: callers must not modify them."""
        now = time.monotonic()
        with self.lock:
            out = []
            for key in sorted(self._index):
                visible = next((doc for at, doc in reversed(self._index[key]) if at <= now), None)
                if visible is not None:
                    out.append(visible)
            return out

    def changed_since(self, kind: Kind, after_seq: int) -> list[tuple[int, Any]]:
        """(change number, record) of every record of ``kind`` whose last change is after ``after_seq``."""
        tables: dict[str, dict[int, Any]] = {"ticket": self.tickets, "user": self.users,
                                             "organization": self.organizations}
        table = tables[kind]
        with self.lock:
            pairs = [(self.seq[(kind, rid)], rec) for rid, rec in table.items() if self.seq[(kind, rid)] > after_seq]
            return sorted(pairs, key=lambda p: p[0])

    def field(self, kind: str, key: str) -> CustomField | None:
        return self.fields[kind].get(key)
