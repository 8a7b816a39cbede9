"""ReportOperator's failure modes in real DAG runs: a failing source, a report too large for a channel, a
destination down (the retry sends only what is missing), empty results, bad specs at parse time."""

from __future__ import annotations

import io
from typing import Any

import pandas as pd
import pendulum
import pytest
from airflow.sdk import DAG
from airflow_opsflow_testing.dag_runner import run_dag
from airflow_opsflow_testing.sample_data import seed
from airflow_opsflow_testing.slack_server import FakeSlack
from airflow_opsflow_testing.smtp_server import FakeSmtp

from airflow_opsflow.operators.report import ReportOperator
from airflow_opsflow.report_deliveries import SlackReport
from tests.conftest import Database
from tests.helpers import DAGS, load_module

pytestmark = pytest.mark.usefixtures("airflow_db", "slack_conn", "smtp_conn")
dags = load_module(DAGS / "reports.py")


@pytest.fixture
def ops(sqlite_db: Database, monkeypatch: pytest.MonkeyPatch) -> Database:
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", sqlite_db.conn_id)
    seed(sqlite_db.conn, problems=True)
    return sqlite_db


def report_dag(dag_id: str, conn_id: str, **kwargs: Any) -> DAG:
    """A DAG built here, only to check what fails at parse time (it is never run)."""
    options: dict[str, Any] = {"queries": {"payments": "SELECT 1"}, "title": "Payments",
                               "deliver": [SlackReport(channel="#ops")]}
    options.update(kwargs)
    with DAG(dag_id, schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False) as dag:
        ReportOperator(task_id="report", conn_id=conn_id, **options)
    return dag


def test_a_failing_source_is_named_and_nothing_is_sent(ops: Database, pg_db: Database, fake_slack: FakeSlack,
                                                       fake_smtp: FakeSmtp, capfd: pytest.CaptureFixture[str]) -> None:
    run = run_dag(dags.bad_source, conf={"conn_id": ops.conn_id, "warehouse_conn_id": pg_db.conn_id})
    assert run.task_states == {"report": "failed"}
    assert fake_slack.messages() == [] and fake_smtp.mails == []
    out = capfd.readouterr()
    assert "query 'settlements' on connection 'opsflow_pg' failed" in out.out + out.err


def test_a_report_too_large_for_email_sends_nothing(ops: Database, fake_slack: FakeSlack, fake_smtp: FakeSmtp,
                                                    capfd: pytest.CaptureFixture[str]) -> None:
    run = run_dag(dags.too_large, conf={"conn_id": ops.conn_id})
    assert run.task_states == {"report": "failed"} and run.tries["report"] == 1  # retrying will not shrink it
    assert fake_slack.messages() == [] and fake_slack.files == [] and fake_smtp.mails == []
    out = capfd.readouterr()
    assert "nothing sent: the email is" in out.out + out.err and "over the 20,000 bytes" in out.out + out.err


def test_a_destination_down_is_retried_alone(ops: Database, fake_slack: FakeSlack, fake_smtp: FakeSmtp,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in fake_smtp.smtp_connection("smtp_default", retry_limit=0).items():
        monkeypatch.setenv(name, value)
    fake_smtp.fail_next(451)
    run = run_dag(dags.retried, conf={"conn_id": ops.conn_id})
    assert run.task_states == {"report": "success"} and run.tries["report"] == 2
    assert len(fake_slack.messages("#ops")) == 1 and len(fake_slack.files) == 1  # not posted twice
    assert len(fake_smtp.mails) == 1 and "payments.csv" in fake_smtp.mails[0].attachments
    assert run.xcom("report")["delivered"] == ["email:ops@example.com"]  # the retry's share


def test_long_reports_are_cut_inline_and_complete_in_the_file(ops: Database, fake_slack: FakeSlack,
                                                              fake_smtp: FakeSmtp) -> None:
    run = run_dag(dags.long, conf={"conn_id": ops.conn_id})
    assert run.task_states == {"report": "success"}
    [message] = fake_slack.messages("#ops")
    assert len(message.text or "") <= 3000 and "… 1,980 more row(s) in payments.csv" in (message.text or "")
    [data] = fake_slack.files
    assert len(pd.read_csv(io.BytesIO(data.content or b""))) == 2000
    assert "… 1,950 more row(s) in payments.csv" in fake_smtp.mails[0].body("html")  # email shows 50


@pytest.mark.parametrize(("on_empty", "state"), [("send", "success"), ("skip", "success"), ("fail", "failed")])
def test_empty_reports(ops: Database, fake_slack: FakeSlack, fake_smtp: FakeSmtp, on_empty: str, state: str) -> None:
    run = run_dag(dags.empty[on_empty], conf={"conn_id": ops.conn_id})
    assert run.task_states == {"report": state}
    sent = [m.blocks[0]["text"]["text"] for m in fake_slack.messages("#ops")]
    assert sent == (["*Payments*\n_No rows for this report._"] if on_empty == "send" else [])
    assert len(fake_smtp.mails) == (1 if on_empty == "send" else 0) and fake_slack.files == []


def test_a_transform_shapes_what_steps_cannot(ops: Database, fake_slack: FakeSlack) -> None:
    run = run_dag(dags.transformed, conf={"conn_id": ops.conn_id})
    assert run.xcom("report")["rows"] == 2 and run.xcom("report")["columns"] == ["provider", "amount"]


def test_bad_specs_fail_at_parse_time_naming_the_step() -> None:
    with pytest.raises(ValueError, match=r"(?s)task 'report'.*step #2 \(pivot\): field 'values': Field required"):
        report_dag("bad", "x", steps=[{"op": "sort", "by": ["id"]}, {"op": "pivot", "index": ["a"], "columns": "b"}])
    with pytest.raises(ValueError, match="step #1 \\(merge\\) reads frame 'settlements', which no query"):
        report_dag("bad2", "x", steps=[{"op": "merge", "right": "settlements", "on": ["id"]}])
    with pytest.raises(ValueError, match="files has unknown formats \\['pdf'\\]"):
        report_dag("bad3", "x", files=("pdf",))
    with pytest.raises(ValueError, match="two destinations share a name"):
        report_dag("bad4", "x", deliver=[SlackReport(channel="#ops"), SlackReport(channel="#ops")])
