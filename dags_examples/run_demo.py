"""`make demo`: run the example check DAG for real on an embedded SQLite database and tell the story.

1. seed a SQLite database with payments, deliveries and invoices carrying planted problems;
2. start local stand-ins for Slack and SMTP (``airflow_opsflow_testing``) and point the Airflow
   connections at them; incidents are kept in a SQLite state database;
3. run the ``ops_payments_and_deliveries`` DAG with Airflow's ``dag.test()`` (temporary AIRFLOW_HOME)
   and print each check task's report and the alerts the stand-ins received;
4. run again on the same data: the incidents are ongoing, nobody is alerted twice;
5. repair the data, run again: every check passes and each incident resolves in its Slack thread.

Each round also runs ``crm_high_priority_accounts`` (reverse ETL): the accounts ranked by spend are
mirrored into a HubSpot stand-in and the billing API stand-in is called once per broken invoice; the
second round sends nothing (nothing changed), the third only what the repair changed.

And ``support_loop`` closes the loop where support and sales work: the same accounts become Zendesk
organizations (tier, spend), the tickets their organizations already have open are ranked (urgent and
``vip`` for critical accounts, high for high ones), and they set a field on their Salesforce Accounts; the
failed payments open one Salesforce Case, and a reconcile of the payments against the Accounts finds a
customer Salesforce does not know (another Case). Round 2 sends nothing; round 3 updates what the repair
changed (an account turned critical: its open tickets urgent) and closes the Cases.

6. deliver the reports: ``finance_monthly_report`` (payments merged with a second database's
   settlements; XLSX, CSV and a chart by email and to Slack) and ``ops_daily_summary`` (a Slack table).

Airflow's own log goes to .demo/airflow.log so the story stays readable.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEMO = HERE.parent / ".demo"
DB = DEMO / "ops.db"
LOG = DEMO / "airflow.log"


@contextmanager
def quiet(log_path: Path) -> Iterator[None]:
    """Send this process's stdout/stderr (Airflow's task logs) to a file for the block."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_path, "a") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)


def print_alerts(slack_messages: list[Any], mails: list[Any]) -> None:
    print(f"\n-- What the Slack stand-in received: {len(slack_messages) or 'nothing new'}")
    for m in slack_messages:
        where = f"#{m.channel_name}" + (" (in thread)" if m.is_reply else "")
        edited = " [original message updated to resolved]" if m.history else ""
        print(f"   {where}: {m.text}{edited}")
    print(f"-- What the SMTP stand-in received: {len(mails) or 'nothing new'}")
    for mail in mails:
        print(f"   to {mail['To']}: {mail['Subject']}")


def sync_counts(report: dict[str, Any]) -> str:
    c = report["counts"]
    return (f"{c['added']} added, {c['changed']} changed, {c['deleted']} deleted, {c['unchanged']} unchanged, "
            f"{c['failed']} failed ({report['diff']} diff, {report['requests'].get('total', 0)} requests)")


def print_sync(result: Any, hubspot: Any, billing: Any, seen: dict[str, int]) -> None:
    """What the reverse-ETL DAG did, and what the HubSpot and billing API stand-ins received."""
    print(f"\n## crm_high_priority_accounts: {result.state}")
    for task_id in ("sync_high_priority_accounts", "regenerate_broken_invoices"):
        report = result.xcoms.get(task_id, {}).get("sync")
        if report:
            print(f"   {task_id}: {sync_counts(report)}")
    calls = hubspot.calls()
    writes = [c for c in calls[seen["hubspot"]:] if c.method == "POST"]
    print(f"-- HubSpot stand-in: {len(writes) or 'no'} batch request(s); "
          f"{len(hubspot.objects('companies'))} high-priority companies, "
          f"{len(hubspot.objects('companies', archived=True))} archived")
    for c in writes:
        print(f"   POST {c.path} ({len(c.body.get('inputs', []))} records)")
    new_calls = billing.requests[seen["billing"]:]
    print(f"-- Billing API stand-in: {len(new_calls) or 'no'} call(s)")
    for r in new_calls[:5]:
        print(f"   {r.method} {r.path} (Idempotency-Key {r.headers.get('Idempotency-Key', '')[:12]}...)")
    seen["hubspot"], seen["billing"] = len(calls), len(billing.requests)


