"""The Ops view's incidents and entities, read-only, in opsflow's REST API (``/opsflow``)::

    GET /opsflow/api/v1/incidents                 incidents, most severe first, then the oldest
    GET /opsflow/api/v1/incidents/{fingerprint}   one incident, with its entities and recent runs
    GET /opsflow/api/v1/entities                  the entities of per-entity incidents, most money first

Every route needs an authenticated caller and shows only what the caller may read in Airflow: incidents of
a DAG the auth manager hides from them are left out of lists and totals, and their detail answers 404 as
if there were none. The state tables are read by their engine's repository (``incidents/repo.py``,
``incidents/entity_repo.py``); this module turns what they return into the JSON below. Samples are
masked as the task's alert routes mask them (``mask_columns``); an incident stored before the masked
columns were kept with it shows every sample value masked until its task runs again.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated, Any

from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, Field

from airflow_opsflow.incidents.alert import MASK, key_is_masked, masked_samples
from airflow_opsflow.incidents.entities import key_label
from airflow_opsflow.incidents.entity_repo import EntityQuery, EntityRecord, EntityRepo
from airflow_opsflow.incidents.repo import IncidentQuery, IncidentRecord, IncidentRepo, owner_of
from airflow_opsflow.plugins import clock
from airflow_opsflow.plugins.access import readable_dags
from airflow_opsflow.plugins.airflow_urls import split_task, task_instance_url
from airflow_opsflow.plugins.store import reading_store
from airflow_opsflow.state.store import StateStore

router = APIRouter()

INCIDENTS = "/api/v1/incidents"
ENTITIES = "/api/v1/entities"
DEFAULT_LIMIT, MAX_LIMIT = 500, 5000

STATUS_HELP = ("`open` (default): every status but resolved (pending and open); `resolved`; `all`; or one "
               "exact status")
SINCE_HELP = "ISO-8601 (UTC when no offset): {what} at or after this"
UNTIL_HELP = "ISO-8601 (UTC when no offset): {what} at or before this"
LIMIT_HELP = f"at most this many (default {DEFAULT_LIMIT}, max {MAX_LIMIT}); `truncated` says when more matched"
TASK_HELP = "the task id (a mapped task's instances too)"

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=LIMIT_HELP)]


class SlackLink(BaseModel):
    """The incident's Slack message (its thread holds the later alerts)."""

    channel: str = Field(description="the channel's id")
    ts: str = Field(description="the message's timestamp (its id in the channel)")
    url: str | None = Field(description="a link to the message, when the state holds one (Slack's permalink "
                                        "needs the workspace's domain, which is not stored): else null")


class TicketLink(BaseModel):
    """A ticket of this occurrence."""

    system: str = Field(description="jira, hubspot, salesforce, zendesk (the route's kind)")
    key: str
    url: str


class Links(BaseModel):
    """Where to look further: the Airflow UI (relative paths) and the alert channels."""

    task_instance_url: str | None = Field(
        description="the task instance of the latest run counted, in the Airflow UI: "
                    "/dags/{dag_id}/runs/{run_id}/tasks/{task_id} (+ /mapped/{map_index}), URL-quoted")
    log_url: str | None = Field(description="its logs (Airflow 3's task instance page opens on the Logs tab)")
    slack: SlackLink | None = Field(description="the Slack message of this occurrence (null: none)")
    tickets: list[TicketLink] = Field(description="the tickets of this occurrence")


class Evidence(BaseModel):
    """What the latest run counted saw (the resolving run's, for a resolved incident)."""

    observed: Any = Field(description="what was measured (a number, or a mapping such as {min, max})")
    violating_count: int | None
    violating_share: float | None
    samples: list[dict[str, Any]] = Field(
        description="violating rows as stored (up to 20), the columns the task's alert routes mask shown as "
                    f"{MASK!r} (every column, for an incident stored before the masked columns were kept)")
    message: str | None
    column: str | None
    expected: str | None = Field(None, description="the rule in words (added)")
    threshold: str | None = Field(None, description="the tolerance that applied (added)")
    rows_checked: int | None = Field(None, description="(added)")
    kind: str | None = Field(None, description="the check's kind: not_null, sql, metric... (added)")


