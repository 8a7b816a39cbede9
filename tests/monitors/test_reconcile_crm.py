"""Reconcile checks with a side on HubSpot, Salesforce or Zendesk, against their fakes through the real clients:
each API side is streamed page by page into a throwaway SQLite file, read back in key order and merged with the
warehouse (SQLite or PostgreSQL), then the file is removed."""

from __future__ import annotations

import sqlite3
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from airflow_opsflow_testing.dag_runner import run_dag
from airflow_opsflow_testing.hubspot_server import FakeHubSpot
from airflow_opsflow_testing.salesforce_server import FakeSalesforce
from airflow_opsflow_testing.slack_server import FakeSlack
from airflow_opsflow_testing.zendesk_server import FakeZendesk

from airflow_opsflow.checks.loader import CheckSpecError, load_suite
from airflow_opsflow.checks.monitor_spec import ReconcileCheck
from airflow_opsflow.core import api_source
from airflow_opsflow.core.api_source import ApiError, ApiRetry, ApiSource, Page, ZendeskExport
from airflow_opsflow.core.results import CheckResult
from airflow_opsflow.core.staging import stage
from airflow_opsflow.flows.check_suite import run_suite
from tests.conftest import Database
from tests.helpers import DAGS, load_module, results_by_name

dags = load_module(DAGS / "reconcile_crm.py")

# customer_id, domain, plan, tier; the breaks planted in the systems are said beside each
CUSTOMERS = [
    ("C-01", "acme.com", "pro", "gold"),
    ("C-02", "beta.io", "pro", "silver"),  # Salesforce: gold
    ("C-03", "gamma.net", "free", "silver"),  # not in HubSpot
    ("C-04", "delta.org", "pro", "gold"),  # not in Salesforce
    ("C-05", "eps.com", "churned", "silver"),  # HubSpot: gold; an open Zendesk ticket
    ("C-06", "zeta.com", "churned", "gold"),  # only a solved ticket
    *[(f"C-{n}", f"shop{n}.com", "pro", "gold") for n in range(10, 16)],
]


@dataclass
class Systems:
    hubspot: FakeHubSpot
    salesforce: FakeSalesforce
    zendesk: FakeZendesk
    orgs: dict[str, int]  # customer_id -> Zendesk organization id


@pytest.fixture
def systems(fake_hubspot: FakeHubSpot, hubspot_conn: str, fake_salesforce: FakeSalesforce, salesforce_conn: str,
            fake_zendesk: FakeZendesk, zendesk_conn: str) -> Systems:
    """The CRM and the support desk as the warehouse's customers left them, with the breaks above."""
    fake_hubspot.define_property("companies", "tier", "string")
    fake_hubspot.client().crm.objects.batch_api.create("companies", {"inputs": [
        *[{"properties": {"domain": domain, "tier": "gold" if cid == "C-05" else tier}}
          for cid, domain, _, tier in CUSTOMERS if cid != "C-03"],
        {"properties": {"domain": "unknown.com", "tier": "silver"}}]})

    sf = fake_salesforce
    sf.define_field("Account", "Customer_Id__c", external_id=True, unique=True)
    sf.define_field("Account", "Tier__c")
    for cid, _, plan, tier in CUSTOMERS:
        if plan == "pro" and cid != "C-04":
            sf.add_record("Account", Name=cid, Type="Customer - Direct", Customer_Id__c=cid,
                          Tier__c="gold" if cid == "C-02" else tier)
    sf.add_record("Account", Name="C-99", Type="Customer - Direct", Customer_Id__c="C-99", Tier__c="gold")
    for n in range(3):
        sf.add_record("Account", Name=f"Prospect {n}", Type="Prospect")
    sf.set_query_batch_size(2)

    zd = fake_zendesk
    zd.set_rate_limit(700, 60.0, incremental_limit=100)
    orgs = {cid: zd.add_organization(cid, external_id=cid).id for cid, *_ in CUSTOMERS}
    zd.add_ticket("refund?", status="open", organization_id=orgs["C-05"])
    zd.add_ticket("thanks", status="solved", organization_id=orgs["C-06"])
    zd.add_ticket("login", status="open", organization_id=orgs["C-01"])
    zd.add_ticket("invoice", status="pending", organization_id=orgs["C-01"])
    zd.add_ticket("no organization", status="open")
    zd.add_ticket("waiting", status="hold", organization_id=orgs["C-10"])
    return Systems(fake_hubspot, sf, zd, orgs)


