"""Jira calls per run for K failing checks: `python bench/tickets.py` (or `make bench`).

Counts requests, not seconds: what one run of a task with K failing checks sends to Jira when the K
incidents are new, when nothing changed, and when they all resolve; against the fake Jira (Cloud mode,
the real `jira` library), with the state store on SQLite. Writes its section of docs/benchmarks.md.
A naive "create a ticket per failing check" task (what Airflow's Jira provider operator does) is shown
for comparison: K creates every run, and duplicates from the second run on.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- bench:tickets:start -->", "<!-- bench:tickets:end -->"


def run(k: int, mode: str) -> dict[str, Counter[str]]:
    from airflow_opsflow_testing.jira_server import FakeJira

    from airflow_opsflow.alerts.jira import JiraTicket
    from airflow_opsflow.flows.deliver_alerts import deliver_pending, routes_for
    from airflow_opsflow.incidents.lifecycle import Observation, Policy, fingerprint
    from airflow_opsflow.incidents.repo import IncidentRepo, Subject
    from airflow_opsflow.state.store import StateStore

    phases: dict[str, Counter[str]] = {}
    with FakeJira(mode=mode) as jira, tempfile.TemporaryDirectory() as tmp:
        os.environ.update(jira.jira_connection("opsflow_jira_default"))
        route = JiraTicket(project="OPS")
        subjects = {fingerprint("bench", "check", f"c{i}"): Subject(fingerprint("bench", "check", f"c{i}"),
                                                                    "bench", "check", f"c{i}") for i in range(k)}
        result = {"table": "payments", "status": "fail", "violating_count": 3, "expected": "no NULL values"}
        for phase, failing in (("new incidents", True), ("nothing changed", True), ("all resolve", False)):
            repo = IncidentRepo(StateStore(lambda: sqlite3.connect(Path(tmp) / "state.db"), "sqlite"))
            mark = jira.mark()
            observations = [(s, Observation(failing, "error", phase, result)) for s in subjects.values()]
            repo.record(observations, Policy(), routes_for([route]))
            report = deliver_pending(repo, [route], subjects, {})
            assert not report.failed, report.failed
            phases[phase] = Counter(r.name for r in jira.calls(since=mark))
        assert len(jira.issues) == k
    return phases


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1,10,200")
    parser.add_argument("--doc", type=Path, default=DOC)
    args = parser.parse_args(argv)
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="opsflow-bench-"))
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "ERROR")
    sizes = [int(x) for x in args.sizes.split(",")]
    rows = []
    for mode in ("cloud", "server"):
        for k in sizes:
            phases = run(k, mode)
            for phase, calls in phases.items():
                rows.append((mode, k, phase, calls))
                print(f"{mode:6} K={k:<4} {phase:16} {dict(calls)}", flush=True)
    write_doc(args.doc, rows)
    print(f"wrote {args.doc}")
    return 0


def write_doc(doc: Path, rows: list[tuple[str, int, str, Counter[str]]]) -> None:
    def cell(c: Counter[str], *names: str) -> str:
        return str(sum(c.get(n, 0) for n in names))

    lines = [
        START,
        "## Jira tickets: requests per run",
        "",
        "_Written by `python bench/tickets.py`; counts, not timings (the fake Jira, the real `jira` library)._",
        "",
        "One task run with K failing checks, each an incident routed to `JiraTicket(project=\"OPS\")`. `setup` is",
        "the client's own `serverInfo` and `field` look-ups (once per client).",
        "",
        "| deployment | K | run | searches | creates | comments | transitions | other reads | setup | naive creates |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for mode, k, phase, c in rows:
        other = sum(v for n, v in c.items() if n in ("issue", "transitions", "comments"))
        lines.append(f"| {mode} | {k} | {phase} | {cell(c, 'search')} | {cell(c, 'create')} | {cell(c, 'comment')} | "
                     f"{cell(c, 'transition')} | {other} | {cell(c, 'serverInfo', 'field')} | "
                     f"{k if phase != 'all resolve' else 0} |")
    lines += ["", "Per run: one batched search for all new incidents (`labels in (...)`), creates only for new "
              "incidents, and no request at all when nothing changed (the outbox has nothing to send). "
              "Resolving reads each ticket and its transitions before transitioning it.", END]
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    if START in text:
        text = text[: text.index(START)] + "\n".join(lines) + text[text.index(END) + len(END):]
    else:
        text = text.rstrip() + "\n\n" + "\n".join(lines) + "\n"
    doc.write_text(text)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