# Support's Zendesk before the loop: a few customers' organizations (external_id = the warehouse id), each with
# tickets in several statuses and no priority. 187 is a critical account, 98 high (critical after the repair),
# 52 high; 171 is below the bar.
SUPPORT_TICKETS = {
    187: [("new", "Export to CSV times out"), ("open", "Invoice shows the wrong VAT number"),
          ("pending", "SSO login loops back to the sign-in page"), ("solved", "Add a second admin"),
          ("closed", "Password reset email not received")],
    98: [("open", "Webhook deliveries delayed by hours"), ("pending", "Refund for a double charge"),
         ("solved", "Change the billing email")],
    52: [("open", "Card declined on renewal"), ("new", "Need a copy of last year's invoices"),
         ("closed", "Typo in the company name")],
    171: [("open", "Dashboard shows yesterday's numbers"), ("new", "How do I add a user?"),
          ("solved", "Upgrade to the annual plan")],
}


def setup_support_systems(zendesk: Any, salesforce: Any, customers: list[tuple[int, str]]) -> None:
    """What ``support_loop`` expects to find, as an admin sets it up once: the Zendesk organization fields,
    the Salesforce Account fields, and the sales team's Accounts (one per customer, by warehouse id); and what
    support has already: a few organizations with their tickets (:data:`SUPPORT_TICKETS`)."""
    zendesk.define_field("organization", "tier", "dropdown", options=["critical", "high"])
    zendesk.define_field("organization", "total_spend", "decimal")
    zendesk.define_field("organization", "spend_rank", "integer")
    names = dict(customers)
    for account_id, tickets in SUPPORT_TICKETS.items():
        org = zendesk.add_organization(names[account_id], external_id=str(account_id))
        requester = zendesk.add_user(f"{names[account_id]} admin", f"admin@customer{account_id}.example.com",
                                     organization_id=org.id)
        for status, subject in tickets:
            zendesk.add_ticket(subject, status=status, comment=subject, requester_id=requester.id,
                               organization_id=org.id)
    salesforce.define_field("Account", "Warehouse_Id__c", external_id=True, unique=True)
    salesforce.define_field("Account", "Tier__c", "picklist", picklist=["critical", "high"], restricted=True)
    salesforce.define_field("Account", "Total_Spend__c", "currency")
    for account_id, name in customers:
        salesforce.add_record("Account", Name=name, Warehouse_Id__c=str(account_id))


def print_loop(result: Any, zendesk: Any, salesforce: Any, seen: dict[str, int]) -> None:
    """What ``support_loop`` did, and what the Zendesk and Salesforce stand-ins received."""
    print(f"\n## support_loop: {result.state}")
    for task_id in ("accounts_to_zendesk", "rank_open_tickets", "accounts_to_salesforce"):
        report = result.xcoms.get(task_id, {}).get("sync")
        if report:
            print(f"   {task_id}: {sync_counts(report)}")
    for task_id in ("failed_payments", "customers_in_salesforce"):
        for r in (result.xcoms.get(task_id, {}).get("results") or {}).get("results", []):
            # a reconcile's samples: the keys that disagree
            keys = [" ".join(f"{v}" for k, v in row.items() if k != "difference")
                    for row in r.get("samples") or [] if "difference" in row]
            print(f"   {task_id}: {r['status'].upper()} {r['message']}" + (f" ({'; '.join(keys[:3])})" if keys else ""))
    calls = zendesk.calls(since=seen["zendesk"])
    writes = [c for c in calls if c.is_write and c.name != "update_many_tickets"]
    orgs = zendesk.organizations
    tiers = [o.fields.get("tier") for o in orgs]
    print(f"-- Zendesk stand-in: {len(writes) or 'no'} bulk request(s); {len(orgs)} organizations "
          f"({tiers.count('critical')} critical, {tiers.count('high')} high, {tiers.count(None)} without a tier)")
    for c in writes:
        print(f"   {c.method} {c.path} ({len(c.body.get('organizations', []))} organizations)")
    top = min(orgs, key=lambda o: o.fields.get("spend_rank") or len(orgs), default=None)
    if writes and top is not None:
        fields = ", ".join(f"{k} {v}" for k, v in top.fields.items())
        print(f"   e.g. {top.name} (external_id {top.external_id}): {fields}")
    print_ranked_tickets(zendesk, [c for c in calls if c.name == "update_many_tickets"])
    changes = salesforce.writes()[seen["salesforce"]:]
    accounts = [w for w in changes if w.object == "Account"]
    if accounts:
        created = sum(w.op == "create" for w in accounts)
        print(f"-- Salesforce stand-in: {len(accounts) - created} Account(s) updated"
              + (f", {created} created" if created else "")
              + f" ({', '.join(sorted({f for w in accounts for f in w.values if f.endswith('__c')}))})")
    else:
        print("-- Salesforce stand-in: no Account written")
    cases = {c["Id"]: c for c in salesforce.records("Case")}
    events: dict[str, list[str]] = {}  # per Case, in order: opened, commented, closed
    for w in changes:
        if w.object == "Case" and w.op == "create":
            events.setdefault(w.id, []).append(f"opened [{w.values.get('Priority')}]: {w.values['Subject']}")
        elif w.object == "Case" and w.values.get("Status") == "Closed":
            events.setdefault(w.id, []).append("closed, the resolution as its comment")
        elif w.object == "CaseComment":
            events.setdefault(w.values["ParentId"], []).append("commented")
    for case_id, what in events.items():
        if what[-2:] == ["commented", "closed, the resolution as its comment"]:
            what.pop(-2)  # a close is a comment and a status change
        print(f"   Case {cases[case_id]['CaseNumber']} {', '.join(what)}")
    if not events:
        print(f"   no Case opened, commented or closed ({sum(not c['IsClosed'] for c in cases.values())} open)")
    seen["zendesk"], seen["salesforce"] = zendesk.mark(), len(salesforce.writes())