def _warehouse(db: Database, systems: Systems, table: str = "customers") -> None:
    bigint = "BIGINT" if db.dialect == "postgres" else "INTEGER"
    db.execute(f"CREATE TABLE {table} (customer_id TEXT, domain TEXT, plan TEXT, tier TEXT, zendesk_org_id {bigint})")
    mark = "%s" if db.dialect == "postgres" else "?"
    cur = db.conn.cursor()
    cur.executemany(f"INSERT INTO {table} VALUES ({', '.join([mark] * 5)})",
                    [(*row, systems.orgs[row[0]]) for row in CUSTOMERS])
    db.conn.commit()


@pytest.fixture
def staging_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the staged files go (the system's temporary directory, pointed here): empty again after a run."""
    where = tmp_path / "tmp"
    where.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(where))
    return where


def _conf(db: Database, **more: Any) -> dict[str, Any]:
    """Every param of the DAG, so that no run depends on what an earlier run in this process was given."""
    return {"warehouse": db.conn_id, "customers": "customers", "page_size": 2,
            "soql": "SELECT Customer_Id__c, Tier__c FROM Account WHERE Type = 'Customer - Direct'", **more}


def _staged_files(where: Path) -> list[str]:
    return sorted(p.name for p in where.glob("opsflow-stage-*"))


def _check_crm_results(results: dict[str, dict[str, Any]], systems: Systems) -> None:
    sf = results["paying_customers_in_salesforce"]
    assert sf["status"] == "fail" and sf["violating_count"] == 2 and sf["rows_checked"] == 9, sf["message"]
    assert sf["table"] == "warehouse vs Salesforce Account"
    assert sf["message"] == ("9 keys: 1 only on warehouse; 1 mismatched (Tier__c 1); "
                             "1 more on Salesforce Account (expected)")
    assert {(s["Customer_Id__c"], s["difference"]) for s in sf["samples"]} == {
        ("C-04", "only on warehouse"), ("C-02", "Tier__c: silver vs gold")}
    assert sf["observed"]["Salesforce Account staged"]["records"] == 9

    hs = results["companies_in_hubspot"]
    assert hs["status"] == "fail" and hs["violating_count"] == 3, hs
    assert {(s["domain"], s["difference"]) for s in hs["samples"]} == {
        ("gamma.net", "only on warehouse"), ("unknown.com", "only on HubSpot companies"),
        ("eps.com", "tier: silver vs gold")}

    zd = results["no_open_ticket_of_a_churned_account"]
    assert zd["status"] == "fail" and zd["violating_count"] == 1, zd
    assert zd["samples"] == [{"organization_id": systems.orgs["C-05"],
                              "difference": "on both churned accounts and open tickets"}]
    assert zd["expected"] == "no organization_id on both churned accounts and open tickets"


@pytest.mark.usefixtures("airflow_db")
def test_the_warehouse_against_salesforce_hubspot_and_zendesk(sqlite_db: Database, systems: Systems,
                                                             staging_dir: Path) -> None:
    _warehouse(sqlite_db, systems)
    run = run_dag(dags.dag, conf=_conf(sqlite_db))
    assert run.task_states == {"reconcile_crm": "failed"}  # the planted breaks fail the checks
    _check_crm_results(results_by_name(run.xcom("reconcile_crm", key="results")), systems)
    # Every system was read in several pages (page sizes of 2), and nothing staged is left behind.
    assert len(systems.salesforce.calls("query")) == 1 and len(systems.salesforce.calls("query_more")) == 4
    assert len(systems.hubspot.calls("list", "companies")) == 6
    assert len(systems.zendesk.calls("incremental_tickets")) == 3
    assert _staged_files(staging_dir) == []


