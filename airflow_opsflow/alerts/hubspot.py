"""HubSpotTicket: one HubSpot ticket per incident (CRM v3 ``tickets``), found again rather than duplicated.

The lifecycle is :class:`~airflow_opsflow.incidents.tickets.TicketRoute`'s; this module speaks HubSpot:
the incident's marker is a ticket property (``opsflow_fingerprint`` by default, a single-line text property
you create once), its pipeline and stages come from the pipelines API (closed = a stage whose
``metadata.ticketState`` is ``CLOSED``), comments are notes associated to the ticket, and a ticket is linked
to the company or contact its incident's entity names when ``associate`` says how to find one.

HubSpot's search lags behind writes (seconds): tickets this incident had are read by id (consistent) when
the search does not show them, and after a create whose answer was lost the search is repeated for a while
before creating again. Creates are never re-sent by the client; a 429 (refused unprocessed) is waited out
(``Retry-After``) and sent again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from airflow_opsflow.core.timestamps import parse_time
from airflow_opsflow.incidents import ticket_render
from airflow_opsflow.incidents.tickets import Ticket, TicketBackend, TicketNotCreated, TicketRoute, ref_key

if TYPE_CHECKING:
    from tenacity import RetryCallState

    from airflow_opsflow.incidents.alert import Alert
    from airflow_opsflow.sync.destinations.transport import HttpTransport

NOTE_TO_TICKET = 228  # HubSpot-defined association type: note -> ticket
TICKET_TO = {"companies": 339, "contacts": 16}  # HubSpot-defined: ticket -> company (primary 26), contact
SEARCH_PAGE = 100  # HubSpot's search returns at most 200 per page; IN takes at most 100 values
BATCH_READ = 100  # ids per batch/read (HubSpot's limit for the CRM objects' batch endpoints)
RATE_LIMIT_RETRIES = 5
T = TypeVar("T")
PROPERTIES = ("subject", "hs_pipeline", "hs_pipeline_stage", "closed_date", "hs_lastmodifieddate")


def ticket_marker(fingerprint: str) -> str:
    return f"opsflow-{fingerprint[:24]}"


class HubSpotTicket(TicketRoute):
    """Open, update and resolve a HubSpot ticket per incident.

    :param conn_id: an ``opsflow_hubspot`` connection (a private app token with the ``tickets`` scope;
        ``crm.objects.companies.read``/``contacts.read`` to associate). Extra ``portal_id``: the account id
        used in ticket links (read from the account-info API when absent).
    :param pipeline: the ticket pipeline, by id or label (default ``0``, HubSpot's Support Pipeline).
    :param open_stage: the stage of a new or reopened ticket, by id or label (default: the pipeline's first
        open stage).
    :param closed_stage: the stage that resolves a ticket (default: the pipeline's first closed stage).
    :param priorities: severity -> ``hs_ticket_priority`` (default error: HIGH, warn: MEDIUM).
    :param fingerprint_property: the ticket property holding the incident's marker (create it once as a
        single-line text property on tickets).
    :param properties: more ticket properties for the create (``{"hs_ticket_category": "DATA_ISSUE"}``).
    :param owner_id: the HubSpot owner assigned to new tickets.
    :param associate: ``{"companies": "domain"}``: associate the ticket with the company whose ``domain``
        equals the incident's entity key (per-entity incidents); ``contacts`` works alike.
    :param rate_limit_wait: at most this many seconds waited in all on ``Retry-After`` of rate-limited
        creates before the try gives up (default 120).

    Templated (Jinja, from params, Variables...): ``conn_id``, ``pipeline``, ``open_stage``, ``closed_stage``,
    ``priorities``, ``properties`` (their values), ``owner_id``.

    Other parameters: see :class:`~airflow_opsflow.incidents.tickets.TicketRoute` and
    :class:`~airflow_opsflow.incidents.route.AlertRoute`.
    """

    kind = "hubspot"
    template_fields: tuple[str, ...] = ("conn_id", "pipeline", "open_stage", "closed_stage", "priorities",
                                        "properties", "owner_id")

    def __init__(self, *, conn_id: str = "hubspot_default", pipeline: str = "0", open_stage: str | None = None,
                 closed_stage: str | None = None, priorities: dict[str, str] | None = None,
                 fingerprint_property: str = "opsflow_fingerprint", properties: dict[str, Any] | None = None,
                 owner_id: str | None = None, associate: dict[str, str] | None = None,
                 rate_limit_wait: float = 120.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        bad = sorted(set(associate or {}) - set(TICKET_TO))
        if bad:
            raise ValueError(f"associate: HubSpot tickets are associated with {sorted(TICKET_TO)}, not {bad}")
        self.conn_id = conn_id
        self.pipeline = pipeline
        self.open_stage = open_stage
        self.closed_stage = closed_stage
        self.priorities = priorities or {"error": "HIGH", "warn": "MEDIUM"}
        self.fingerprint_property = fingerprint_property
        self.properties = dict(properties or {})
        self.owner_id = owner_id
        self.associate = dict(associate or {})
        self.rate_limit_wait = rate_limit_wait

    def where(self) -> str:
        return f"{self.conn_id}/{self.pipeline}"

    def backend(self) -> HubSpotTicketBackend:
        from airflow_opsflow.hooks.hubspot import HubSpotHook
        from airflow_opsflow.sync.destinations.transport import HttpTransport

        hook = HubSpotHook(self.conn_id)
        transport = HttpTransport(hook.target(), max_connections=1, what=f"HubSpot ({self.conn_id})")
        return HubSpotTicketBackend(self, transport, hook.portal_id())


class HubSpotTicketBackend(TicketBackend):
    """HubSpot's CRM API for :class:`HubSpotTicket` (pipelines read once per dispatch)."""

    def __init__(self, route: HubSpotTicket, transport: HttpTransport, portal_id: str | None) -> None:
        self.route = route
        self.http = transport
        self._portal_id = portal_id
        self._stages: tuple[str, str, str, frozenset[str]] | None = None

    # -- the contract ----------------------------------------------------------------------------------------

    def search(self, fingerprints: list[str], known_ids: list[str], single: bool) -> dict[str, Ticket | None]:
        markers = {ticket_marker(fp): fp for fp in fingerprints}
        prop = self.route.fingerprint_property
        candidates: dict[str, list[Ticket]] = {fp: [] for fp in fingerprints}
        names = sorted(markers)
        for start in range(0, len(names), SEARCH_PAGE):
            after: str | None = None
            while True:
                body: dict[str, Any] = {
                    "filterGroups": [{"filters": [{"propertyName": prop, "operator": "IN",
                                                   "values": names[start:start + SEARCH_PAGE]}]}],
                    "properties": [*PROPERTIES, prop], "limit": SEARCH_PAGE,
                    "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "DESCENDING"}],
                    **({"after": after} if after else {}),
                }
                page = self._read_call("POST", "/crm/v3/objects/tickets/search", body)
                for record in page.get("results") or []:
                    fp = markers.get(str((record.get("properties") or {}).get(prop) or ""))
                    if fp is not None:
                        candidates[fp].append(self._ticket(record, fp))
                after = ((page.get("paging") or {}).get("next") or {}).get("after")
                if not after:
                    break
        found = {fp: self._choose(tickets) for fp, tickets in candidates.items()}
        if single:  # the search may lag: tickets this incident had are read by id, which is consistent
            for fp in fingerprints:
                if found[fp] is None:
                    read = [t for i in dict.fromkeys(known_ids) if (t := self.read({"id": i}, fp)) and t.ours]
                    found[fp] = self._choose(read)
        return found

    def read(self, ref: Mapping[str, Any], fingerprint: str) -> Ticket | None:
        from airflow_opsflow.sync.destinations.base import BatchRejected

        props = ",".join([*PROPERTIES, self.route.fingerprint_property])
        try:
            record = self._call("GET", f"/crm/v3/objects/tickets/{ref.get('id') or ref['key']}?properties={props}")
        except BatchRejected as e:
            if e.status == 404:  # deleted (archived)
                return None
            raise
        return self._ticket(record, fingerprint)

    def read_many(self, refs: list[Mapping[str, Any]]) -> dict[str, Ticket | None]:
        """``batch/read``: one request per ``BATCH_READ`` tickets. An id HubSpot does not know (or archived)
        comes back in the answer's ``errors`` (a 207), or the whole batch as a 404 when it knows none."""
        by_id: dict[str, list[str]] = {}
        out: dict[str, Ticket | None] = {}
        for ref in refs:
            tid = str(ref.get("id") or ref.get("key") or "")
            out[ref_key(ref)] = None
            if tid.isdigit():  # HubSpot's ids are numbers: anything else names no ticket
                by_id.setdefault(tid, []).append(ref_key(ref))
        ids = list(by_id)
        for start in range(0, len(ids), BATCH_READ):
            for record in self._batch_read(ids[start:start + BATCH_READ]):
                ticket = self._ticket(record, "")
                for key in by_id.get(ticket.id, []):
                    out[key] = ticket
        return out

    def create(self, fingerprint: str, alert: Alert) -> Ticket:
        r = self.route
        pipeline, open_stage, _, _ = self._pipeline()
        text, _ = ticket_render.body(alert, r.sample_columns, r.mask_columns, r.sample_rows)
        properties = {"subject": ticket_render.summary(alert), "content": text, "hs_pipeline": pipeline,
                      "hs_pipeline_stage": open_stage, r.fingerprint_property: ticket_marker(fingerprint),
                      **({"hs_ticket_priority": r.priorities[alert.severity]}
                         if alert.severity in r.priorities else {}),
                      **({"hubspot_owner_id": r.owner_id} if r.owner_id else {}), **r.properties}
        body: dict[str, Any] = {"properties": properties}
        associations = self._associations(alert)
        if associations:
            body["associations"] = associations
        record = self._create(body)
        return self._ticket(record, fingerprint)

    def comment(self, ticket: Ticket, alert: Alert) -> None:
        r = self.route
        _, html = ticket_render.body(alert, r.sample_columns, r.mask_columns, r.sample_rows)
        self._note(ticket, html)

    def close(self, ticket: Ticket, alert: Alert) -> None:
        self.comment(ticket, alert)
        _, _, closed_stage, _ = self._pipeline()
        self._call("PATCH", f"/crm/v3/objects/tickets/{ticket.id}", {"properties": {"hs_pipeline_stage": closed_stage}})

    def reopen(self, ticket: Ticket) -> None:
        _, open_stage, _, _ = self._pipeline()
        self._call("PATCH", f"/crm/v3/objects/tickets/{ticket.id}", {"properties": {"hs_pipeline_stage": open_stage}})

    # -- HubSpot specifics ---------------------------------------------------------------------------------

    def _pipeline(self) -> tuple[str, str, str, frozenset[str]]:
        """(pipeline id, open stage id, closed stage id, ids of every closed stage), read once."""
        if self._stages is None:
            r = self.route
            pipelines = self._call("GET", "/crm/v3/pipelines/tickets").get("results") or []
            chosen = next((p for p in pipelines if r.pipeline in (str(p["id"]), str(p.get("label")))), None)
            if chosen is None:
                names = ", ".join(f"{p['id']} ({p.get('label')})" for p in pipelines)
                raise ValueError(f"HubSpot connection {r.conn_id!r}: no ticket pipeline {r.pipeline!r} "
                                 f"(pipelines: {names})")
            stages = sorted(chosen.get("stages") or [], key=lambda s: s.get("displayOrder", 0))
            closed = frozenset(str(s["id"]) for s in stages if (s.get("metadata") or {}).get("ticketState") == "CLOSED")
            open_stage = self._stage(stages, r.open_stage, closed, want_closed=False, what="open_stage")
            closed_stage = self._stage(stages, r.closed_stage, closed, want_closed=True, what="closed_stage")
            self._stages = (str(chosen["id"]), open_stage, closed_stage, closed)
        return self._stages

    def _stage(self, stages: list[dict[str, Any]], wanted: str | None, closed: frozenset[str], *,
               want_closed: bool, what: str) -> str:
        r = self.route
        for s in stages:
            sid = str(s["id"])
            if (wanted is not None and wanted in (sid, str(s.get("label")))) or (
                    wanted is None and (sid in closed) == want_closed):
                if (sid in closed) != want_closed:
                    raise ValueError(f"{what}={wanted!r}: that stage is {'closed' if sid in closed else 'open'} "
                                     f"in pipeline {r.pipeline!r}")
                return sid
        names = ", ".join(f"{s['id']} ({s.get('label')})" for s in stages)
        raise ValueError(f"HubSpot pipeline {r.pipeline!r} has no {what.replace('_', ' ')} "
                         f"{wanted if wanted is not None else ''} (stages: {names})".replace("  ", " "))

    def _ticket(self, record: dict[str, Any], fingerprint: str) -> Ticket:
        props = record.get("properties") or {}
        _, _, _, closed = self._pipeline()
        tid = str(record["id"])
        portal = self._portal()
        url = (f"https://app.hubspot.com/contacts/{portal}/record/0-5/{tid}" if portal
               else self.http.target.base_url.rstrip("/") + f"/crm/v3/objects/tickets/{tid}")
        return Ticket(id=tid, key=f"HubSpot #{tid}", url=url, closed=str(props.get("hs_pipeline_stage")) in closed,
                      closed_at=parse_time(props.get("closed_date")),
                      ours=props.get(self.route.fingerprint_property) == ticket_marker(fingerprint), raw=record)

    def _portal(self) -> str | None:
        """The account id for ticket links: the connection's, else asked once (a link is worth one request)."""
        if self._portal_id is None:
            try:
                self._portal_id = str(self._call("GET", "/account-info/v3/details").get("portalId") or "")
            except Exception:  # an account-info scope the token lacks: links point at the API instead
                self._portal_id = ""
        return self._portal_id or None

    def _choose(self, tickets: list[Ticket]) -> Ticket | None:
        """Open first (the most recently modified), else closed within the reopen window."""
        open_ = [t for t in tickets if not t.closed]
        if open_:
            return open_[0]
        window = self.route.reopen_window_days
        recent = [t for t in tickets if window > 0 and t.closed_at is not None
                  and (datetime.now(UTC) - t.closed_at).days < window]
        return max(recent, key=lambda t: t.closed_at or datetime.min.replace(tzinfo=UTC), default=None)

    def _associations(self, alert: Alert) -> list[dict[str, Any]]:
        out = []
        for object_type, prop in self.route.associate.items():
            if not alert.entity_key:
                continue
            page = self._read_call("POST", f"/crm/v3/objects/{object_type}/search", {
                "filterGroups": [{"filters": [{"propertyName": prop, "operator": "EQ", "value": alert.entity_key}]}],
                "limit": 2})
            for record in (page.get("results") or [])[:1]:
                out.append({"to": {"id": str(record["id"])}, "types": [
                    {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": TICKET_TO[object_type]}]})
        return out

    def _note(self, ticket: Ticket, html: str) -> None:
        self._call("POST", "/crm/v3/objects/notes", {
            "properties": {"hs_note_body": html, "hs_timestamp": datetime.now(UTC).isoformat()},
            "associations": [{"to": {"id": ticket.id}, "types": [
                {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": NOTE_TO_TICKET}]}]})

    def _create(self, body: dict[str, Any]) -> dict[str, Any]:
        # Never re-sent on a lost answer (a duplicate); a 429 was refused unprocessed: wait, send again.
        from tenacity import Retrying, retry_if_exception

        from airflow_opsflow.sync.destinations.transport import TransientError

        r = self.route

        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome is not None else None
            return float(getattr(error, "retry_after", None) or 2 ** (state.attempt_number - 1))

        def stop(state: RetryCallState) -> bool:
            waited = state.idle_for + state.upcoming_sleep
            return state.attempt_number > RATE_LIMIT_RETRIES or waited > r.rate_limit_wait

        def give_up(state: RetryCallState) -> NoReturn:
            error = state.outcome.exception() if state.outcome is not None else None
            raise TicketNotCreated(f"HubSpot rate-limited the ticket create {state.attempt_number} time(s) (429); "
                                   "nothing was created, the next try creates it") from error

        limited = retry_if_exception(lambda e: isinstance(e, TransientError) and e.rate_limited)
        result: dict[str, Any] = Retrying(retry=limited, wait=wait, stop=stop, retry_error_callback=give_up,
                                          sleep=time.sleep)(self._call, "POST", "/crm/v3/objects/tickets", body,
                                                            once=True)
        return result

    def _read_call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        """A read (a search): refused for the rate (HubSpot's searches allow 5 a second per account and say
        no Retry-After) or by a 5xx, it is waited out and sent again, for at most ``rate_limit_wait`` seconds
        in all: a burst of new tickets and their association look-ups must not fail the deliveries."""
        return self._reading(self._call, method, path, body)

    def _reading(self, read: Callable[..., T], *args: Any) -> T:
        """``read(*args)``, sent again after a 429 or a 5xx (harmless for a read) as :meth:`_read_call` says."""
        from tenacity import Retrying, retry_if_exception

        from airflow_opsflow.sync.destinations.transport import TransientError

        r = self.route

        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome is not None else None
            # the search limit resets each second: 1 s first, then back off
            return float(getattr(error, "retry_after", None) or min(2 ** (state.attempt_number - 1), 8))

        def stop(state: RetryCallState) -> bool:
            waited = state.idle_for + state.upcoming_sleep
            return state.attempt_number > 2 * RATE_LIMIT_RETRIES or waited > r.rate_limit_wait

        result: T = Retrying(retry=retry_if_exception(lambda e: isinstance(e, TransientError)), wait=wait,
                             stop=stop, reraise=True, sleep=time.sleep)(read, *args)
        return result

    def _batch_read(self, ids: list[str]) -> list[dict[str, Any]]:
        from airflow_opsflow.sync.destinations.base import BatchRejected

        body = {"inputs": [{"id": i} for i in ids], "properties": list(PROPERTIES)}
        try:
            answer = self._reading(self.http.request, "POST", "/crm/v3/objects/tickets/batch/read?archived=false",
                                   body)
        except BatchRejected as e:
            # None of them exists (HubSpot has been seen to answer so rather than with a 207); the error's
            # message comes first, its category may be past the snippet
            if e.status == 404 and ("OBJECT_NOT_FOUND" in str(e) or "Could not get some" in str(e)):
                return []
            raise ValueError(f"HubSpot ({self.route.conn_id}): POST /crm/v3/objects/tickets/batch/read was "
                             f"refused: {e}") from None
        data = answer.json()
        results = data.get("results") if isinstance(data, dict) else None
        return [r for r in results or [] if isinstance(r, dict)]

    def _call(self, method: str, path: str, body: Any = None, once: bool = False) -> dict[str, Any]:
        from airflow_opsflow.sync.destinations.base import BatchRejected

        try:
            answer = self.http.request(method, path, body, once=once)
        except BatchRejected as e:
            if e.status == 404 and method == "GET":
                raise
            where = path.split("?")[0]
            raise ValueError(f"HubSpot ({self.route.conn_id}): {method} {where} was refused: {e}") from None
        data = answer.json()
        return data if isinstance(data, dict) else {}
