"""From check results to incidents to alerts, for one task run (used by DataCheckOperator)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from airflow_opsflow.flows.deliver_alerts import DeliveryReport, deliver_pending, routes_for
from airflow_opsflow.incidents.lifecycle import Observation, Policy, fingerprint
from airflow_opsflow.incidents.repo import IncidentRepo, Subject

if TYPE_CHECKING:
    from airflow_opsflow.core.results import CheckResult
    from airflow_opsflow.incidents.route import AlertRoute
    from airflow_opsflow.state.store import StateStore


SAMPLES_KEPT = 20  # sample rows kept with an incident (alerts show fewer)


@dataclass
class TaskRun:
    """The run the results come from: fingerprints use dag/task, never the run id."""

    dag_id: str
    task_id: str
    run_id: str
    log_url: str | None = None
    map_index: int = -1  # mapped instances (expand) are separate incidents
    owner: str | None = None  # the task's owner, kept with its incidents (the Ops view lists them by owner)

    @classmethod
    def of(cls, ti: Any) -> TaskRun:
        """The run of a (runtime) task instance."""
        return cls(ti.dag_id, ti.task_id, ti.run_id, getattr(ti, "log_url", None), getattr(ti, "map_index", -1),
                   getattr(getattr(ti, "task", None), "owner", None))

    @property
    def ops_url(self) -> str | None:
        """The task's incidents in the Ops view, on the Airflow the task log is served by (its log URL is
        absolute when Airflow's ``[api] base_url`` is set; a relative one makes no link in a message)."""
        if not self.log_url or "/dags/" not in self.log_url or not self.log_url.startswith(("http://", "https://")):
            return None
        base = self.log_url.split("/dags/")[0]
        query = urlencode({"page": "incidents", "status": "all", "dag_id": self.dag_id, "task_id": self.task_id})
        return f"{base}/opsflow/ui/?{query}"

    @property
    def task_key(self) -> str:
        return self.task_id if self.map_index is None or self.map_index < 0 else f"{self.task_id}[{self.map_index}]"


def track(results: list[CheckResult], run: TaskRun, routes: list[AlertRoute], policy: Policy,
          store: StateStore, entities: list[str | None] | None = None,
          resolve_unseen: frozenset[str] = frozenset()) -> tuple[list[dict[str, Any]], DeliveryReport]:
    """Advance one incident per check (or per check and entity) and deliver the alerts its transitions owe.

    Checks that could not run (status ``error``) or gave no verdict (``skipped``) say nothing about the
    data: they neither open nor resolve an incident. With ``entities`` (one key per result), incidents
    are per entity; for the checks in ``resolve_unseen`` (whose failing entities this run saw
    completely), open entity incidents not seen failing now count as passing. Returns a summary per
    incident (for XCom) and what was delivered.
    """
    repo = IncidentRepo(store)
    subjects: dict[str, Subject] = {}
    observations = []
    unobserved: dict[str, Subject] = {}
    masked = sorted({c for r in routes for c in r.mask_columns})
    kinds = {r.name: r.kind for r in routes}
    for index, r in enumerate(results):
        entity = entities[index] if entities else None
        fp = fingerprint(run.dag_id, run.task_key, r.name, entity)
        if r.status in ("error", "skipped"):  # says nothing about the data: neither opens nor resolves
            # but what its incident still owes is delivered (a person dismissed it since the last run)
            unobserved[fp] = Subject(fp, run.dag_id, run.task_key, r.name, entity)
            continue
        subjects[fp] = Subject(fp, run.dag_id, run.task_key, r.name, entity)
        evidence = {k: v for k, v in r.to_dict().items() if k != "sql"}
        evidence["samples"] = evidence["samples"][:SAMPLES_KEPT]
        # For the Ops view: the task's owner, and the sample columns its routes mask (it masks them too).
        evidence.update(task_owner=run.owner, masked=masked, route_kinds=kinds)
        observations.append((subjects[fp], Observation(
            failing=r.status in ("warn", "fail"), severity="error" if r.status == "fail" else "warn",
            run_key=run.run_id, summary=evidence, news=bool(r.entities and r.entities.get("new")))))
    try:
        if resolve_unseen:
            for subject in repo.open_subjects(run.dag_id, run.task_key):
                if subject.check_name in resolve_unseen and subject.fingerprint not in subjects:
                    subjects[subject.fingerprint] = subject
                    observations.append((subject, Observation(failing=False, run_key=run.run_id)))
        recorded = repo.record(observations, policy, routes_for(routes))
        links = {"Task log": run.log_url} if run.log_url else {}
        if run.ops_url:
            links["Ops view"] = run.ops_url
        report = deliver_pending(repo, routes, {**unobserved, **subjects}, links)
        summary = []
        systems = {r.name: r.kind for r in routes}
        for (s, _), (inc, transitions) in zip(observations, recorded, strict=True):
            latest = repo.get(s.fingerprint) or inc  # with the refs the deliveries just stored
            tickets = [_ticket(name, r, systems) for name, r in latest.refs.items()
                       if isinstance(r, dict) and r.get("url") and r.get("incident_id") == latest.incident_id]
            summary.append({"check": s.check_name, "entity": s.entity_key, "incident_id": latest.incident_id,
                            "status": latest.status,
                            "transitions": [t.kind for t in transitions], "tickets": tickets})
    finally:
        store.close()
    return summary, report


def _ticket(route: str, refs: dict[str, Any], systems: dict[str, str]) -> dict[str, str]:
    """A ticket as tasks push it (XCom ``tickets``): ``system`` (the route's kind: jira, hubspot...) and ``id``
    say where TicketSensor reads it back; ``key`` and ``url`` are what people see."""
    system = systems.get(route) or route.partition(":")[0]  # a route no longer configured: its default name
    return {"key": str(refs["key"]), "url": str(refs["url"]), "system": system,
            "id": str(refs.get("id") or refs["key"])}