@pytest.mark.usefixtures("airflow_db")
def test_a_postgres_warehouse_against_the_crm(pg_db: Database, systems: Systems) -> None:
    table = f"customers_{uuid.uuid4().hex[:6]}"
    _warehouse(pg_db, systems, table)
    try:
        run = run_dag(dags.dag, conf=_conf(pg_db, customers=table))
    finally:
        pg_db.execute(f"DROP TABLE {table}")
    _check_crm_results(results_by_name(run.xcom("reconcile_crm", key="results")), systems)


@pytest.mark.usefixtures("airflow_db")
def test_rate_limits_and_transient_errors_are_waited_out_while_paging(sqlite_db: Database, systems: Systems,
                                                                     sleeps: list[float]) -> None:
    _warehouse(sqlite_db, systems)
    systems.zendesk.fail_next("incremental_tickets", status=429, retry_after=7)  # mid-export, once
    systems.hubspot.fail_next(1, status=429, retry_after=3, endpoint="list")
    systems.salesforce.fail_next(503, target="query_more")  # no Retry-After: a one-second back-off
    run = run_dag(dags.dag, conf=_conf(sqlite_db))
    _check_crm_results(results_by_name(run.xcom("reconcile_crm", key="results")), systems)
    assert {7.0, 3.0, 1.0} <= set(sleeps)
    assert len(systems.zendesk.calls("incremental_tickets")) == 4  # the refused request, asked again


@pytest.mark.usefixtures("airflow_db")
def test_a_bad_soql_field_is_an_error_naming_the_check_and_side(sqlite_db: Database, systems: Systems,
                                                                staging_dir: Path) -> None:
    _warehouse(sqlite_db, systems)
    run = run_dag(dags.dag, conf=_conf(sqlite_db, soql="SELECT Customer_Id__c, Tierr__c FROM Account"))
    results = results_by_name(run.xcom("reconcile_crm", key="results"))
    sf = results["paying_customers_in_salesforce"]
    assert sf["status"] == "error"
    assert sf["message"].startswith("check 'paying_customers_in_salesforce', right side (Salesforce Account, "
                                    "connection 'salesforce_default'): reading Salesforce Account failed: "
                                    "Salesforce (salesforce_default) refused the query: INVALID_FIELD: ")
    assert "No such column 'Tierr__c' on entity 'Account'" in sf["message"]
    assert results["companies_in_hubspot"]["status"] == "fail"  # the other checks ran all the same
    assert _staged_files(staging_dir) == []


# -- the spec ----------------------------------------------------------------------------------------


def _side(**right: Any) -> list[dict[str, Any]]:
    return [{"kind": "reconcile", "name": "r", "left": {"table": "a"}, "right": right, "key": "id"}]