def print_ranked_tickets(zendesk: Any, requests: list[Any]) -> None:
    """The open tickets ``rank_open_tickets`` re-ranked in this run (its ``update_many`` requests)."""
    changes = {int(t): r.body["ticket"] for r in requests for t in r.query["ids"][0].split(",")}
    line = f"-- Zendesk tickets: {len(requests) or 'no'} update request(s)"
    if changes:
        priorities = [c.get("priority") for c in changes.values()]
        vip = sum("vip" in c.get("additional_tags", []) for c in changes.values())
        counts = ", ".join(f"{priorities.count(p)} {p}" for p in ("urgent", "high") if p in priorities)
        done = [t for t in zendesk.tickets if t.status in ("solved", "closed")]
        untouched = all(t.priority is None and not t.tags for t in done)
        line += (f"; {len(changes)} open tickets re-ranked: {counts}" + (f" (tag vip on {vip})" if vip else "")
                 + (f"; the {len(done)} solved/closed untouched" if untouched else ""))
    print(line)
    names = {o.id: o.name for o in zendesk.organizations}
    for r in requests:
        ids = [int(t) for t in r.query["ids"][0].split(",")]
        orgs = ", ".join(dict.fromkeys(names[zendesk.ticket(t).organization_id] for t in ids))
        change = r.body["ticket"]
        tags = "".join(f", +{t}" for t in change.get("additional_tags", []))
        print(f"   {r.method} {r.path} ({len(ids)} tickets of {orgs}): priority {change.get('priority')}{tags}")


def print_reports(results: list[Any], slack: Any, smtp: Any, seen_slack: int, seen_mail: int) -> None:
    print("=" * 100)
    print("Reports: " + ", ".join(f"{r.dag_id} {r.state}" for r in results))
    print("=" * 100)
    for m in slack.messages()[seen_slack:]:
        files = [f for f in slack.files if f.id in (m.files or [])]
        attached = ", ".join(f"{f.filename} ({f.length:,} bytes)" for f in files)
        text = m.blocks[0]["text"]["text"] if m.blocks else (m.text or "")
        print(f"\n-- Slack #{m.channel_name}:" + (f" files {attached}" if attached else ""))
        print("   " + text.replace("\n", "\n   "))
    for mail in smtp.mails[seen_mail:]:
        print(f"\n-- Email to {', '.join(mail.rcpt_tos)}: {mail.subject}")
        print("   attachments: " + ", ".join(f"{n} ({len(b):,} bytes)" for n, b in mail.attachments.items())
              + "; the chart inline")
    print()