class IncidentOut(BaseModel):
    """One incident (one fingerprint: DAG, task, check and entity; its current or last occurrence)."""

    fingerprint: str
    incident_id: str = Field(description="this occurrence: fingerprint-cycle")
    dag_id: str
    task_id: str = Field(description="the task id (without a map index)")
    map_index: int | None = Field(description="a mapped task instance's index, else null (added)")
    check: str
    entity_key: str | None = Field(description="the entity of a per-entity incident (TicketOperator "
                                               "group_by='entity'), else null")
    status: str = Field(description="pending, open or resolved")
    severity: str = Field(description="warn or error")
    first_seen: datetime | None = Field(description="the first failing run of this occurrence")
    last_seen: datetime | None = Field(description="the latest failing run")
    opened_at: datetime | None
    resolved_at: datetime | None
    age_seconds: float | None = Field(description="now - first_seen (opened_at when first_seen is unknown)")
    fail_streak: int = Field(description="consecutive failing runs")
    occurrences: int = Field(description="failing runs in this occurrence")
    failing_runs_since_alert: int
    owner: str | None = Field(description="the check's owner when it declares one, else the task's owner; null "
                                          "for incidents stored before the task's owner was kept")
    table: str | None
    run_id: str | None = Field(description="the latest run counted (added)")
    evidence: Evidence
    links: Links


class Totals(BaseModel):
    """Counts over every incident matching the filters other than `status` and `limit`."""

    open: int = Field(description="not resolved (pending or open)")
    by_severity: dict[str, int] = Field(description="the not-resolved ones, by severity")
    by_status: dict[str, int] = Field(description="all of them, by status")


class IncidentsOut(BaseModel):
    now: datetime = Field(description="the server's time: ages are measured from it")
    incidents: list[IncidentOut]
    totals: Totals
    truncated: bool = Field(description="more incidents matched than `limit`")


class EntityLinks(BaseModel):
    task_instance_url: str | None = Field(description="the task instance of the run that first saw it")
    log_url: str | None
    incident: str = Field(description="this API's incident detail, relative to the API's root "
                                      "(/api/v1/incidents/{fingerprint})")


class EntityOut(BaseModel):
    """One tracked entity of a per-entity check (a stuck payment, delivery...)."""

    dag_id: str
    task_id: str
    map_index: int | None = Field(description="(added)")
    check: str
    entity_key: str = Field(description=f"its key values (`A / B` for a compound key); {MASK!r} when a key "
                                        "column is masked by the task's alert routes")
    since: datetime = Field(description="stuck since: its own `since` column, else when a run first saw it")
    first_seen: datetime = Field(description="when a run first saw it (added)")
    age_seconds: float = Field(description="now - since")
    sla_seconds: float | None = Field(description="the check's SLA (null: none)")
    over_sla: bool
    amount: float | None = Field(description="the money at stake (its `amount` column)")
    currency: str | None = Field(description="not declared by entity checks today: null")
    status: str = Field(description="open, or resolved (by the task's latest run)")
    resolved_at: datetime | None = Field(description="(added)")
    fingerprint: str = Field(description="its check's incident")
    links: EntityLinks


class EntityTotals(BaseModel):
    """Over every entity matching the filters (not only the listed ones)."""

    count: int
    amount: float | None = Field(description="the sum of the amounts (null: no entity has one); one number, "
                                             "since entity checks declare no currency")
    over_sla: int


class EntitiesOut(BaseModel):
    now: datetime
    entities: list[EntityOut]
    totals: EntityTotals
    truncated: bool


class RunOut(BaseModel):
    run_id: str
    task_instance_url: str
    log_url: str


