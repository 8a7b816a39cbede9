"""The dbt example DAG for real: dbt-core builds the sample project on the test PostgreSQL, its failing
tests become one Slack alert and one Jira ticket each, stay quiet on a re-run, and resolve when the data is
repaired; the mart's high-priority accounts reach the CRM stand-in."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from airflow_opsflow_testing.dag_runner import run_dag
from airflow_opsflow_testing.hubspot_server import FakeHubSpot
from airflow_opsflow_testing.jira_server import FakeJira
from airflow_opsflow_testing.sample_data import repair, seed
from airflow_opsflow_testing.slack_server import FakeSlack

from airflow_opsflow.alerts.jira import ticket_label
from airflow_opsflow.incidents.lifecycle import fingerprint
from tests.conftest import Database
from tests.helpers import EXAMPLES, load_module, results_by_name

pytestmark = pytest.mark.usefixtures("airflow_db", "slack_conn", "jira_conn", "hubspot_conn")
REPO = Path(__file__).resolve().parents[2]
NEGATIVE = "assert_payment_amounts_positive"
ORPHAN = "relationships_stg_payments_customer_id__customer_id__ref_stg_customers_"


def dbt_bin() -> str:
    path = os.environ.get("OPSFLOW_DBT_BIN") or str(REPO / ".venv-dbt" / "bin" / "dbt")
    if not Path(path).exists():
        pytest.fail(f"dbt is not installed at {path}: `make test` installs it (make dbt), or set OPSFLOW_DBT_BIN")
    return path


@pytest.fixture
def pipeline(pg_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
             fake_hubspot: FakeHubSpot) -> Iterator[object]:
    monkeypatch.setenv("OPSFLOW_DBT_BIN", dbt_bin())
    monkeypatch.setenv("OPSFLOW_DBT_TARGET", str(tmp_path / "target"))
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", pg_db.conn_id)
    pg_db.execute("DROP TABLE IF EXISTS opsflow_incidents, opsflow_deliveries, opsflow_sync_keys, opsflow_sync_meta, "
                  "opsflow_sync_marks, opsflow_schema_version", "DROP SCHEMA IF EXISTS analytics CASCADE")
    seed(pg_db.conn, problems=True)
    for name, kind in (("opsflow_account_id", "string"), ("plan", "string"), ("total_spend", "number")):
        fake_hubspot.define_property("companies", name, kind, unique=name == "opsflow_account_id")
    yield load_module(EXAMPLES / "dbt_pipeline.py")
    pg_db.execute("DROP SCHEMA IF EXISTS analytics CASCADE")  # its views hold on to the sample tables


def test_dbt_failures_become_incidents_and_resolve(pipeline: object, pg_db: Database, fake_slack: FakeSlack,
                                                   fake_jira: FakeJira, fake_hubspot: FakeHubSpot) -> None:
    dag = pipeline.dag  # type: ignore[attr-defined]
    conf = {"warehouse_conn_id": pg_db.conn_id}
    first = run_dag(dag, conf=conf)
    assert first.task_states == {"dbt_build": "success", "dbt_tests": "success", "check_customer_spend": "success",
                                 "sync_high_priority_accounts": "success"}
    payload = first.xcom("dbt_tests", key="results")
    assert payload["command"] == "build" and payload["dbt_version"].startswith("1.")
    results = results_by_name(payload)
    assert {n: r["status"] for n, r in results.items() if r["status"] != "pass"} == {NEGATIVE: "warn", ORPHAN: "warn"}
    negative = results[NEGATIVE]
    assert negative["violating_count"] == 2 and negative["table"] == "stg_payments"
    assert negative["owner"] == "payments-ops" and negative["threshold"] == "warn if failures >0"
    assert sorted(s["amount"] for s in negative["samples"]) == [-120.0, -15.5]  # sampled from the compiled SQL
    assert results[ORPHAN]["expected"].startswith("relationships(to=ref('stg_customers'), field=customer_id) on "
                                                  "stg_payments.customer_id")
    assert results["unique_customer_spend_account_id"]["status"] == "pass"

    alerts = fake_slack.messages("#data-quality")
    assert len(alerts) == 2 and all("WARN:" in (m.text or "") for m in alerts)
    assert any(NEGATIVE in (m.text or "") and "-120" in str(m.blocks) for m in alerts)
    tickets = fake_jira.issues
    assert len(tickets) == 2 and all("dbt" in t.labels for t in tickets)
    label = ticket_label(fingerprint("ops_dbt_pipeline", "dbt_tests", NEGATIVE))
    [ticket] = [t for t in tickets if label in t.labels]
    assert "warn if failures >0" in (ticket.description or "") and "-120" in (ticket.description or "")
    synced = fake_hubspot.objects("companies")
    assert synced and all(float(c.properties["total_spend"]) >= 5000 for c in synced)

    again = run_dag(dag, conf=conf)  # the same failures: nothing new to say
    assert again.task_states["dbt_tests"] == "success"
    assert len(fake_slack.messages("#data-quality")) == 2 and len(fake_jira.issues) == 2

    repair(pg_db.conn)
    fixed = run_dag(dag, conf=conf)
    assert set(fixed.task_states.values()) == {"success"}
    assert all(r["status"] == "pass" for r in fixed.xcom("dbt_tests", key="results")["results"])
    replies = [m for m in fake_slack.messages("#data-quality") if m.is_reply]
    assert len(replies) == 2 and all((m.text or "").startswith(":white_check_mark: Resolved") for m in replies)
    assert all(t.status_category == "done" for t in fake_jira.issues) and len(fake_jira.issues) == 2


def test_a_dbt_command_that_cannot_compile_is_reported_not_passed(pipeline: object, pg_db: Database,
                                                                  tmp_path: Path) -> None:
    dag = pipeline.dag  # type: ignore[attr-defined]
    conf = {"warehouse_conn_id": pg_db.conn_id}
    assert run_dag(dag, conf=conf).task_states["dbt_tests"] == "success"  # leaves a run_results.json
    broken = tmp_path / "project"
    import shutil

    shutil.copytree(pipeline.PROJECT, broken)  # type: ignore[attr-defined]
    (broken / "models" / "marts" / "customer_spend.sql").write_text("select {{ ref('no_such_model') }}")
    dag.get_task("dbt_build").bash_command = dag.get_task("dbt_build").bash_command.replace(
        str(pipeline.PROJECT), str(broken))  # type: ignore[attr-defined]
    run = run_dag(dag, conf=conf)
    assert run.task_states["dbt_build"] == "failed" and run.task_states["dbt_tests"] == "failed"
    assert run.tries["dbt_tests"] == 1  # not retried: the results are not coming
