"""ReportOperator on CRM and support sources in real DAG runs: a warehouse table (SQLite or PostgreSQL) merged with
Salesforce Accounts read by SOQL over several pages, or with Zendesk tickets read by the incremental export over
several pages, delivered to the fake Slack and SMTP; rate limits and transient failures of a source waited out, and
a source that keeps failing named with the task, the query and the source, nothing sent."""

from __future__ import annotations

import csv
import io
import uuid
from collections import defaultdict
from collections.abc import Iterator

import pytest
from airflow_opsflow_testing.dag_runner import run_dag
from airflow_opsflow_testing.salesforce_server import FakeSalesforce
from airflow_opsflow_testing.slack_server import FakeSlack
from airflow_opsflow_testing.smtp_server import FakeSmtp
from airflow_opsflow_testing.zendesk_server import FakeZendesk

from tests.conftest import Database
from tests.helpers import DAGS, load_module

pytestmark = pytest.mark.usefixtures("airflow_db", "slack_conn", "smtp_conn")
dags = load_module(DAGS / "reports_crm.py")

# customer_id, spend, Salesforce tier (None: no Account); amounts exact in binary floating point
CUSTOMERS: list[tuple[str, float, str | None]] = [
    ("C-01", 1200.5, "gold"), ("C-02", 800.25, "gold"), ("C-03", 300.0, "silver"), ("C-04", 150.75, "silver"),
    ("C-05", 90.0, "bronze"), ("C-06", 2400.0, "gold"), ("C-07", 60.5, "bronze"), ("C-08", 45.0, "silver"),
    ("C-09", 10.0, None), ("C-10", 5000.0, None),
]
SF_PAGE = 3  # records a SOQL page: the 7 customers' Accounts come in 3 pages
ZD_PAGE = 2  # the DAG's page_size: the export comes in several pages
# open (or pending/hold) tickets per customer; solved and closed ones are left out of the report
TICKETS: dict[str, list[str]] = {"C-01": ["open", "pending", "solved"], "C-03": ["hold"], "C-06": ["new", "closed"],
                                 "C-10": ["open", "open", "open"]}
OPEN = ("new", "open", "pending", "hold")


@pytest.fixture
def warehouse(db: Database, sqlite_db: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Database, str]]:
    """The customers table on SQLite or PostgreSQL (a table of this test's own there); deliveries recorded on SQLite."""
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", sqlite_db.conn_id)
    table = f"customers_{uuid.uuid4().hex[:6]}"
    money = "NUMERIC(12, 2)" if db.dialect == "postgres" else "REAL"
    bigint = "BIGINT" if db.dialect == "postgres" else "INTEGER"
    db.execute(f"CREATE TABLE {table} (customer_id TEXT, spend {money}, zendesk_org_id {bigint})")
    yield db, table
    db.execute(f"DROP TABLE {table}")


def _load(db: Database, table: str, orgs: dict[str, int] | None = None) -> None:
    mark = "%s" if db.dialect == "postgres" else "?"
    cur = db.conn.cursor()
    cur.executemany(f"INSERT INTO {table} VALUES ({mark}, {mark}, {mark})",
                    [(cid, spend, (orgs or {}).get(cid)) for cid, spend, _ in CUSTOMERS])
    db.conn.commit()
    cur.close()


def _csv_rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))


def _delivered(fake_slack: FakeSlack, fake_smtp: FakeSmtp, filename: str) -> tuple[list[dict[str, str]], str]:
    """The report's CSV as both channels carry it (the same rows in each), and the Slack message's text."""
    [mail] = fake_smtp.mails
    [upload] = fake_slack.files
    assert upload.filename == filename and upload.content is not None
    rows = _csv_rows(mail.attachments[filename])
    assert _csv_rows(upload.content) == rows
    [message] = fake_slack.messages("#ops")
    return rows, message.text or ""


def _log(capfd: pytest.CaptureFixture[str]) -> str:
    out = capfd.readouterr()
    return out.out + out.err


# -- Salesforce -------------------------------------------------------------------------------------------


@pytest.fixture
def salesforce(fake_salesforce: FakeSalesforce, salesforce_conn: str) -> FakeSalesforce:
    """An Account per customer that has a tier, and prospects the SOQL's WHERE leaves out; SOQL pages of 3."""
    fake_salesforce.define_field("Account", "Customer_Id__c", external_id=True, unique=True)
    fake_salesforce.define_field("Account", "Tier__c")
    for cid, _, tier in CUSTOMERS:
        if tier is not None:
            fake_salesforce.add_record("Account", Name=cid, Type="Customer - Direct", Customer_Id__c=cid, Tier__c=tier)
    for n in range(4):
        fake_salesforce.add_record("Account", Name=f"Prospect {n}", Type="Prospect", Tier__c="gold")
    fake_salesforce.set_query_batch_size(SF_PAGE)
    return fake_salesforce


