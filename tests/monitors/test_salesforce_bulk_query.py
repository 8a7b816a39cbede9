"""A Salesforce SOQL side read through a Bulk API 2.0 query job above ``bulk_above`` records, REST pages below,
against FakeSalesforce through the shell's client: the same staged rows either way (relationship columns,
NULLs, numbers, booleans, dateTimes), a failed or endless job named, a rate limit while polling waited out; and a
reconcile check through a real DAG run that goes the bulk way."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest
from airflow_opsflow_testing.dag_runner import run_dag
from airflow_opsflow_testing.salesforce_server import FakeSalesforce

from airflow_opsflow.checks.api_spec import SalesforceSource, soql_parts
from airflow_opsflow.checks.loader import CheckSpecError, load_suite
from airflow_opsflow.core.api_source import ApiError, SalesforceQuery
from airflow_opsflow.core.staging import StagedTable, stage
from tests.conftest import Database
from tests.helpers import DAGS, load_module, results_by_name

dags = load_module(DAGS / "reconcile_salesforce_bulk.py")

SOQL = ("SELECT Id, LastName, Title, Score__c, Seats__c, Vip__c, CreatedDate, Account.Name, Account.Customer_Id__c "
        "FROM Contact")


@pytest.fixture
def contacts(fake_salesforce: FakeSalesforce) -> FakeSalesforce:
    """Seven contacts: two without an account, number-like titles, NULL numbers, both booleans."""
    sf = fake_salesforce
    sf.define_field("Account", "Customer_Id__c", external_id=True, unique=True)
    sf.define_field("Contact", "Score__c", "double")
    sf.define_field("Contact", "Seats__c", "int")
    sf.define_field("Contact", "Vip__c", "boolean")
    acme = sf.add_record("Account", Name="Acme, Inc.", Customer_Id__c="0042")["Id"]
    beta = sf.add_record("Account", Name='Beta "B" Ltd')["Id"]
    sf.add_record("Contact", LastName="Ames", Title="187", Score__c=10.5, Seats__c=3, Vip__c=True, AccountId=acme)
    sf.add_record("Contact", LastName="Baker", Title="0042", Score__c=2, Seats__c=0, AccountId=acme)
    sf.add_record("Contact", LastName="Chu", Title="VP, Sales\nEMEA", AccountId=beta)
    sf.add_record("Contact", LastName="Diaz", Score__c=-1.25, Vip__c=True)
    sf.add_record("Contact", LastName="Evans", Seats__c=12)
    sf.add_record("Contact", LastName="Fox", Score__c=0, AccountId=beta)
    sf.add_record("Contact", LastName="Gore", Title="true", AccountId=acme)
    sf.set_query_batch_size(2)
    return sf


def _source(conn_id: str, bulk_above: int | None, soql: str = SOQL, bulk_page: int = 3,
            bulk_timeout: float = 3600.0) -> SalesforceQuery:
    from airflow_opsflow.hooks.api_clients import api_client

    name, fields = soql_parts(soql)
    return SalesforceQuery(api_client("salesforce", conn_id), soql, name, fields, bulk_above=bulk_above,
                           bulk_page=bulk_page, bulk_timeout=bulk_timeout)


def _rows(staged: StagedTable) -> list[tuple[Any, ...]]:
    conn = staged.connect()
    try:
        return conn.execute(f'SELECT * FROM "{staged.table}" ORDER BY LastName').fetchall()
    finally:
        conn.close()


def test_above_bulk_above_a_query_job_stages_the_rows_rest_stages(contacts: FakeSalesforce, salesforce_conn: str,
                                                                    tmp_path: Path, sleeps: list[float]) -> None:
    with stage(_source(salesforce_conn, bulk_above=None), str(tmp_path)) as by_rest:
        rest_rows, rest_types = _rows(by_rest), by_rest.types
    assert contacts.calls("query_job_create") == [] and len(contacts.calls("query_more")) == 3
    mark = contacts.mark()

    source = _source(salesforce_conn, bulk_above=6)  # 7 records: one over
    with stage(source, str(tmp_path)) as by_bulk:
        bulk_rows, bulk_types = _rows(by_bulk), by_bulk.types
        assert (by_bulk.pages, by_bulk.records) == (3, 7)  # 3 records a results page
    assert bulk_rows == rest_rows and bulk_types == rest_types
    assert rest_types == {"Id": "text", "LastName": "text", "Title": "text", "Score__c": "real",
                          "Seats__c": "integer", "Vip__c": "boolean", "CreatedDate": "text", "Account.Name": "text",
                          "Account.Customer_Id__c": "text"}
    # Id, LastName, Title, Score__c, Seats__c, Vip__c, CreatedDate, Account.Name, Account.Customer_Id__c
    by_name = {r[1]: r[2:] for r in bulk_rows}
    assert by_name["Ames"][:4] == ("187", 10.5, 3, 1)
    assert by_name["Baker"][:4] == ("0042", 2.0, 0, 0) and by_name["Baker"][5:] == ("Acme, Inc.", "0042")
    assert by_name["Chu"][0] == "VP, Sales\nEMEA" and by_name["Chu"][5:] == ('Beta "B" Ltd', None)
    assert by_name["Diaz"][5:] == (None, None) and by_name["Diaz"][2] is None  # no account; no seats
    assert by_name["Evans"][0] is None and by_name["Gore"][0] == "true"  # NULL; text stays text
    assert by_name["Ames"][4].endswith("+0000")  # the REST form of a dateTime, though the CSV says ...Z

    calls = [c for c in contacts.calls()[mark:] if c.name != "login"]
    assert [c.name for c in calls] == [
        "query", "describe", "describe", "query_job_create", "query_job", "query_job",
        "query_job_results", "query_job_results", "query_job_results"]
    assert calls[3].body == {"operation": "query", "query": SOQL}
    assert [c.query.get("locator") for c in contacts.calls("query_job_results")] == [None, ["Mw"], ["Ng"]]
    assert {c.query["maxRecords"][0] for c in contacts.calls("query_job_results")} == {"3"}
    assert source.bulk_job == contacts.calls("query_job")[0].path.rsplit("/", 1)[1]
    assert sleeps == [1.0, 2.0]  # the job completes on its second status read


def test_at_bulk_above_or_never_the_rest_pages(contacts: FakeSalesforce, salesforce_conn: str,
                                              tmp_path: Path) -> None:
    with stage(_source(salesforce_conn, bulk_above=7), str(tmp_path)) as staged:
        assert staged.rows == 7
    never = SalesforceSource.model_validate({"soql": SOQL, "bulk_above": "never"})
    with stage(never.source(_client(salesforce_conn)), str(tmp_path)) as staged:
        assert staged.rows == 7
    assert contacts.calls("query_job_create") == [] and len(contacts.calls("query")) == 2
    with stage(SalesforceSource(soql=SOQL, bulk_above=0).source(_client(salesforce_conn)), str(tmp_path)) as staged:
        assert staged.rows == 7 and staged.pages == 1  # the spec reads 10,000 records a results page
    assert len(contacts.calls("query_job_create")) == 1


def _client(conn_id: str) -> Any:
    from airflow_opsflow.hooks.api_clients import api_client

    return api_client("salesforce", conn_id)


def test_a_failed_job_is_an_error_naming_it(contacts: FakeSalesforce, salesforce_conn: str, tmp_path: Path,
                                           sleeps: list[float]) -> None:
    contacts.fail_next_bulk_job("InvalidBatch : Failed to process query: OPERATION_TOO_LARGE: exceeded 100000 "
                                "distinct ids")
    with pytest.raises(ApiError) as caught:
        stage(_source(salesforce_conn, bulk_above=0), str(tmp_path))
    [created] = contacts.calls("query_job_create")
    job_id = contacts.calls("query_job")[0].path.rsplit("/", 1)[1]
    assert str(caught.value) == (f"Salesforce: the Bulk API 2.0 query job {job_id} on Contact ended Failed: "
                                 "InvalidBatch : Failed to process query: OPERATION_TOO_LARGE: exceeded 100000 "
                                 "distinct ids")
    assert created.status == 200 and contacts.calls("query_job_results") == []
    assert list(tmp_path.iterdir()) == []  # nothing staged is left


def test_a_rate_limit_while_polling_is_waited_out(contacts: FakeSalesforce, salesforce_conn: str, tmp_path: Path,
                                                 sleeps: list[float]) -> None:
    contacts.bulk_progress(polls=3)
    contacts.fail_next(429, target="query_job")
    contacts.fail_next(503, target="query_job_results")
    with stage(_source(salesforce_conn, bulk_above=0, bulk_page=10), str(tmp_path)) as staged:
        assert staged.rows == 7
    assert [c.status for c in contacts.calls("query_job")] == [429, 200, 200, 200, 200]
    assert [c.status for c in contacts.calls("query_job_results")] == [503, 200]
    # poll pauses 1, 2, 4, 8 s; the 429 and the 503 each waited a second (Salesforce sends no Retry-After)
    assert sleeps == [1.0, 1.0, 2.0, 4.0, 8.0, 1.0]


def test_a_connection_dropped_while_a_results_page_is_read_reads_it_again(
        contacts: FakeSalesforce, salesforce_conn: str, tmp_path: Path, sleeps: list[float],
        caplog: pytest.LogCaptureFixture) -> None:
    contacts.cut_response_next(target="query_job_results")  # headers and half the first set, then a reset
    with caplog.at_level(logging.INFO, logger="airflow_opsflow.core.api_source"), \
            stage(_source(salesforce_conn, bulk_above=0), str(tmp_path)) as staged:
        assert (staged.pages, staged.records, staged.rows) == (3, 7, 7)
        assert [r[1] for r in _rows(staged)] == ["Ames", "Baker", "Chu", "Diaz", "Evans", "Fox", "Gore"]
    # the same locator read again, after a transient failure's wait
    assert [c.query.get("locator") for c in contacts.calls("query_job_results")] == [None, None, ["Mw"], ["Ng"]]
    assert sleeps == [1.0, 2.0, 1.0]
    assert f"Salesforce ({salesforce_conn}): ChunkedEncodingError" in caplog.text


def test_a_compound_field_keeps_a_large_query_on_rest(contacts: FakeSalesforce, salesforce_conn: str,
                                                      tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    contacts.add_record("Account", Name="Gamma", BillingCity="Oslo")
    soql = "SELECT Id, Name, BillingAddress FROM Account"
    # a query job refuses it, as Salesforce does (compound data: address, geolocation)
    with pytest.raises(ApiError, match="API_ERROR: Selecting compound data not supported in Bulk Query"):
        _client(salesforce_conn).create_query_job(soql)
    mark = contacts.mark()
    with caplog.at_level(logging.INFO, logger="airflow_opsflow.core.api_source"), \
            stage(_source(salesforce_conn, bulk_above=0, soql=soql), str(tmp_path)) as staged:
        assert (staged.pages, staged.records) == (2, 3)  # the first REST answer's page is kept, one more read
        conn = staged.connect()
        try:
            rows = conn.execute(f'SELECT * FROM "{staged.table}"').fetchall()
        finally:
            conn.close()
    assert len(rows) == 3 and any("Oslo" in row for row in rows)
    calls = [c.name for c in contacts.calls()[mark:] if c.name != "login"]
    assert calls == ["query", "describe", "query_more"]  # no job tried
    assert "BillingAddress is compound (address or geolocation)" in caplog.text


@pytest.mark.parametrize("refusal", [
    [{"errorCode": "API_ERROR", "message": "Selecting compound data not supported in Bulk Query"}],
    [{"errorCode": "INVALIDENTITY", "message": "Entity 'Contact' is not supported by the Bulk API."}]])
def test_a_refused_query_job_falls_back_to_rest_pages(contacts: FakeSalesforce, salesforce_conn: str, tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture,
                                                      refusal: list[dict[str, str]]) -> None:
    contacts.fail_next(400, refusal, target="query_job_create")
    source = _source(salesforce_conn, bulk_above=0)
    with caplog.at_level(logging.WARNING, logger="airflow_opsflow.core.api_source"), \
            stage(source, str(tmp_path)) as staged:
        assert (staged.pages, staged.records) == (4, 7)  # REST pages of 2, from the first answer on
        assert len(_rows(staged)) == 7
    assert [c.status for c in contacts.calls("query_job_create")] == [400] and source.bulk_job is None
    assert len(contacts.calls("query")) == 1 and len(contacts.calls("query_more")) == 3
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "the Bulk API 2.0 query job on Contact was refused" in warning.getMessage()
    assert refusal[0]["errorCode"] in warning.getMessage() and "REST pages instead" in warning.getMessage()


def test_a_query_job_creation_failing_transiently_is_no_fallback(contacts: FakeSalesforce, salesforce_conn: str,
                                                                  tmp_path: Path, sleeps: list[float]) -> None:
    contacts.fail_next(503, target="query_job_create", times=5)
    with pytest.raises(ApiError, match=r"creating a Bulk API 2\.0 query job still failed after 5 tries"):
        stage(_source(salesforce_conn, bulk_above=0), str(tmp_path))
    assert contacts.calls("query_more") == []


def test_a_job_still_running_after_the_timeout_is_aborted(contacts: FakeSalesforce, salesforce_conn: str,
                                                         tmp_path: Path, sleeps: list[float]) -> None:
    contacts.bulk_progress(polls=1000)
    with pytest.raises(ApiError, match=r"query job \w+ on Contact was still InProgress after 10 s of waiting; it "
                                       r"was aborted"):
        stage(_source(salesforce_conn, bulk_above=0, bulk_timeout=10), str(tmp_path))
    assert sleeps == [1.0, 2.0, 4.0, 3.0]
    [abort] = contacts.calls("query_job_state")
    assert abort.body == {"state": "Aborted"} and abort.status == 200


# -- the spec -------------------------------------------------------------------------------------------------


def test_bulk_above_in_the_spec() -> None:
    assert SalesforceSource(soql="SELECT Id FROM Account").bulk_above == 10_000
    for given, read in [("NEVER", None), (None, None), ("250", 250), (0, 0)]:
        assert SalesforceSource.model_validate({"soql": "SELECT Id FROM Account", "bulk_above": given}
                                               ).bulk_above == read
    # Bulk API 2.0 runs no GROUP BY, OFFSET, TYPEOF or functions: by default such a query stays on REST...
    grouped = SalesforceSource(soql="SELECT Type, COUNT(Id) n FROM Account GROUP BY Type").source(object())
    plain = SalesforceSource(soql="SELECT Id FROM Account").source(object())
    assert isinstance(grouped, SalesforceQuery) and isinstance(plain, SalesforceQuery)
    assert (grouped.bulk_above, plain.bulk_above) == (None, 10_000)
    # ... and asking for bulk on one is an error
    for soql, why in [("SELECT Type, COUNT(Id) n FROM Account GROUP BY Type", "GROUP BY is not supported"),
                      ("SELECT Id FROM Account ORDER BY Name OFFSET 5", "OFFSET is not supported"),
                      ("SELECT Id, toLabel(Type) FROM Account", "'toLabel(Type)' in the field list")]:
        with pytest.raises(CheckSpecError, match=r"field 'right.salesforce': bulk_above: Bulk API 2.0 cannot run "
                                                 rf"this query \({re.escape(why)}"):
            load_suite(_side(salesforce={"soql": soql, "bulk_above": 0}))
    with pytest.raises(CheckSpecError, match=r"field 'right.salesforce.bulk_above': .*greater than or equal to 0"):
        load_suite(_side(salesforce={"soql": "SELECT Id FROM Account", "bulk_above": -1}))
    assert SalesforceSource(soql="SELECT Id FROM Account WHERE Name = 'a GROUP BY b'", bulk_above=0).bulk_above == 0


def _side(**right: Any) -> list[dict[str, Any]]:
    return [{"kind": "reconcile", "name": "r", "left": {"table": "a"}, "right": right, "key": "id"}]


# -- a reconcile check through a DAG run ----------------------------------------------------------------------

CUSTOMERS = [("C-01", "gold"), ("C-02", "silver"), ("C-03", "gold"), ("C-04", "silver"), ("C-05", "gold")]


@pytest.mark.usefixtures("airflow_db")
def test_a_reconcile_check_reads_a_large_side_through_a_query_job(sqlite_db: Database, fake_salesforce: FakeSalesforce,
                                                                   salesforce_conn: str) -> None:
    sf = fake_salesforce
    sf.define_field("Account", "Customer_Id__c", external_id=True, unique=True)
    sf.define_field("Account", "Tier__c")
    sf.define_field("Account", "Seats__c", "int")
    for cid, tier in CUSTOMERS:
        if cid != "C-04":  # missing in Salesforce
            sf.add_record("Account", Name=cid, Customer_Id__c=cid, Tier__c="silver" if cid == "C-03" else tier,
                          Seats__c=int(cid[-1]) * 10, Type="Customer - Direct")
    sf.add_record("Account", Name="C-99", Customer_Id__c="C-99", Tier__c="gold", Seats__c=5, Type="Customer - Direct")
    sf.bulk_progress(polls=2)
    sqlite_db.execute("CREATE TABLE customers (customer_id TEXT, tier TEXT, seats INTEGER)")
    sqlite_db.conn.executemany("INSERT INTO customers VALUES (?, ?, ?)",
                               [(cid, tier, int(cid[-1]) * 10) for cid, tier in CUSTOMERS])
    sqlite_db.conn.commit()

    run = run_dag(dags.dag, conf={"warehouse": sqlite_db.conn_id, "bulk_above": 3})
    assert run.task_states == {"reconcile_salesforce": "failed"}  # the planted breaks
    result = results_by_name(run.xcom("reconcile_salesforce", key="results"))["customers_in_salesforce"]
    assert result["status"] == "fail" and result["violating_count"] == 2, result["message"]
    assert result["message"] == ("5 keys: 1 only on warehouse; 1 mismatched (Tier__c 1); "
                                 "1 more on Salesforce Account (expected)")
    assert {(s["Customer_Id__c"], s["difference"]) for s in result["samples"]} == {
        ("C-04", "only on warehouse"), ("C-03", "Tier__c: gold vs silver")}
    # The query's 5 records were over bulk_above: one query job read them, no REST page after the first.
    [job] = sf.calls("query_job_create")
    assert job.body["operation"] == "query" and job.body["query"].startswith("SELECT Customer_Id__c, Tier__c")
    assert len(sf.calls("query_job")) == 3 and sf.calls("query_more") == []
    assert [j.state for j in sf.bulk.jobs.values()] == ["JobComplete"]