class IncidentDetailOut(IncidentOut):
    """One incident, its entities (a per-entity check) and the runs it counted."""

    entities: list[EntityOut] | None = Field(description="every tracked entity of a per-entity check (open, and "
                                                         "those its latest run resolved); null for other checks")
    recent_runs: list[RunOut] = Field(description="the runs it counted, newest first (up to 20)")


_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "not authenticated (no or an expired token)"},
    403: {"description": "an invalid token"},
    503: {"description": "no state database is configured ([opsflow] state_conn_id), it cannot be reached, or "
                         "its opsflow tables are older than this opsflow"},
}


def _utc(at: datetime | None) -> datetime | None:
    return None if at is None else at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _ti_url(dag_id: str, task_key: str, run_id: str | None) -> str | None:
    return task_instance_url(dag_id, task_key, run_id) if run_id else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _masked(summary: dict[str, Any]) -> list[str] | None:
    """The sample columns the task's routes mask; None when the incident was stored before they were kept."""
    masked = summary.get("masked")
    return [str(c) for c in masked] if isinstance(masked, list) else None


def _links(r: IncidentRecord) -> Links:
    inc, summary = r.incident, r.incident.summary
    run_id = inc.recent_runs[-1] if inc.recent_runs else None
    url = _ti_url(r.subject.dag_id, r.subject.task_id, run_id)
    slack, tickets = None, []
    # A pending incident's refs are those of its previous occurrence: nothing was sent for this one yet.
    mine = {} if inc.status == "pending" else {
        name: refs for name, refs in sorted(inc.refs.items())
        if isinstance(refs, dict) and refs.get("incident_id") == inc.incident_id}
    kinds = _dict(summary.get("route_kinds"))
    for name, refs in mine.items():
        if refs.get("ts") and refs.get("channel") and slack is None:
            slack = SlackLink(channel=str(refs["channel"]), ts=str(refs["ts"]),
                              url=str(refs["permalink"]) if refs.get("permalink") else None)
        elif refs.get("key") and refs.get("url"):
            system = str(kinds.get(name) or name.partition(":")[0])  # default route names are kind:where
            tickets.append(TicketLink(system=system, key=str(refs["key"]), url=str(refs["url"])))
    return Links(task_instance_url=url, log_url=url, slack=slack, tickets=tickets)


def _evidence(summary: dict[str, Any]) -> Evidence:
    samples = [s for s in summary.get("samples") or [] if isinstance(s, dict)]
    masked = _masked(summary)
    if masked is None:  # not known how its routes mask: show no value
        masked = sorted({c for s in samples for c in s})
    return Evidence(observed=summary.get("observed"), violating_count=summary.get("violating_count"),
                    violating_share=summary.get("violating_share"), samples=masked_samples(samples, masked),
                    message=summary.get("message") or None, column=summary.get("column"),
                    expected=summary.get("expected") or None, threshold=summary.get("threshold"),
                    rows_checked=summary.get("rows_checked"), kind=summary.get("kind"))


def _fields(r: IncidentRecord, now: datetime) -> dict[str, Any]:
    inc, s = r.incident, r.subject
    start = inc.first_seen or inc.opened_at
    task_id, index = split_task(s.task_id)
    return dict(
        fingerprint=inc.fingerprint, incident_id=inc.incident_id, dag_id=s.dag_id, task_id=task_id, map_index=index,
        check=s.check_name, entity_key=s.entity_key, status=inc.status, severity=inc.severity,
        first_seen=inc.first_seen, last_seen=inc.last_seen, opened_at=inc.opened_at, resolved_at=inc.resolved_at,
        age_seconds=None if start is None else (now - start).total_seconds(), fail_streak=inc.fail_streak,
        occurrences=inc.occurrences, failing_runs_since_alert=inc.failing_runs_since_alert,
        owner=owner_of(inc.summary), table=inc.summary.get("table"),
        run_id=inc.recent_runs[-1] if inc.recent_runs else None, evidence=_evidence(inc.summary), links=_links(r))


def _sla(summary: dict[str, Any]) -> float | None:
    entities = summary.get("entities")
    sla = entities.get("sla_s") if isinstance(entities, dict) else None
    return float(sla) if isinstance(sla, (int, float)) else None