def _spend_by_tier() -> list[tuple[str, int, float]]:
    """What the report must say, from the seed: (tier, accounts, spend) of customers with an Account, by spend."""
    totals: dict[str, list[float]] = defaultdict(list)
    for _, spend, tier in CUSTOMERS:
        if tier is not None:
            totals[tier].append(spend)
    return sorted(((t, len(s), sum(s)) for t, s in totals.items()), key=lambda r: -r[2])


def _as_tiers(rows: list[dict[str, str]]) -> list[tuple[str, int, float]]:
    assert list(rows[0]) == ["tier", "accounts", "spend"]
    return [(r["tier"], int(r["accounts"]), float(r["spend"])) for r in rows]


def test_a_report_merges_the_warehouse_with_salesforce_accounts_read_in_pages(
        warehouse: tuple[Database, str], salesforce: FakeSalesforce, fake_slack: FakeSlack,
        fake_smtp: FakeSmtp) -> None:
    db, table = warehouse
    _load(db, table)
    run = run_dag(dags.salesforce_dag, conf={"warehouse": db.conn_id, "customers": table})
    assert run.task_states == {"report": "success"}
    summary = run.xcom("report")
    assert summary["rows"] == 3 and summary["columns"] == ["tier", "accounts", "spend"]
    assert sorted(summary["delivered"]) == ["email:ops@example.com", "slack:slack_api_default/#ops"]
    rows, text = _delivered(fake_slack, fake_smtp, "spend_by_tier.csv")
    assert _as_tiers(rows) == _spend_by_tier()  # gold 4400.75 (3), silver 495.75 (3), bronze 150.5 (2)
    assert "4,400.75" in text and "Spend by Salesforce tier" in text
    # 8 Accounts match the SOQL: one query and two queryMore, 3 records a page
    assert len(salesforce.calls("query")) == 1 and len(salesforce.calls("query_more")) == 2


def test_a_salesforce_503_storm_is_waited_out(warehouse: tuple[Database, str], salesforce: FakeSalesforce,
                                              fake_slack: FakeSlack, fake_smtp: FakeSmtp,
                                              sleeps: list[float]) -> None:
    db, table = warehouse
    _load(db, table)
    salesforce.fail_next(503, target="query_more", times=3)  # SERVER_UNAVAILABLE mid-query, no Retry-After
    run = run_dag(dags.salesforce_dag, conf={"warehouse": db.conn_id, "customers": table})
    assert run.task_states == {"report": "success"} and run.tries["report"] == 1
    assert sleeps == [1.0, 2.0, 4.0]  # backed off (Salesforce sends no Retry-After), then read on
    assert [r.status for r in salesforce.calls("query_more")] == [503, 503, 503, 200, 200]
    rows, _ = _delivered(fake_slack, fake_smtp, "spend_by_tier.csv")
    assert _as_tiers(rows) == _spend_by_tier()  # no page lost or read twice


def test_a_salesforce_storm_that_does_not_end_is_named_and_nothing_is_sent(
        warehouse: tuple[Database, str], salesforce: FakeSalesforce, fake_slack: FakeSlack, fake_smtp: FakeSmtp,
        sleeps: list[float], capfd: pytest.CaptureFixture[str]) -> None:
    db, table = warehouse
    _load(db, table)
    salesforce.fail_next(503, target="query_more", times=50)
    run = run_dag(dags.salesforce_dag, conf={"warehouse": db.conn_id, "customers": table})
    assert run.task_states == {"report": "failed"}
    assert fake_slack.messages() == [] and fake_slack.files == [] and fake_smtp.mails == []
    assert ("dag 'test_report_salesforce', task 'report': query 'accounts' could not read Salesforce Account "
            "(connection 'salesforce_default'): Salesforce: reading the next page still failed after 5 tries: "
            "Salesforce (salesforce_default): HTTP 503: SERVER_UNAVAILABLE") in _log(capfd)
    assert len(salesforce.calls("query_more")) == 5


# -- Zendesk ----------------------------------------------------------------------------------------------


