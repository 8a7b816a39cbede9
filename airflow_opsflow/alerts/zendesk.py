"""ZendeskTicket: one Zendesk ticket per incident, found again rather than duplicated, solved with it.

The lifecycle is :class:`~airflow_opsflow.incidents.tickets.TicketRoute`'s; this module speaks Zendesk's
Support API through Airflow's official Zendesk provider (``ZendeskHook``, ``zenpy``): a ticket carries the
incident's marker as its ``external_id`` and as a tag. One incident's tickets are listed by
``external_id`` (a read of the database, consistent); the run's batched look-up uses the search API, which
lags behind writes, so it serves only incidents with no ticket remembered. Comments are private (internal
notes); resolution solves the ticket. A *closed* ticket (solved long enough, by Zendesk's automation)
cannot be reopened or changed: an incident that comes back opens a follow-up ticket linked to it
(``via_followup_source_id``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_opsflow.core.jinja import with_placeholders
from airflow_opsflow.core.timestamps import parse_time
from airflow_opsflow.incidents import ticket_render
from airflow_opsflow.incidents.tickets import Ticket, TicketBackend, TicketRoute, ref_key

if TYPE_CHECKING:
    from zenpy import Zenpy

    from airflow_opsflow.incidents.alert import Alert

T = TypeVar("T")
CLOSED = ("solved", "closed")
SEARCH_TERMS = 50  # markers per search query (keeps the query string short)
SHOW_MANY = 100  # ids per tickets/show_many (Zendesk's limit)


def ticket_marker(fingerprint: str) -> str:
    return f"opsflow-{fingerprint[:24]}"


class ZendeskTicket(TicketRoute):
    """Open, update and solve a Zendesk ticket per incident.

    :param conn_id: a ``zendesk`` connection (Airflow's Zendesk provider: host = ``<subdomain>.zendesk.com``,
        login = the agent's email, an API token in the extra ``token`` or the password with ``use_token``).
    :param priorities: severity -> priority (``urgent``, ``high``, ``normal``, ``low``; default error: high,
        warn: normal).
    :param ticket_type: ``problem``, ``incident``, ``question`` or ``task`` (default ``incident``).
    :param tags: more tags on every ticket (``opsflow`` and the incident's marker are always there).
    :param group_id: the group new tickets go to.
    :param assignee_id: the agent new tickets are assigned to.
    :param custom_fields: ``{field id: value}`` for new tickets.
    :param public_comments: post updates as public replies rather than internal notes (default False: the
        requester of an opsflow ticket is the API user).
    :param rate_limit_wait: seconds zenpy may spend waiting out Zendesk's ``Retry-After`` in one dispatch or
        sensor poke (default 120; zenpy's ``ratelimit_budget``, per API it uses); past it the delivery fails and stays
        pending for the next try or run, rather than a 429 storm holding the task for as long as Zendesk asks.

    Templated (Jinja, from params, Variables...): ``conn_id``, ``priorities``, ``ticket_type``, ``tags``,
    ``group_id``, ``assignee_id`` (rendered to a number), ``custom_fields`` (their values).

    Other parameters: see :class:`~airflow_opsflow.incidents.tickets.TicketRoute` and
    :class:`~airflow_opsflow.incidents.route.AlertRoute`.
    """

    kind = "zendesk"
    template_fields: tuple[str, ...] = ("conn_id", "priorities", "ticket_type", "tags", "group_id", "assignee_id",
                                        "custom_fields")

    def __init__(self, *, conn_id: str = "zendesk_default", priorities: dict[str, str] | None = None,
                 ticket_type: str = "incident", tags: tuple[str, ...] = (), group_id: int | None = None,
                 assignee_id: int | None = None, custom_fields: dict[int, Any] | None = None,
                 public_comments: bool = False, rate_limit_wait: float = 120.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if rate_limit_wait < 1:
            raise ValueError(f"rate_limit_wait must be at least 1 second, got {rate_limit_wait}")
        _check_tags(tags)
        self.conn_id = conn_id
        self.priorities = priorities or {"error": "high", "warn": "normal"}
        self.ticket_type = ticket_type
        self.tags = tuple(tags)
        self.group_id = group_id
        self.assignee_id = assignee_id
        self.custom_fields = dict(custom_fields or {})
        self.public_comments = public_comments
        self.rate_limit_wait = rate_limit_wait

    def where(self) -> str:
        return f"{self.conn_id}/tickets"

    def backend(self) -> ZendeskBackend:
        from airflow.providers.zendesk.hooks.zendesk import ZendeskHook

        _check_tags(self.tags)  # again as rendered: a template may have produced a space
        hook = ZendeskHook(zendesk_conn_id=self.conn_id)
        host = str(hook.get_connection(self.conn_id).host or "").rstrip("/")
        scheme = os.environ.get("ZENPY_FORCE_SCHEME", "https")  # zenpy's own override (test doubles)
        client = hook.get_conn()
        # zenpy answers a read by id from its object cache (30 s for tickets, filled by searches too): read()
        # must be consistent, and TicketSensor polls the same ticket.
        client.disable_caching()
        return ZendeskBackend(self, client, f"{scheme}://{host.split('://')[-1]}")


class ZendeskBackend(TicketBackend):
    """Zendesk for :class:`ZendeskTicket`."""

    def __init__(self, route: ZendeskTicket, client: Zenpy, agent_url: str) -> None:
        self.route = route
        self.client = client
        self.agent_url = agent_url
        self._fresh_budget()

    def _fresh_budget(self) -> None:
        """zenpy's ``ratelimit_budget`` (seconds of Retry-After it may wait, per API) only ever counts down: set
        anew for each dispatch and each sensor poke. The hook sets none: zenpy would wait out any 429 storm."""
        for api in vars(self.client).values():
            if hasattr(api, "ratelimit_budget"):
                api.ratelimit_budget = int(self.route.rate_limit_wait)

    def search(self, fingerprints: list[str], known_ids: list[str], single: bool) -> dict[str, Ticket | None]:
        markers = {ticket_marker(fp): fp for fp in fingerprints}
        candidates: dict[str, list[Ticket]] = {fp: [] for fp in fingerprints}
        if single:  # listed by external_id: consistent, unlike search
            [marker] = markers
            records = self._do("listing tickets by external_id", lambda: list(self.client.tickets(external_id=marker)))
        else:
            names = sorted(markers)
            records = []
            for start in range(0, len(names), SEARCH_TERMS):
                query = "type:ticket " + " ".join(f"tags:{m}" for m in names[start:start + SEARCH_TERMS])
                records += self._search(query)
        for record in records:
            owner = markers.get(str(getattr(record, "external_id", "") or ""))
            if owner is not None:
                candidates[owner].append(self._ticket(record, owner))
        return {fp: self._choose(tickets) for fp, tickets in candidates.items()}

    def read(self, ref: Mapping[str, Any], fingerprint: str) -> Ticket | None:
        from zenpy.lib.exception import RecordNotFoundException

        raw = str(ref.get("id") or "")
        if not raw.isdigit() or int(raw) == 0:  # Zendesk's ids are positive numbers: nothing else is a ticket
            return None
        try:
            record = self._do("reading a ticket", lambda: self.client.tickets(id=int(raw)))
        except RecordNotFoundException:
            return None
        return self._ticket(record, fingerprint)

    def read_many(self, refs: list[Mapping[str, Any]]) -> dict[str, Ticket | None]:
        """``tickets/show_many``: one request per ``SHOW_MANY`` tickets; a ticket Zendesk does not know (or
        deleted) is left out of its answer."""
        self._fresh_budget()  # the sensor keeps this backend for all pokes of a try
        by_id: dict[int, list[str]] = {}
        out: dict[str, Ticket | None] = {}
        for ref in refs:
            out[ref_key(ref)] = None
            raw = str(ref.get("id") or "")
            if raw.isdigit() and int(raw) > 0:  # as in read: anything else names no ticket
                by_id.setdefault(int(raw), []).append(ref_key(ref))
        ids = list(by_id)
        for start in range(0, len(ids), SHOW_MANY):
            for record in self._show_many(ids[start:start + SHOW_MANY]):
                ticket = self._ticket(record, "")
                for key in by_id.get(int(ticket.id), []):
                    out[key] = ticket
        return out

    def create(self, fingerprint: str, alert: Alert) -> Ticket:
        return self._create(fingerprint, alert, None)

    def follow_up(self, closed: Ticket, fingerprint: str, alert: Alert) -> Ticket:
        return self._create(fingerprint, alert, int(closed.id))

    def comment(self, ticket: Ticket, alert: Alert) -> None:
        self._update(ticket, alert, None)

    def close(self, ticket: Ticket, alert: Alert) -> None:
        self._update(ticket, alert, "solved")

    def reopen(self, ticket: Ticket) -> None:
        from zenpy.lib.api_objects import Ticket as ZTicket

        self._do("reopening a ticket", lambda: self.client.tickets.update(ZTicket(id=int(ticket.id), status="open")))

    # -- Zendesk specifics ---------------------------------------------------------------------------------

    def _create(self, fingerprint: str, alert: Alert, follow_up_of: int | None) -> Ticket:
        from zenpy.lib.api_objects import Comment, CustomField
        from zenpy.lib.api_objects import Ticket as ZTicket

        r = self.route
        _, html = ticket_render.body(alert, r.sample_columns, r.mask_columns, r.sample_rows)
        marker = ticket_marker(fingerprint)
        ticket = ZTicket(subject=ticket_render.summary(alert), comment=Comment(html_body=html, public=False),
                         external_id=marker, tags=["opsflow", marker, *r.tags], type=r.ticket_type,
                         priority=r.priorities.get(alert.severity))
        if r.group_id is not None:
            ticket.group_id = _zendesk_id(r.group_id, "group_id")
        if r.assignee_id is not None:
            ticket.assignee_id = _zendesk_id(r.assignee_id, "assignee_id")
        if r.custom_fields:
            ticket.custom_fields = [CustomField(id=k, value=v) for k, v in r.custom_fields.items()]
        if follow_up_of is not None:
            ticket.via_followup_source_id = follow_up_of
        audit = self._do("creating a ticket", lambda: self.client.tickets.create(ticket))
        return self._ticket(audit.ticket, fingerprint)

    def _update(self, ticket: Ticket, alert: Alert, status: str | None) -> None:
        from zenpy.lib.api_objects import Comment
        from zenpy.lib.api_objects import Ticket as ZTicket

        r = self.route
        _, html = ticket_render.body(alert, r.sample_columns, r.mask_columns, r.sample_rows)
        update = ZTicket(id=int(ticket.id), comment=Comment(html_body=html, public=r.public_comments))
        if status is not None:
            update.status = status
        self._do("updating a ticket", lambda: self.client.tickets.update(update))

    def _show_many(self, ids: list[int]) -> list[Any]:
        return self._do("reading tickets", lambda: list(self.client.tickets(ids=ids)))

    def _search(self, query: str) -> list[Any]:
        return self._do("searching tickets", lambda: list(self.client.search(query)))

    def _do(self, what: str, action: Callable[[], T]) -> T:
        """One API call; zenpy's and requests' errors say which system and connection failed, and doing what."""
        from zenpy.lib.exception import RecordNotFoundException

        try:
            return action()
        except RecordNotFoundException:  # the caller's to judge (a deleted ticket)
            raise
        except Exception as e:
            detail = " ".join(str(e).split())[:500]
            raise RuntimeError(f"Zendesk ({self.route.conn_id}) failed {what}: {type(e).__name__}: {detail}") from e

    def _ticket(self, record: Any, fingerprint: str) -> Ticket:
        status = str(getattr(record, "status", "") or "")
        closed_at = parse_time(getattr(record, "updated_at", None)) if status in CLOSED else None
        return Ticket(id=str(record.id), key=f"Zendesk #{record.id}", url=f"{self.agent_url}/agent/tickets/{record.id}",
                      closed=status in CLOSED, closed_at=closed_at,
                      ours=getattr(record, "external_id", None) == ticket_marker(fingerprint),
                      reopenable=status != "closed", raw=record)

    def _choose(self, tickets: list[Ticket]) -> Ticket | None:
        """Open first (the newest), else the newest closed within the reopen window."""
        tickets = sorted(tickets, key=lambda t: int(t.id), reverse=True)
        open_ = [t for t in tickets if not t.closed]
        if open_:
            return open_[0]
        window = self.route.reopen_window_days
        recent = [t for t in tickets if window > 0 and t.closed_at is not None
                  and (datetime.now(UTC) - t.closed_at).days < window]
        return recent[0] if recent else None


def _check_tags(tags: tuple[str, ...] | list[str]) -> None:
    # A Jinja expression may hold spaces ("{{ params.team }}"): judged by what it renders to.
    bad = [t for t in tags if " " in with_placeholders(str(t))]
    if bad:
        raise ValueError(f"Zendesk tags cannot contain spaces: {bad}")


def _zendesk_id(value: int | str, field: str) -> int:
    """A group or agent id; a template renders it as text ("123")."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip()
    if not text.isdigit():
        raise ValueError(f"ZendeskTicket {field} must be a number, got {text!r}")
    return int(text)