def _entity(e: EntityRecord, summary: dict[str, Any], now: datetime) -> EntityOut:
    """One entity as the Ops view shows it; ``summary``: its check's incident's (SLA, key name, masking)."""
    entities = _dict(summary.get("entities"))
    masked = _masked(summary)
    hidden = masked is None or key_is_masked(str(entities.get("key_name") or ""), masked)
    age = max((now - e.start).total_seconds(), 0.0)
    sla = _sla(summary)
    url = _ti_url(e.dag_id, e.task_id, e.entity.first_run)
    task_id, index = split_task(e.task_id)
    t = e.entity
    return EntityOut(dag_id=e.dag_id, task_id=task_id, map_index=index, check=e.check_name,
                     entity_key=MASK if hidden else key_label(t.key), since=e.start, first_seen=t.first_seen,
                     age_seconds=age, sla_seconds=sla, over_sla=sla is not None and age >= sla, amount=t.amount,
                     currency=None, status=t.status, resolved_at=t.resolved_at, fingerprint=e.subject,
                     links=EntityLinks(task_instance_url=url, log_url=url, incident=f"{INCIDENTS}/{e.subject}"))


def _summaries(store: StateStore, subjects: set[str]) -> dict[str, dict[str, Any]]:
    repo = IncidentRepo(store)
    found = {s: repo.find_one(s) for s in sorted(subjects)}
    return {s: r.incident.summary for s, r in found.items() if r is not None}


def _status_filter(value: str) -> dict[str, Any]:
    if value == "open":
        return {"resolved": False}
    if value == "resolved":
        return {"resolved": True}
    return {} if value == "all" else {"status": value}


@router.get(INCIDENTS, response_model=IncidentsOut, responses=_ERRORS, summary="List incidents",
            tags=["Ops view"])
def list_incidents(
        user: GetUserDep,
        status_: Annotated[str, Query(alias="status", description=STATUS_HELP)] = "open",
        dag_id: Annotated[str | None, Query(description="the DAG")] = None,
        task_id: Annotated[str | None, Query(description=TASK_HELP)] = None,
        check: Annotated[str | None, Query(description="the check's name")] = None,
        severity: Annotated[str | None, Query(description="warn or error")] = None,
        owner: Annotated[str | None, Query(description="the check's owner or the task's")] = None,
        table: Annotated[str | None, Query(description="the checked table, as the check names it")] = None,
        since: Annotated[datetime | None, Query(description=SINCE_HELP.format(what="last seen"))] = None,
        until: Annotated[datetime | None, Query(description=UNTIL_HELP.format(what="last seen"))] = None,
        limit: Limit = DEFAULT_LIMIT) -> IncidentsOut:
    """The incidents the caller may see, most severe first (error before warn), then the oldest first seen.
    `totals` count every incident matching the filters other than `status` and `limit`: `open` and
    `by_severity` the not-resolved ones, `by_status` all of them."""
    now = clock.now()
    found: list[IncidentRecord] = []
    counts: dict[tuple[str, str], int] = {}
    truncated = False
    with reading_store(dag_id or "*") as store:
        if store is not None:
            repo = IncidentRepo(store)
            dags = readable_dags(user, [dag_id] if dag_id else repo.dag_ids())
            query = IncidentQuery(dag_ids=dags, task_id=task_id, check=check, severity=severity, owner=owner,
                                  table=table, since=_utc(since), until=_utc(until))
            found, truncated = repo.find(replace(query, **_status_filter(status_)), limit)
            counts = repo.tally(query)
    by_status: dict[str, int] = {}
    by_severity: dict[str, int] = {}
    for (st, sev), n in sorted(counts.items()):
        by_status[st] = by_status.get(st, 0) + n
        if st != "resolved":
            by_severity[sev] = by_severity.get(sev, 0) + n
    return IncidentsOut(now=now, incidents=[IncidentOut(**_fields(r, now)) for r in found],
                        totals=Totals(open=sum(by_severity.values()), by_severity=by_severity, by_status=by_status),
                        truncated=truncated)


