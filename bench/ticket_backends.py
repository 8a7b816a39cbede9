"""Requests per run of the HubSpot, Salesforce and Zendesk ticket routes for K incidents:
`python bench/ticket_backends.py` (or `make bench`).

Counts requests, not seconds, as bench/tickets.py does for Jira: what one task run sends when K incidents are
new, when nothing changed, and when they all resolve, against the testing kit's fakes driven by the routes'
real clients (HttpTransport for HubSpot, simple-salesforce behind SalesforceHook, zenpy behind ZendeskHook),
state on SQLite. Writes its section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- bench:ticket-backends:start -->", "<!-- bench:ticket-backends:end -->"
PHASES = (("new incidents", True), ("nothing changed", True), ("all resolve", False))


@contextmanager
def hubspot() -> Iterator[tuple[Any, Callable[[], Any], Callable[[Any], list[str]]]]:
    from airflow_opsflow_testing.hubspot_server import FakeHubSpot

    from airflow_opsflow.alerts.hubspot import HubSpotTicket

    with FakeHubSpot(rate_limit=10_000) as fake:
        fake.define_property("tickets", "opsflow_fingerprint")
        fake.set_search_rate_limit(10_000, 1.0)
        os.environ.update(fake.hubspot_connection("hubspot_default"))
        yield fake, HubSpotTicket, lambda f: [f"{r.endpoint} {r.object_type or ''}".strip() for r in f.requests]


@contextmanager
def salesforce() -> Iterator[tuple[Any, Callable[[], Any], Callable[[Any], list[str]]]]:
    from airflow_opsflow_testing.salesforce_server import FakeSalesforce

    from airflow_opsflow.alerts.salesforce import SalesforceCase

    with FakeSalesforce(api_limit=10**9) as fake:
        os.environ.update(fake.salesforce_connection("salesforce_default"))
        os.environ["REQUESTS_CA_BUNDLE"] = fake.ca_bundle  # the usual CAs plus the fake's
        yield fake, SalesforceCase, lambda f: [r.name for r in f.requests]


@contextmanager
def zendesk() -> Iterator[tuple[Any, Callable[[], Any], Callable[[Any], list[str]]]]:
    from airflow_opsflow_testing.zendesk_server import FakeZendesk

    from airflow_opsflow.alerts.zendesk import ZendeskTicket

    with FakeZendesk(rate_limit=100_000) as fake:
        os.environ.update(fake.zendesk_connection("zendesk_default"))
        yield fake, ZendeskTicket, lambda f: [r.name for r in f.requests]


SYSTEMS = {"hubspot": hubspot, "salesforce": salesforce, "zendesk": zendesk}


def run(system: str, k: int) -> dict[str, Counter[str]]:
    from airflow_opsflow.flows.deliver_alerts import deliver_pending, routes_for
    from airflow_opsflow.incidents.lifecycle import Observation, Policy, fingerprint
    from airflow_opsflow.incidents.repo import IncidentRepo, Subject
    from airflow_opsflow.state.store import StateStore

    phases: dict[str, Counter[str]] = {}
    with SYSTEMS[system]() as (fake, route_class, names), tempfile.TemporaryDirectory() as tmp:
        route = route_class()
        subjects = {fingerprint("bench", "check", f"c{i}"): Subject(fingerprint("bench", "check", f"c{i}"),
                                                                    "bench", "check", f"c{i}") for i in range(k)}
        result = {"table": "payments", "status": "fail", "violating_count": 3, "expected": "no NULL values"}
        for phase, failing in PHASES:
            repo = IncidentRepo(StateStore(lambda: sqlite3.connect(Path(tmp) / "state.db"), "sqlite"))
            before = len(names(fake))
            repo.record([(s, Observation(failing, "error", phase, result)) for s in subjects.values()], Policy(),
                        routes_for([route]))
            report = deliver_pending(repo, [route], subjects, {})
            assert not report.failed, report.failed
            phases[phase] = Counter(names(fake)[before:])
    return phases


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1,10,200")
    parser.add_argument("--doc", type=Path, default=DOC)
    args = parser.parse_args(argv)
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="opsflow-bench-"))
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "ERROR")
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        os.environ.pop(name, None)
    rows = []
    for system in SYSTEMS:
        for k in (int(x) for x in args.sizes.split(",")):
            for phase, calls in run(system, k).items():
                rows.append((system, k, phase, calls))
                print(f"{system:10} K={k:<4} {phase:16} {sum(calls.values()):5}  {dict(calls)}", flush=True)
    write_doc(args.doc, rows)
    print(f"wrote {args.doc}")
    return 0


def write_doc(doc: Path, rows: list[tuple[str, int, str, Counter[str]]]) -> None:
    lines = [
        START,
        "## HubSpot, Salesforce and Zendesk tickets: requests per run",
        "",
        "_Written by `python bench/ticket_backends.py`; counts, not timings (the testing kit's fakes, the routes' "
        "real clients)._",
        "",
        "One dispatch with K incidents routed to `HubSpotTicket()`, `SalesforceCase()` or `ZendeskTicket()`,",
        "state on SQLite. Target (issue 18): a run with nothing changed sends nothing.",
        "",
        "| system | K | run | requests | per incident | by endpoint |",
        "| --- | ---: | --- | ---: | ---: | --- |",
    ]
    for system, k, phase, c in rows:
        total = sum(c.values())
        detail = ", ".join(f"{n} {v}" for n, v in sorted(c.items(), key=lambda x: -x[1])) or "—"
        lines.append(f"| {system} | {k} | {phase} | {total} | {total / k:.2f} | {detail} |")
    lines += [
        "",
        "New incidents cost one batched look-up per run (HubSpot search, SOQL, Zendesk search) and one create",
        "each; Salesforce checks its statuses and priorities against the Case picklists once (describe) and",
        "reads the created Case back for its CaseNumber, HubSpot reads its pipeline's stages once per dispatch.",
        "Resolving reads the tickets' states in one batched read per run (HubSpot batch/read, a SOQL Id IN,",
        "Zendesk show_many; a single ticket by id), then adds the resolution as a comment (a note on HubSpot, a",
        "CaseComment on Salesforce; Zendesk's comment rides on the status update) and closes each. The rest is",
        "one write per ticket and per change: the routes follow each incident on its own, so a failure or a",
        "retry touches only its ticket.",
        END,
    ]
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    if START in text:
        text = text[: text.index(START)] + "\n".join(lines) + text[text.index(END) + len(END):]
    else:
        anchor = "<!-- bench:tickets:end -->"
        text = (text.replace(anchor, anchor + "\n\n" + "\n".join(lines), 1) if anchor in text
                else text.rstrip() + "\n\n" + "\n".join(lines) + "\n")
    doc.write_text(text)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