@pytest.mark.parametrize(("right", "message"), [
    ({"salesforce": {"soql": "SELECT Id FROM Account; DELETE FROM Account"}},
     r"field 'right.salesforce.soql': .*SOQL is one SELECT statement, without ';'"),
    ({"salesforce": {"soql": "UPDATE Account SET Name = 'x'"}},
     r"field 'right.salesforce.soql': .*SOQL must be one 'SELECT field, ... FROM Object ...' query"),
    ({"salesforce": {"soql": "SELECT Id, (SELECT Id FROM Contacts) FROM Account"}},
     r"field 'right.salesforce.soql': .*relationship subquery"),
    ({"salesforce": {"soql": "SELECT COUNT() FROM Account"}}, r"SELECT COUNT\(\) returns no records"),
    ({"hubspot": {"object": "Companies!", "properties": ["domain"]}},
     r"field 'right.hubspot.object': .*'Companies!' is not a HubSpot object type"),
    ({"hubspot": {"object": "companies", "properties": []}}, r"field 'right.hubspot.properties': .*at least 1"),
    ({"hubspot": {"object": "companies", "properties": ["domain", "id"]}}, r"'id' \(the record id\) is always read"),
    ({"hubspot": {"object": "companies", "properties": ["domain"],
                  "filters": [{"propertyName": "tier", "operator": "IN", "value": "gold"}]}},
     r"field 'right.hubspot.filters.0': .*IN takes a non-empty 'values' list"),
    ({"hubspot": {"object": "companies", "properties": ["domain"], "page_size": 150}},
     r"HubSpot lists at most 100 records a page"),
    ({"zendesk": {"export": "macros"}}, r"field 'right.zendesk.export': .*'tickets', 'users' or 'organizations'"),
    ({"zendesk": {"export": "tickets", "start_time": "last tuesday"}}, r"field 'right.zendesk.start_time'"),
    ({"zendesk": {"export": "tickets"}, "table": "tickets"},
     r"field 'right': .*give exactly one of 'table' and 'sql' \(or an API.*; got table, zendesk"),
])
def test_api_sides_are_checked_when_the_spec_is_parsed(right: dict[str, Any], message: str) -> None:
    with pytest.raises(CheckSpecError, match=message):
        load_suite(_side(**right))


def test_api_sides_read_through_the_systems_default_connection() -> None:
    suite = load_suite(_side(zendesk={"export": "tickets", "start_time": "2024-01-02"}, where="status = 'open'"))
    (_, check), = suite.all_checks()
    assert isinstance(check, ReconcileCheck) and check.right.zendesk is not None
    assert check.right.conn_id == "zendesk_default" and check.right.name("right") == "Zendesk tickets"
    assert check.right.zendesk.start_time == 1704153600
    with pytest.raises(CheckSpecError, match="group_by reconciles totals of both sides"):
        load_suite([{**_side(table="b")[0], "group_by": "x", "expect": "left_in_right"}])
    with pytest.raises(CheckSpecError, match="nothing to compare"):
        load_suite([{**_side(table="b")[0], "compare": ["x"], "expect": "disjoint"}])


# -- staging -----------------------------------------------------------------------------------------


class Generated(ApiSource):
    """``pages`` pages of ``size`` records; before each page it looks at what already reached the file.
    Its values are text, as HubSpot's properties are: columns are typed from what the text reads as."""

    system, table, key = "Test", "records", "id"
    typed_values = False

    def __init__(self, pages: int, size: int) -> None:
        super().__init__()
        self.n_pages, self.size = pages, size
        self.columns = ["id", "flag"]
        self.path = ""
        self.on_disk: list[int] = []  # committed rows seen by another connection before each page

    def pages(self) -> Iterator[Page]:
        for p in range(self.n_pages):
            self.on_disk.append(_committed(self.path))
            first = p * self.size
            yield [{"id": str(i), "flag": i % 2 == 0, "code": f"{i:04d}", "amount": f"{i}.50",
                    "score": str(i), **({"late": "x"} if p == self.n_pages - 1 else {})}
                   for i in range(first, first + self.size)]


def _committed(path: str) -> int:
    if not path:
        return 0
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM opsflow_raw").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