@router.get(INCIDENTS + "/{fingerprint}", response_model=IncidentDetailOut,
            responses={**_ERRORS, 404: {"description": "no such incident, or one of a DAG the caller may not read"}},
            summary="One incident, its entities and recent runs", tags=["Ops view"])
def incident(fingerprint: str, user: GetUserDep) -> IncidentDetailOut:
    """The incident with this fingerprint (as the list shows it), the entities of a per-entity check (open ones,
    and those its latest run resolved; most money first) and the runs it counted, newest first. 404 as well
    for an incident of a DAG the caller may not read."""
    now = clock.now()
    with reading_store("*") as store:
        found = IncidentRepo(store).find_one(fingerprint) if store is not None else None
        if found is None or not readable_dags(user, [found.subject.dag_id]):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no incident has the fingerprint {fingerprint!r}")
        assert store is not None
        tracked, _ = EntityRepo(store).find(EntityQuery(dag_ids=[found.subject.dag_id], subject=fingerprint))
    summary = found.incident.summary
    entities = ([_entity(e, summary, now) for e in tracked]
                if tracked or isinstance(summary.get("entities"), dict) else None)
    runs = [RunOut(run_id=run, task_instance_url=url, log_url=url)
            for run in reversed(found.incident.recent_runs)
            if (url := _ti_url(found.subject.dag_id, found.subject.task_id, run))]
    return IncidentDetailOut(**_fields(found, now), entities=entities, recent_runs=runs)


@router.get(ENTITIES, response_model=EntitiesOut, responses=_ERRORS, summary="List tracked entities",
            tags=["Ops view"])
def list_entities(
        user: GetUserDep,
        status_: Annotated[str, Query(alias="status", description="`open` (default), `resolved` (by the "
                                                                  "latest run) or `all`")] = "open",
        dag_id: Annotated[str | None, Query(description="the DAG")] = None,
        task_id: Annotated[str | None, Query(description=TASK_HELP)] = None,
        check: Annotated[str | None, Query(description="the check's name")] = None,
        since: Annotated[datetime | None, Query(description=SINCE_HELP.format(what="stuck since"))] = None,
        until: Annotated[datetime | None, Query(description=UNTIL_HELP.format(what="stuck since"))] = None,
        limit: Limit = DEFAULT_LIMIT) -> EntitiesOut:
    """The entities of per-entity checks (a stuck payment, delivery...) the caller may see, the most money at
    stake first (none last), then the oldest. `totals` count every entity matching the filters."""
    if status_ not in ("open", "resolved", "all"):
        raise HTTPException(422, f"query parameter 'status': expected open, resolved or all, got {status_!r}")
    now = clock.now()
    found: list[EntityRecord] = []
    rows: list[tuple[str, datetime, float | None]] = []
    summaries: dict[str, dict[str, Any]] = {}
    truncated = False
    with reading_store(dag_id or "*") as store:
        if store is not None:
            dags = readable_dags(user, [dag_id] if dag_id else IncidentRepo(store).dag_ids())
            query = EntityQuery(dag_ids=dags, task_id=task_id, check=check,
                                status=None if status_ == "all" else status_, since=_utc(since), until=_utc(until))
            repo = EntityRepo(store)
            found, truncated = repo.find(query, limit)
            rows = repo.totals(query)
            summaries = _summaries(store, {subject for subject, _, _ in rows})
    slas = {s: _sla(summary) for s, summary in summaries.items()}
    over = sum(1 for subject, start, _ in rows
               if (sla := slas.get(subject)) is not None and (now - start).total_seconds() >= sla)
    amounts = [a for _, _, a in rows if a is not None]
    return EntitiesOut(now=now, entities=[_entity(e, summaries.get(e.subject, {}), now) for e in found],
                       totals=EntityTotals(count=len(rows), amount=round(sum(amounts), 2) if amounts else None,
                                           over_sla=over),
                       truncated=truncated)
