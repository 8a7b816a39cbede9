"""Deliver the alerts an incident update queued (the outbox), route by route."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from airflow_opsflow.incidents.alert import Alert
from airflow_opsflow.incidents.lifecycle import Incident, Transition
from airflow_opsflow.notifications.routes import AlertRoute
from airflow_opsflow.state.incidents import IncidentRepo, RoutesFor, Subject

log = logging.getLogger(__name__)


@dataclass
class DeliveryReport:
    sent: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (delivery id, error)


def routes_for(routes: list[AlertRoute]) -> RoutesFor:
    """Which routes hear about a transition: those whose min_severity and transitions admit it."""
    def choose(incident: Incident, transition: Transition) -> list[str]:
        return [r.name for r in routes if r.accepts(incident.severity) and transition.kind in r.transitions]
    return choose


def deliver_pending(repo: IncidentRepo, routes: list[AlertRoute], subjects: dict[str, Subject],
                    links: dict[str, str]) -> DeliveryReport:
    """Send every pending alert of these fingerprints; confirmed ones are marked sent, failures stay
    pending (with their error) for the next try or run. Never raises for a delivery failure."""
    by_name = {r.name: r for r in routes}
    report = DeliveryReport()
    for d in repo.pending(list(subjects)):
        route = by_name.get(d.route)
        subject = subjects[d.fingerprint]
        incident = repo.get(d.fingerprint)
        if route is None or incident is None:
            continue  # a route no longer in the DAG: its pending alerts wait for it
        alert = Alert(d.transition, incident, subject.dag_id, subject.task_id,  # type: ignore[arg-type]
                      subject.check_name, incident.summary, subject.entity_key, links)
        repo.mark_attempt(d.delivery_id)
        try:
            refs = route.deliver(alert, d, dict(incident.refs.get(route.name) or {}))
        except Exception as e:
            error = f"{type(e).__name__}: {e}"
            log.warning("alert %s via %s failed: %s", d.delivery_id, route.name, error)
            repo.mark_failed(d.delivery_id, error)
            report.failed.append((d.delivery_id, error))
            continue
        if refs != incident.refs.get(route.name):
            repo.set_refs(d.fingerprint, {route.name: refs})
        repo.mark_sent(d.delivery_id, refs)
        report.sent.append(d.delivery_id)
    return report
