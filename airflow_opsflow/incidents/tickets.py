"""One ticket per incident, in whichever ticketing system the team uses: the lifecycle every backend shares.

A route (:class:`TicketRoute`) keeps the guarantees; a backend (:class:`TicketBackend`) only speaks to
its system (Jira, Zendesk, Salesforce, HubSpot). Every ticket carries a marker derived from the incident's
fingerprint (a label, a tag, an external id, a property), so it is found again rather than duplicated::

    new ──▶ remembered by this delivery (refs)? ─────────────────────────────────────────▶ done
     │ no
     ▼
    the previous occurrence's ticket, read by id (consistent, unlike search): ours, not won't-fix,
    open or closed within the reopen window?
     │ no, or closed
     ▼
    search by marker (one batched search per run; a fresh one after a failed try; known ids passed
    where the system can make them visible before its index catches up); an open ticket wins
     │ nothing, and an earlier try's create is unconfirmed (its answer lost)
     ▼
    search again until visible, up to ``unconfirmed_create_wait`` (search lags behind writes)
     │ found: reopen it if closed (a system that cannot reopen it opens a follow-up), comment
     │ not found: create, never re-sent by the client (a lost answer would be a duplicate); a create
     │ refused unprocessed (429) raises TicketNotCreated and the next try creates it
    escalated / updated / reminder ──▶ comment on the ticket (found by search if not remembered)
    resolved ──▶ close it with a comment, unless someone already closed it

Nothing here imports a client library or Airflow: backends are opened by the route's shell subclass.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_opsflow.incidents.route import AlertRoute

if TYPE_CHECKING:
    from airflow_opsflow.incidents.alert import Alert
    from airflow_opsflow.incidents.repo import Delivery

KNOWN_IDS = 20  # ticket ids remembered per incident (passed to searches that can reconcile them)


class TicketNotCreated(Exception):
    """The system refused the create unprocessed (e.g. rate limited): no ticket exists that a search could find."""


@dataclass(frozen=True)
class Ticket:
    """A ticket as the lifecycle needs to see it.

    :param id: what reads it back (``read``): Jira's key, Zendesk's and HubSpot's id, a Case's Id.
    :param key: what people see and the sensor waits on (Jira ``OPS-12``, Zendesk ``#123``...).
    :param url: where to open it.
    :param closed: resolved/solved/closed.
    :param closed_at: when it was closed (None if unknown or open).
    :param ours: it carries this route's marker and lives where this route files tickets.
    :param wont_fix: closed in a way that says "do not reopen" (Jira's Won't Fix): left alone.
    :param reopenable: a closed ticket that can be reopened (a closed Zendesk ticket cannot: follow-up).
    :param raw: the backend's own object, for its own use.
    """

    id: str
    key: str
    url: str
    closed: bool
    closed_at: datetime | None = None
    ours: bool = True
    wont_fix: bool = False
    reopenable: bool = True
    raw: Any = None


class TicketBackend(ABC):
    """One ticketing system, as :class:`TicketRoute` uses it. Raise on failure: the delivery stays pending
    and the next try or run goes on from what the state store remembered."""

    @abstractmethod
    def search(self, fingerprints: list[str], known_ids: list[str], single: bool) -> dict[str, Ticket | None]:
        """The ticket of each fingerprint: open first, else closed within the reopen window and not won't-fix;
        None when there is none. ``known_ids``: tickets created before, for systems whose search can be told
        about them; ``single``: a search for one incident (a backend may cap its page size)."""

    @abstractmethod
    def read(self, ref: Mapping[str, Any], fingerprint: str) -> Ticket | None:
        """The ticket read by its id or key (``ref``: what :meth:`TicketRoute._refs` remembered), consistently
        (not through search); None when it is gone or cannot be seen."""

    def read_many(self, refs: list[Mapping[str, Any]]) -> dict[str, Ticket | None]:
        """Several tickets read at once, consistently (by id, not through search), by :func:`ref_key`; None
        for a ticket that is gone or cannot be seen. No fingerprint: ``ours`` is not judged. Backends whose
        system reads a batch in one request override this loop over :meth:`read` (TicketSensor's pokes)."""
        return {ref_key(ref): self.read(ref, "") for ref in refs}

    @abstractmethod
    def create(self, fingerprint: str, alert: Alert) -> Ticket:
        """A new ticket for the incident, carrying its marker. Not retried by the client; raise
        :class:`TicketNotCreated` when the system refused it unprocessed."""

    @abstractmethod
    def comment(self, ticket: Ticket, alert: Alert) -> None:
        """Add the alert (escalated, updated, reminder, back again) as a comment."""

    @abstractmethod
    def close(self, ticket: Ticket, alert: Alert) -> None:
        """Close it, with the resolution as its comment."""

    @abstractmethod
    def reopen(self, ticket: Ticket) -> None:
        """Reopen a closed ticket (``reopenable``)."""

    def follow_up(self, closed: Ticket, fingerprint: str, alert: Alert) -> Ticket:
        """A new ticket for an incident whose ticket cannot be reopened; backends link it to ``closed``."""
        return self.create(fingerprint, alert)


class TicketRoute(AlertRoute):
    """Base of the ticket routes: the lifecycle above over a :class:`TicketBackend` from :meth:`backend`.

    :param reopen_window_days: a ticket closed this many days ago is reopened rather than a new one
        created when its incident comes back (default 7; 0 always creates).
    :param unconfirmed_create_wait: seconds to keep searching for a ticket whose create was not
        confirmed before creating it again (search lags behind writes).

    Other parameters: see :class:`~airflow_opsflow.incidents.route.AlertRoute`.
    """

    kind = "ticket"

    def __init__(self, *, reopen_window_days: int = 7, unconfirmed_create_wait: float = 30.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reopen_window_days = reopen_window_days
        self.unconfirmed_create_wait = unconfirmed_create_wait

    @abstractmethod
    def backend(self) -> TicketBackend:
        """The system's backend, opened when the route delivers (connections are read then, not at parse)."""

    def prepare(self, deliveries: list[Delivery], refs: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        """One search for the tickets of every new incident in this run, and one batched read of the tickets
        of every incident it resolves, instead of one of each per incident."""
        self._prefetched: dict[str, Ticket | None] = {}
        self._read: dict[str, Ticket | None] = {}
        self._backend: TicketBackend | None = self.backend() if deliveries else None
        if self._backend is None:
            return
        fingerprints = sorted({d.fingerprint for d in deliveries if d.transition == "new"})
        if fingerprints:
            self._prefetched = self._backend.search(fingerprints, [], single=False)
        to_read: list[Mapping[str, Any]] = [
            {"id": r.get("id") or r["key"], "key": r["key"]} for d in deliveries if d.transition == "resolved"
            if (r := (refs or {}).get(d.fingerprint)) and r.get("key")]
        if len(to_read) > 1:  # one alone is read when it is delivered, as before
            self._read = self._backend.read_many(to_read)

    def deliver(self, alert: Alert, delivery: Delivery, refs: dict[str, Any]) -> dict[str, Any]:
        backend = getattr(self, "_backend", None) or self.backend()
        fp = delivery.fingerprint
        if alert.kind == "new":
            return self._open(backend, alert, delivery, refs)
        ticket: Ticket | None
        if refs.get("key"):  # a comment needs no read; a resolution reads the ticket's state below
            ticket = Ticket(id=str(refs.get("id") or refs["key"]), key=str(refs["key"]), url=str(refs.get("url", "")),
                            closed=False)
        else:
            ticket = self._search(backend, fp, refs)
        if ticket is None:  # never created (e.g. only the resolution reached us): nothing to update
            return refs
        if alert.kind == "resolved":
            read = getattr(self, "_read", {})
            ref = {"id": ticket.id, "key": ticket.key}
            # used once: a later delivery of the same ticket in this pass (reopened meanwhile) reads it again
            current = read.pop(ticket.key) if ticket.key in read else backend.read(ref, fp)
            if current is not None and not current.closed:  # closed by someone already (or gone): leave it
                backend.close(current, alert)
        else:
            backend.comment(ticket, alert)
        return self._refs(ticket, refs)

    # -- new incident: find, reopen or create ------------------------------------------------------------

    def _open(self, backend: TicketBackend, alert: Alert, delivery: Delivery, refs: dict[str, Any]) -> dict[str, Any]:
        if refs.get("key"):  # created by an earlier try of this delivery and confirmed
            return refs
        fp = delivery.fingerprint
        found = previous = self._previous(backend, fp, refs)
        if previous is None or previous.closed:  # an open ticket with the marker wins over a reopen
            searched = self._search(backend, fp, refs, fresh=bool(delivery.attempts))
            if previous is None or (searched is not None and searched.id != previous.id and not searched.closed):
                found = searched
        # An earlier try's create may have happened unanswered, unless the system refused it.
        unconfirmed = delivery.attempts and not (delivery.last_error or "").startswith(TicketNotCreated.__name__)
        if found is None and unconfirmed:
            found = self._search_until_visible(backend, fp, refs)
        if found is None:
            return self._refs(backend.create(fp, alert), refs)
        if found.closed and not found.reopenable:
            return self._refs(backend.follow_up(found, fp, alert), refs)
        if found.closed:
            backend.reopen(found)
            getattr(self, "_read", {}).pop(found.key, None)  # what prepare read of it is stale now
        backend.comment(found, alert)
        return self._refs(found, refs)

    def _previous(self, backend: TicketBackend, fingerprint: str, refs: dict[str, Any]) -> Ticket | None:
        """The previous occurrence's ticket if it is still the one to use: ours, not won't-fix, open or
        closed within the reopen window."""
        previous = refs.get("previous") or {}
        if not (previous.get("id") or previous.get("key")):
            return None
        ticket = backend.read(previous, fingerprint)
        if ticket is None or not ticket.ours or ticket.wont_fix:
            return None
        if ticket.closed and not self._within_window(ticket):
            return None
        return ticket

    def _within_window(self, ticket: Ticket) -> bool:
        if self.reopen_window_days <= 0 or ticket.closed_at is None:
            return False
        return datetime.now(UTC) - ticket.closed_at <= timedelta(days=self.reopen_window_days)

    def _search(self, backend: TicketBackend, fingerprint: str, refs: dict[str, Any],
                fresh: bool = False) -> Ticket | None:
        prefetched = getattr(self, "_prefetched", {})
        known = known_ids(refs)
        if not fresh and fingerprint in prefetched and not known:
            return prefetched[fingerprint]
        return backend.search([fingerprint], known, single=True).get(fingerprint)

    def _search_until_visible(self, backend: TicketBackend, fingerprint: str, refs: dict[str, Any]) -> Ticket | None:
        """After a create whose answer was lost: the ticket may exist but not be searchable yet."""
        # A poll against a deadline, not a retry of a failure: hand-written (tenacity would need a first sleep).
        deadline = time.monotonic() + self.unconfirmed_create_wait
        delay = 1.0
        while time.monotonic() < deadline:
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            found = self._search(backend, fingerprint, refs, fresh=True)
            if found is not None:
                return found
            delay *= 2
        return None

    @staticmethod
    def _refs(ticket: Ticket, refs: dict[str, Any]) -> dict[str, Any]:
        ids = list(dict.fromkeys([*known_ids(refs), ticket.id]))[-KNOWN_IDS:]
        return {"key": ticket.key, "id": ticket.id, "url": ticket.url, "known_ids": ids}


def ref_key(ref: Mapping[str, Any]) -> str:
    """What :meth:`TicketBackend.read_many` answers a reference under: its ``key``, else its ``id``."""
    return str(ref.get("key") or ref.get("id") or "")


def known_ids(refs: dict[str, Any]) -> list[str]:
    """Ids of the tickets this incident had, this occurrence's and the previous one's."""
    previous = refs.get("previous") or {}
    return [str(i) for i in [*previous.get("known_ids", []), *refs.get("known_ids", [])]]
