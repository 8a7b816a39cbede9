"""Deliver the alerts an incident update queued (the outbox), route by route."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from airflow_opsflow.incidents.alert import Alert
from airflow_opsflow.incidents.lifecycle import Incident, Transition
from airflow_opsflow.incidents.repo import IncidentRepo, RoutesFor, Subject
from airflow_opsflow.incidents.route import AlertRoute
from airflow_opsflow.incidents.tickets import TicketRoute

log = logging.getLogger(__name__)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_ATTEMPTS = 10  # after this many failed sends an alert is abandoned (logged), not retried forever


@dataclass
class DeliveryReport:
    sent: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (delivery id, what failed and why)
    orphaned: list[str] = field(default_factory=list)  # owed to a route the task no longer has


def routes_for(routes: list[AlertRoute]) -> RoutesFor:
    """Which routes hear about a transition: those whose min_severity and transitions admit it."""
    def choose(incident: Incident, transition: Transition) -> list[str]:
        return [r.name for r in routes if r.accepts(incident.severity) and transition.kind in r.transitions]
    return choose


def deliver_pending(repo: IncidentRepo, routes: list[AlertRoute], subjects: dict[str, Subject],
                    links: dict[str, str]) -> DeliveryReport:
    """Send every pending alert of these fingerprints, oldest first. Each is claimed before it is sent
    (a concurrent run of the same task skips it), marked sent once the route confirmed it, and left
    pending with its error otherwise, for the next try or run. Never raises for a delivery failure."""
    by_name = {r.name: r for r in routes}
    report = DeliveryReport()
    blocked: set[tuple[str, str]] = set()  # (incident, route) that failed in this pass: keep their order
    # Tickets first, so the other alerts of the same transition can link them.
    pending = sorted(repo.pending(list(subjects)),
                     key=lambda d: (d.created_at or _EPOCH, not isinstance(by_name.get(d.route), TicketRoute),
                                    d.delivery_id))
    incidents = {fp: repo.get(fp) for fp in {d.fingerprint for d in pending}}
    for r in routes:  # every route, so none keeps what it prepared for an earlier run
        mine = [d for d in pending if d.route == r.name]
        remembered = {d.fingerprint: refs for d in mine
                      if (i := incidents.get(d.fingerprint)) is not None
                      and isinstance(refs := i.refs.get(r.name), dict) and refs.get("incident_id") == d.incident_id}
        try:
            r.prepare(mine, remembered)
        except Exception as e:  # only an optimisation: each delivery still works on its own
            log.warning("route %s could not prepare its deliveries: %s", r.name, e)
    for d in pending:
        route = by_name.get(d.route)
        if route is None:
            log.warning("alert %s is owed to route %r, which this task no longer has", d.delivery_id, d.route)
            report.orphaned.append(d.delivery_id)
            continue
        incident = repo.get(d.fingerprint)
        if (d.incident_id, d.route) in blocked or incident is None or not repo.claim(d):
            continue
        if d.transition not in route.transitions:  # queued without the route's settings (a dismissal)
            repo.mark_sent(d.delivery_id, {"skipped": f"route {route.name!r} does not take {d.transition!r} alerts"})
            continue
        subject = subjects[d.fingerprint]
        refs = dict(incident.refs.get(route.name) or {})
        if refs.get("incident_id") != d.incident_id:
            # An earlier occurrence's thread or ticket: this one starts its own, knowing the old one.
            refs = {"previous": {k: v for k, v in refs.items() if k != "previous"}} if refs else {}
        alert = Alert(d.transition, incident, subject.dag_id, subject.task_id,  # type: ignore[arg-type]
                      subject.check_name, incident.summary, subject.entity_key, {**links, **_ticket_links(incident)})
        try:
            new_refs = {**route.deliver(alert, d, refs), "incident_id": d.incident_id}
        except Exception as e:
            error = f"{type(e).__name__}: {' '.join(str(e).split())}"[:1000]
            give_up = d.attempts + 1 >= MAX_ATTEMPTS
            log.warning("alert %s via %s failed%s: %s", d.delivery_id, route.name,
                        " for the last time, abandoned" if give_up else "", error)
            repo.mark_failed(d.delivery_id, error, give_up)
            blocked.add((d.incident_id, d.route))
            entity = f", entity {subject.entity_key!r}" if subject.entity_key else ""
            report.failed.append((d.delivery_id, f"check {subject.check_name!r}{entity} ({d.transition!r} alert, "
                                                 f"route {route.name!r}): {error}"))
            continue
        if new_refs != incident.refs.get(route.name):
            repo.set_refs(d.fingerprint, {route.name: new_refs})
        repo.mark_sent(d.delivery_id, new_refs)
        report.sent.append(d.delivery_id)
    return report


def _ticket_links(incident: Incident) -> dict[str, str]:
    """Links to the incident's tickets (routes that remember a ``url`` for this occurrence)."""
    return {f"Ticket {r['key']}": r["url"] for r in incident.refs.values()
            if isinstance(r, dict) and r.get("url") and r.get("incident_id") == incident.incident_id}