def test_staging_writes_page_by_page_and_types_columns_from_the_values(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = Generated(pages=12, size=50)
    real_mkstemp = tempfile.mkstemp

    def mkstemp(**kwargs: Any) -> tuple[int, str]:
        fd, source.path = real_mkstemp(**kwargs)
        return fd, source.path

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    with stage(source, str(tmp_path), pages_per_transaction=3) as staged:
        # The records reached the file while the source was still paging: never all held in memory.
        assert source.on_disk == [0, 0, 0, 150, 150, 150, 300, 300, 300, 450, 450, 450]
        assert (staged.rows, staged.pages, staged.largest_page) == (600, 12, 50)
        assert staged.types == {"id": "integer", "flag": "boolean", "code": "text", "amount": "real",
                                "score": "integer", "late": "text"}
        conn = staged.connect()
        assert conn.execute(f"SELECT * FROM {staged.table} WHERE id = 7").fetchall() == [
            (7, 0, "0007", 7.5, 7, None)]
        assert conn.execute(f"SELECT COUNT(late) FROM {staged.table}").fetchone() == (50,)
        conn.close()
    assert not Path(staged.path).exists()


class Typed(ApiSource):
    """Records whose JSON says each value's type, as Salesforce's and Zendesk's do."""

    system, table, key = "Test", "accounts", "Id"

    def pages(self) -> Iterator[Page]:
        yield [{"Id": "001A", "Warehouse_Id__c": "187", "Amount": 10.5, "Seats": 3, "Active": True},
               {"Id": "001B", "Warehouse_Id__c": "0042", "Amount": 2, "Seats": 4, "Active": False}]


def test_a_typed_api_keeps_number_like_text_as_text(tmp_path: Path) -> None:
    # A text external id such as "187" must compare with the warehouse's text ids, not become a number.
    with stage(Typed(), str(tmp_path)) as staged:
        assert staged.types == {"Id": "text", "Warehouse_Id__c": "text", "Amount": "real", "Seats": "integer",
                                "Active": "boolean"}
        conn = staged.connect()
        assert conn.execute(f"SELECT Warehouse_Id__c FROM {staged.table} ORDER BY Id").fetchall() == [
            ("187",), ("0042",)]
        conn.close()


class Flaky(ApiSource):
    system, table, key = "Test", "records", "id"

    def __init__(self, answers: list[Any]) -> None:
        super().__init__()
        self.answers = answers
        self.columns = ["id"]

    def pages(self) -> Iterator[Page]:
        yield self._call("reading", self._next)

    def _next(self) -> Page:
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return [{"id": answer}]


def test_waits_follow_retry_after_then_back_off_and_give_up(tmp_path: Path, sleeps: list[float]) -> None:
    source = Flaky([ApiRetry("429", 4.0, rate_limited=True), ApiRetry("503"), ApiRetry("503"), 1])
    with stage(source, str(tmp_path)) as staged:
        assert staged.rows == 1 and staged.requests == 4
    assert sleeps == [4.0, 1.0, 2.0]
    failing = Flaky([ApiRetry("503")] * api_source.TRANSIENT_TRIES)
    with pytest.raises(ApiError, match="Test: reading still failed after 5 tries: 503"):
        stage(failing, str(tmp_path))
    assert list(tmp_path.iterdir()) == []  # a failed staging leaves no file


def test_an_export_repeats_records_the_staged_table_keeps_the_latest(tmp_path: Path) -> None:
    pages = [{"tickets": [{"id": 1, "status": "open"}, {"id": 2, "status": "open"}], "end_of_stream": False,
              "after_cursor": "a"},
             {"tickets": [{"id": 1, "status": "solved"}, {"id": 3, "status": "deleted"}], "end_of_stream": True}]
    asked: list[dict[str, Any]] = []

    def get(path: str, params: Any) -> Any:
        asked.append({"path": path, **params})
        return pages[len(asked) - 1]

    with stage(ZendeskExport(get, "tickets", start_time=5, page_size=2), str(tmp_path)) as staged:
        conn = staged.connect()
        assert conn.execute("SELECT id, status FROM tickets ORDER BY id").fetchall() == [(1, "solved"), (2, "open")]
        conn.close()
    assert asked == [{"path": "/api/v2/incremental/tickets/cursor.json", "start_time": 5, "per_page": 2},
                     {"path": "/api/v2/incremental/tickets/cursor.json", "cursor": "a", "per_page": 2}]


# -- the sources against the fakes, through the shell's clients --------------------------------------------


def test_hubspot_search_pages_past_the_search_window(fake_hubspot: FakeHubSpot, hubspot_conn: str,
                                                    monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from airflow_opsflow.checks.api_spec import HubSpotFilter, HubSpotSource
    from airflow_opsflow.hooks.api_clients import api_client

    fake_hubspot.define_property("companies", "tier", "string")
    fake_hubspot.client().crm.objects.batch_api.create("companies", {"inputs": [
        {"properties": {"domain": f"d{i}.com", "tier": "gold" if i % 3 else "silver"}} for i in range(15)]})
    fake_hubspot.set_search_rate_limit(100)
    monkeypatch.setattr(api_source, "HUBSPOT_SEARCH_WINDOW", 6)  # HubSpot's is 10,000 results
    spec = HubSpotSource(object="companies", properties=["domain", "tier"], page_size=2,
                         filters=[HubSpotFilter(propertyName="tier", operator="EQ", value="gold")])
    with stage(spec.source(api_client("hubspot", hubspot_conn)), str(tmp_path)) as staged:
        conn = staged.connect()
        domains = [d for (d,) in conn.execute("SELECT domain FROM companies ORDER BY id")]
        conn.close()
    assert domains == [f"d{i}.com" for i in range(15) if i % 3]
    bodies = [r.body for r in fake_hubspot.calls("search")]
    assert [b["after"] for b in bodies] == ["0", "2", "4", "0", "2"]
    assert bodies[3]["filterGroups"][0]["filters"][-1]["operator"] == "GT"  # again from the last id


def test_zendesk_organizations_page_by_time(fake_zendesk: FakeZendesk, zendesk_conn: str, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_opsflow.checks.api_spec import ZendeskSource
    from airflow_opsflow.hooks.api_clients import api_client

    for n in range(5):
        fake_zendesk.add_organization(f"org {n}", fields={"tier": "gold"} if n else {})
        fake_zendesk.advance(seconds=10)
    spec = ZendeskSource(export="organizations", page_size=2)
    with stage(spec.source(api_client("zendesk", zendesk_conn)), str(tmp_path)) as staged:
        conn = staged.connect()
        rows = conn.execute('SELECT name, "organization_fields.tier" FROM organizations ORDER BY id').fetchall()
        conn.close()
    assert rows == [("org 0", None), *[(f"org {n}", "gold") for n in range(1, 5)]]
    assert (staged.pages, staged.records) == (4, 8)  # each page starts at the last one's last second: again
    fixed = fake_zendesk.store.now() + timedelta(hours=1)
    monkeypatch.setattr(fake_zendesk.store, "now", lambda: fixed)
    for n in range(3):
        fake_zendesk.add_organization(f"same second {n}")
    start = int(fixed.timestamp())
    with pytest.raises(ApiError, match="more than 2 organizations were changed in the same second"):
        stage(ZendeskSource(export="organizations", page_size=2, start_time=start).source(
            api_client("zendesk", zendesk_conn)), str(tmp_path))


# -- what `expect` counts, on plain tables ------------------------------------------------------------------


def _expect(sqlite_db: Database, **spec: Any) -> CheckResult:
    sqlite_db.execute("CREATE TABLE l (k INTEGER, v TEXT)", "CREATE TABLE r (k INTEGER, v TEXT)",
                      "INSERT INTO l VALUES (1, 'a'), (2, 'b'), (3, 'c'), (NULL, 'n')",
                      "INSERT INTO r VALUES (2, 'b'), (3, 'x'), (4, 'd'), (4, 'd'), (NULL, 'n')")
    path = sqlite_db.conn.execute("PRAGMA database_list").fetchone()[2]
    suite = load_suite([{"kind": "reconcile", "name": "e", "left": {"table": "l"}, "right": {"table": "r"},
                         "key": "k", **spec}])
    (result,) = run_suite(sqlite_db.conn, suite, "sqlite", connect=lambda _: ((lambda: sqlite3.connect(path)),
                                                                               "sqlite"))
    return result


def test_left_in_right_lets_the_right_side_hold_more(sqlite_db: Database) -> None:
    r = _expect(sqlite_db, compare=["v"], expect="left_in_right")
    assert (r.status, r.violating_count, r.rows_checked) == ("fail", 3, 3)  # 1 missing, 3 off, the left NULL key
    assert r.message == ("3 keys: 1 only on l; 1 mismatched (v 1); 1 rows with a NULL key, not compared (1 on l); "
                         "2 more on r (expected)")
    assert r.expected == "every k of l also on r, with equal v"


def test_disjoint_counts_only_keys_on_both_sides(sqlite_db: Database) -> None:
    r = _expect(sqlite_db, expect="disjoint")
    assert (r.status, r.violating_count) == ("fail", 2)
    assert r.message == "4 keys: 2 on both l and r"
    assert [s["k"] for s in r.samples] == [2, 3]


def test_an_api_side_needs_the_shell(sqlite_db: Database) -> None:
    suite = load_suite(_side(salesforce={"soql": "SELECT Id FROM Account"}))
    path = sqlite_db.conn.execute("PRAGMA database_list").fetchone()[2]
    (result,) = run_suite(sqlite_db.conn, suite, "sqlite",
                          connect=lambda _: ((lambda: sqlite3.connect(path)), "sqlite"))
    assert result.status == "error" and "needs the Airflow connection" in result.message


# -- reports on an API ---------------------------------------------------------------------------------------


@pytest.mark.usefixtures("airflow_db", "slack_conn")
def test_a_report_joins_the_warehouse_with_hubspot(sqlite_db: Database, systems: Systems, fake_slack: FakeSlack,
                                                    staging_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", sqlite_db.conn_id)
    _warehouse(sqlite_db, systems)
    run = run_dag(dags.report_dag, conf={"warehouse": sqlite_db.conn_id})
    assert run.task_states == {"report": "success"}
    assert run.xcom("report")["rows"] == 9 and run.xcom("report")["columns"] == ["domain", "tier", "crm_tier"]
    assert len(systems.hubspot.calls("list", "companies")) == 3  # 12 companies, 5 a page
    [message] = fake_slack.messages("#ops")
    assert "beta.io" in (message.text or "")
    assert _staged_files(staging_dir) == []


def test_report_queries_on_an_api_are_checked_when_parsed() -> None:
    from airflow_opsflow.reports.spec import ReportSpecError, parse

    spec = parse({"crm": {"salesforce": {"soql": "SELECT Id, Tier__c FROM Account"}}})
    assert spec.queries[0].conn_id == "salesforce_default" and spec.queries[0].sql is None
    with pytest.raises(ReportSpecError, match=r"query #1: field 'salesforce.soql': .*one SELECT statement"):
        parse({"crm": {"salesforce": {"soql": "SELECT Id FROM Account; SELECT Id FROM Case"}}})
    with pytest.raises(ReportSpecError, match="a query reads one API, not hubspot and zendesk"):
        parse({"crm": {"hubspot": {"object": "companies", "properties": ["domain"]},
                       "zendesk": {"export": "tickets"}}})
    with pytest.raises(ReportSpecError, match="give 'sql'"):
        parse([{"name": "crm"}])


@pytest.mark.parametrize("soql", ["SELECT Warehouse_Id__c AS account_id FROM Account", "SELECT Name n FROM Account"])
def test_a_soql_alias_is_refused_at_parse_time_as_salesforce_would(soql: str) -> None:
    from airflow_opsflow.checks.api_spec import soql_parts

    with pytest.raises(ValueError, match="SOQL has no column aliases outside aggregate queries"):
        soql_parts(soql)
    assert soql_parts("SELECT COUNT(Id) n, Type FROM Account GROUP BY Type") == ("Account", ["Type"])