def print_history(state: Path) -> None:
    """What the result history holds after the three runs: the documented "flaky checks" query
    (docs/history.md), on the demo's state database."""
    import re

    doc = (HERE.parent / "docs" / "history.md").read_text()
    flaky = re.search(r"<!-- query: flaky -->\n```sql\n(.*?)```", doc, re.S)
    db = sqlite3.connect(state)
    try:
        checks, runs = db.execute("SELECT COUNT(*), COUNT(DISTINCT run_id) FROM opsflow_check_results").fetchone()
        syncs = db.execute("SELECT COUNT(*) FROM opsflow_sync_runs").fetchone()[0]
        rows = db.execute(flaky.group(1)).fetchall() if flaky else []
    finally:
        db.close()
    print("=" * 100)
    print(f"Result history ({state.name}, docs/history.md): {checks} check results from {runs} task runs, "
          f"{syncs} sync runs")
    print("=" * 100)
    print("Checks that failed at least once (the 'flaky checks' query): runs, failing runs, verdict flips")
    for dag_id, task_id, check, n, failing, flips in rows:
        if failing:
            print(f"   {dag_id}/{task_id}/{check}: {n} runs, {failing} failing, {flips} flip(s)")
    print()


def main() -> int:
    DEMO.mkdir(exist_ok=True)
    LOG.write_text("")
    from airflow_opsflow_testing.sample_data import repair, seed

    conn = sqlite3.connect(DB)
    counts = seed(conn)
    print(f"Seeded {DB.relative_to(HERE.parent)}: " + ", ".join(f"{n} {t}" for t, n in counts.items()))
    print("Planted: 6/40 failed payments in the last hour, 2 negative amounts, 1 unknown customer,")
    print("         4 deliveries stuck in transit > 48 h, 3 invoices that do not add up, 1 duplicate number.\n")
    os.environ["AIRFLOW_CONN_OPS_DB"] = json.dumps({"conn_type": "sqlite", "host": str(DB)})
    state = DEMO / "state.db"
    state.unlink(missing_ok=True)
    os.environ["AIRFLOW_CONN_OPSFLOW_STATE"] = json.dumps({"conn_type": "sqlite", "host": str(state)})
    os.environ["AIRFLOW__OPSFLOW__STATE_CONN_ID"] = "opsflow_state"

    from airflow_opsflow_testing.dag_runner import airflow_home, run_dag
    from airflow_opsflow_testing.hubspot_server import FakeHubSpot
    from airflow_opsflow_testing.jira_server import FakeJira
    from airflow_opsflow_testing.recording_http import RecordingHTTPServer
    from airflow_opsflow_testing.salesforce_server import FakeSalesforce
    from airflow_opsflow_testing.slack_server import FakeSlack
    from airflow_opsflow_testing.smtp_server import FakeSmtp
    from airflow_opsflow_testing.zendesk_server import FakeZendesk

    started = time.monotonic()
    with FakeSlack() as slack, FakeSmtp() as smtp, FakeJira() as jira, FakeHubSpot() as hubspot, \
            RecordingHTTPServer() as billing, FakeZendesk() as zendesk, FakeSalesforce() as salesforce, \
            airflow_home(dags_folder=HERE):
        for name, kind, options in (("opsflow_account_id", "string", None), ("plan", "string", None),
                                    ("total_spend", "number", None), ("spend_rank", "number", None),
                                    ("priority", "enumeration", ["critical", "high"])):
            hubspot.define_property("companies", name, kind, unique=name == "opsflow_account_id", options=options)
        os.environ.update(hubspot.hubspot_connection("hubspot_default"))
        os.environ.update(billing.http_connection("billing_api"))
        seen = {"hubspot": 0, "billing": 0}
        os.environ.update(slack.slack_connection("slack_api_default"))
        os.environ.update(smtp.smtp_connection("smtp_default"))
        os.environ.update(jira.jira_connection("opsflow_jira_default"))
        setup_support_systems(zendesk, salesforce, conn.execute("SELECT id, name FROM customers").fetchall())
        os.environ.update(zendesk.zendesk_connection("zendesk_default"))  # with ZENPY_FORCE_SCHEME=http
        os.environ.update(salesforce.salesforce_connection("salesforce_default"))
        os.environ["REQUESTS_CA_BUNDLE"] = salesforce.ca_bundle  # the stand-in's throwaway CA, and the usual ones
        os.environ["NO_PROXY"] = os.environ["no_proxy"] = ",".join(  # the stand-ins are local: never via a proxy
            filter(None, [os.environ.get("NO_PROXY") or os.environ.get("no_proxy"), "127.0.0.1"]))
        seen_loop = {"zendesk": 0, "salesforce": 0}
        print(f"Stand-ins: Slack {slack.url}, Jira {jira.url}, SMTP 127.0.0.1:{smtp.port}, Zendesk {zendesk.url} "
              f"({len(zendesk.organizations)} organizations, {len(zendesk.tickets)} tickets), Salesforce "
              f"{salesforce.url} ({len(salesforce.records('Account'))} Accounts); state in {state.name}\n")
        sys.path.insert(0, str(HERE))
        from payments_and_deliveries import dag
        from reverse_sync import dag as sync_dag
        from support_loop import dag as loop_dag

        from airflow_opsflow.checks.report import format_report
        from airflow_opsflow.core.results import CheckResult

        runs = ((1, "Run 1: the data as it is"), (2, "Run 2: 15 minutes later, nothing fixed yet"),
                (3, "Run 3: after the ops team repaired the data"))
        for attempt, title in runs:
            if attempt == 3:
                repair(conn)
            seen_slack, seen_mail = len(slack.messages()), len(smtp.messages)
            with quiet(LOG):
                result = run_dag(dag)
                synced = run_dag(sync_dag)
                looped = run_dag(loop_dag)
            print("=" * 100)
            print(f"{title}: DAG run {result.state}")
            print("=" * 100)
            for task_id, task_state in sorted(result.task_states.items()):
                payload = result.xcoms.get(task_id, {}).get("results")
                print(f"\n## {task_id}: {task_state}")
                if payload and attempt != 2:
                    results = [CheckResult.from_dict(r) for r in payload["results"]]
                    print(format_report(results))
            print_alerts(slack.messages()[seen_slack:], smtp.messages[seen_mail:])
            print(f"-- Tickets in the Jira stand-in: {len(jira.issues) or 'none'}")
            for t in jira.issues:
                print(f"   {t.key} [{t.status}] {t.summary}")
            print_sync(synced, hubspot, billing, seen)
            print_loop(looped, zendesk, salesforce, seen_loop)
            print()
        from airflow_opsflow_testing.sample_metrics import seed_settlements
        from reports import daily, finance

        warehouse = sqlite3.connect(DEMO / "warehouse.db")
        seed_settlements(warehouse, conn)  # the processor's side, in another database
        os.environ["AIRFLOW_CONN_WAREHOUSE"] = json.dumps({"conn_type": "sqlite", "host": str(DEMO / "warehouse.db")})
        seen_slack, seen_mail = len(slack.messages()), len(smtp.mails)
        with quiet(LOG):
            # The sample data covers the last 30 days: report on them rather than on last calendar month.
            reports = [run_dag(finance, conf={"period": "last_30_days"}), run_dag(daily)]
        print_reports(reports, slack, smtp, seen_slack, seen_mail)
    print_history(state)
    print(f"Done in {time.monotonic() - started:.0f} s. Airflow's own log: {LOG.relative_to(HERE.parent)}")
    print("Point the same DAG at your own systems: an Airflow connection to your database (any SQL type,")
    print("then trigger with {\"conn_id\": \"<your connection>\"}), `slack_api_default` (type slack, a bot")
    print("token with chat:write and channels:history), `smtp_default` (type smtp), `opsflow_jira_default`")
    print("(type opsflow_jira: your Jira URL, email and API token), `hubspot_default` (type opsflow_hubspot: a")
    print("private app token), `billing_api` (type http), `zendesk_default` (type zendesk), `salesforce_default`")
    print("(type salesforce; the fields support_loop.py names) and a state database")
    print("([opsflow] state_conn_id, e.g. AIRFLOW__OPSFLOW__STATE_CONN_ID=ops_state).")
    print()
    print("The Ops view (what is broken now, entities at stake, check history, syncs) of this demo's state, in")
    print("the Airflow UI: `make demo-ui` (Airflow standalone on it, then open Ops in its navigation).")
    if "--ui" in sys.argv[1:]:
        return serve_ui(state)
    return 0


def serve_ui(state: Path, port: int = 8080) -> int:
    """Airflow standalone on the demo's state database and example DAGs, with the Ops view, until Ctrl-C."""
    import subprocess

    home = DEMO / "airflow-ui"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_AIRFLOW"))}
    env.update({"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(HERE),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__API__HOST": "127.0.0.1", "AIRFLOW__API__PORT": str(port),
                "AIRFLOW__OPSFLOW__STATE_CONN_ID": "opsflow_state",
                "AIRFLOW_CONN_OPSFLOW_STATE": json.dumps({"conn_type": "sqlite", "host": str(state)})})
    print(f"\nStarting Airflow: open http://127.0.0.1:{port}/plugin/opsflow (the Ops view) once it is up; "
          "Ctrl-C stops it.")
    try:
        return subprocess.call([str(Path(sys.executable).parent / "airflow"), "standalone"], env=env)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