@pytest.fixture
def zendesk(fake_zendesk: FakeZendesk, zendesk_conn: str) -> tuple[FakeZendesk, dict[str, int]]:
    """An organization per customer, the TICKETS above, and a ticket of no organization."""
    fake_zendesk.set_rate_limit(700, 60.0, incremental_limit=100)  # Zendesk's 10 exports a minute: not the topic
    orgs = {cid: fake_zendesk.add_organization(cid, external_id=cid).id for cid, *_ in CUSTOMERS}
    for cid, statuses in TICKETS.items():
        for n, status in enumerate(statuses):
            fake_zendesk.add_ticket(f"{cid} #{n}", status=status, organization_id=orgs[cid])
    fake_zendesk.add_ticket("no organization", status="open")
    return fake_zendesk, orgs


def _open_tickets() -> list[tuple[str, int, float]]:
    """(customer, open tickets, spend) of customers with an open ticket, by spend, from the seed."""
    spend = {cid: s for cid, s, _ in CUSTOMERS}
    counts = {cid: sum(s in OPEN for s in statuses) for cid, statuses in TICKETS.items()}
    return sorted(((cid, n, spend[cid]) for cid, n in counts.items() if n), key=lambda r: -r[2])


def _as_open(rows: list[dict[str, str]]) -> list[tuple[str, int, float]]:
    assert list(rows[0]) == ["customer_id", "open_tickets", "spend"]
    return [(r["customer_id"], int(r["open_tickets"]), float(r["spend"])) for r in rows]


def _pages() -> int:
    """Requests the tickets export takes at ZD_PAGE a page (the last page says end_of_stream)."""
    tickets = sum(len(s) for s in TICKETS.values()) + 1
    return -(-tickets // ZD_PAGE)


def test_a_report_merges_the_warehouse_with_zendesk_tickets_exported_in_pages(
        warehouse: tuple[Database, str], zendesk: tuple[FakeZendesk, dict[str, int]], fake_slack: FakeSlack,
        fake_smtp: FakeSmtp) -> None:
    db, table = warehouse
    fake, orgs = zendesk
    _load(db, table, orgs)
    run = run_dag(dags.zendesk_dag, conf={"warehouse": db.conn_id, "customers": table})
    assert run.task_states == {"report": "success"}
    rows, text = _delivered(fake_slack, fake_smtp, "open_tickets.csv")
    assert _as_open(rows) == _open_tickets()  # C-10 3 (5000), C-06 1 (2400), C-01 2 (1200.5), C-03 1 (300)
    assert "C-10" in text and "C-05" not in text
    calls = fake.calls("incremental_tickets")
    assert len(calls) == _pages() and len(calls) >= 3  # paged by cursor, not read at once


def test_a_zendesk_429_is_waited_out_for_its_retry_after(
        warehouse: tuple[Database, str], zendesk: tuple[FakeZendesk, dict[str, int]], fake_slack: FakeSlack,
        fake_smtp: FakeSmtp, sleeps: list[float]) -> None:
    db, table = warehouse
    fake, orgs = zendesk
    _load(db, table, orgs)
    fake.fail_next("incremental_tickets", status=429, retry_after=7, times=2)
    run = run_dag(dags.zendesk_dag, conf={"warehouse": db.conn_id, "customers": table})
    assert run.task_states == {"report": "success"} and run.tries["report"] == 1
    assert sleeps == [7.0, 7.0]  # Zendesk's Retry-After, not a back-off of our own
    assert [r.status for r in fake.calls("incremental_tickets")][:3] == [429, 429, 200]
    assert len(fake.calls("incremental_tickets")) == _pages() + 2
    rows, _ = _delivered(fake_slack, fake_smtp, "open_tickets.csv")
    assert _as_open(rows) == _open_tickets()


def test_a_zendesk_that_keeps_refusing_is_named_and_nothing_is_sent(
        warehouse: tuple[Database, str], zendesk: tuple[FakeZendesk, dict[str, int]], fake_slack: FakeSlack,
        fake_smtp: FakeSmtp, sleeps: list[float], capfd: pytest.CaptureFixture[str]) -> None:
    db, table = warehouse
    fake, orgs = zendesk
    _load(db, table, orgs)
    fake.fail_next("incremental_tickets", status=429, retry_after=30, times=100)
    run = run_dag(dags.zendesk_dag, conf={"warehouse": db.conn_id, "customers": table})
    assert run.task_states == {"report": "failed"}
    assert fake_slack.messages() == [] and fake_smtp.mails == []
    log = _log(capfd)
    assert ("dag 'test_report_zendesk', task 'report': query 'tickets' could not read Zendesk tickets "
            "(connection 'zendesk_default'): Zendesk: exporting tickets still failed after 12 tries") in log
    assert sleeps == [30.0] * 11  # each Retry-After honoured, then given up
