"""The report example DAGs for real: queries on SQLite (ops) and PostgreSQL (warehouse) merged with pandas,
delivered to the fake Slack (file upload v2) and the SMTP server; the files are read back."""

from __future__ import annotations

import csv
import io

import pandas as pd
import pendulum
import pytest
from airflow_opsflow_testing.dag_runner import run_dag
from airflow_opsflow_testing.sample_data import seed
from airflow_opsflow_testing.sample_metrics import seed_settlements
from airflow_opsflow_testing.slack_server import FakeSlack
from airflow_opsflow_testing.smtp_server import FakeSmtp

from tests.conftest import Database
from tests.helpers import EXAMPLES, load_module

# The reports' periods are whole Berlin days before the run: they move at Berlin's midnight, not UTC's.
pytestmark = [pytest.mark.usefixtures("airflow_db", "slack_conn", "smtp_conn"), pytest.mark.clock]
reports = load_module(EXAMPLES / "reports.py")
UTC_TEXT = "%Y-%m-%d %H:%M:%S"


def berlin_days(now: pendulum.DateTime, days: int) -> tuple[pendulum.DateTime, pendulum.DateTime]:
    """The ``days`` whole Berlin days before ``now``'s Berlin day: [first midnight, last midnight)."""
    today = now.in_timezone("Europe/Berlin").start_of("day")
    return today.subtract(days=days), today


@pytest.fixture
def books(sqlite_db: Database, pg_db: Database, monkeypatch: pytest.MonkeyPatch,
          clock: pendulum.DateTime) -> dict[str, str]:
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", sqlite_db.conn_id)
    seed(sqlite_db.conn, now=clock.naive(), problems=True)  # payments over the 30 days up to the clock
    seed_settlements(pg_db.conn, sqlite_db.conn, breaks=True)
    return {"conn_id": sqlite_db.conn_id, "warehouse_conn_id": pg_db.conn_id}


def test_cfo_report_reaches_slack_and_email_with_files(books: dict[str, str], sqlite_db: Database,
                                                        fake_slack: FakeSlack, fake_smtp: FakeSmtp,
                                                        clock: pendulum.DateTime) -> None:
    run = run_dag(reports.finance, conf={**books, "period": "last_30_days"}, logical_date=clock)
    since, until = berlin_days(clock, 30)  # at 00:45 in Berlin, yesterday is the last day, whatever UTC says
    assert run.task_states == {"revenue_by_provider": "success"}
    summary = run.xcom("revenue_by_provider")
    assert summary["delivered"] == ["email:cfo@example.com", "slack:slack_api_default/#finance-ops"]
    expected = pd.read_sql("SELECT provider, SUM(amount) AS revenue, COUNT(*) AS n FROM payments "
                           "WHERE status = 'succeeded' AND created_at >= ? AND created_at < ? GROUP BY provider",
                           sqlite_db.conn, params=(f"{since.in_timezone('UTC'):{UTC_TEXT}}",
                                                   f"{until.in_timezone('UTC'):{UTC_TEXT}}"))
    assert expected["n"].sum() > 0

    # Slack: one message carrying the three files, its comment the title and the table
    [message] = fake_slack.messages("#finance-ops")
    last = until.subtract(days=1)
    assert (message.text or "").startswith(f"*Revenue by payment provider, {since:%Y-%m-%d} to {last:%Y-%m-%d}*")
    assert "provider" in (message.text or "") and "Total" in (message.text or "")
    files = {f.filename: f for f in fake_slack.files}
    month = f"{since:%Y-%m-%d}"
    assert set(files) == {f"revenue_by_provider_{month}.{ext}" for ext in ("xlsx", "csv", "png")}
    rows = list(csv.DictReader(io.StringIO(files[f"revenue_by_provider_{month}.csv"].content.decode())))
    assert [r["provider"] for r in rows][-1] == "Total" and len(rows) == len(expected) + 1
    by_provider = {r["provider"]: r for r in rows}
    for _, e in expected.iterrows():
        assert float(by_provider[e["provider"]]["revenue"]) == pytest.approx(float(e["revenue"]), abs=0.01)
        assert int(float(by_provider[e["provider"]]["payments"])) == e["n"]
    unsettled = sum(float(r["unsettled"]) for r in rows[:-1])
    assert unsettled == pytest.approx(float(rows[-1]["unsettled"]), abs=0.01) and unsettled > 0  # 2 planted breaks
    book = pd.read_excel(io.BytesIO(files[f"revenue_by_provider_{month}.xlsx"].content), sheet_name=None)
    assert list(book) == ["report", "payments"] and len(book["report"]) == len(rows)
    assert set(book["payments"].columns) == {"payment_id", "provider", "status", "amount"}
    import matplotlib.image

    image = matplotlib.image.imread(io.BytesIO(files[f"revenue_by_provider_{month}.png"].content), format="png")
    assert image.shape[0] > 300 and image.shape[1] > 600

    # Email: the CFO, finance-ops in copy; the table in HTML, the chart inline, the files attached
    [mail] = fake_smtp.mails
    assert sorted(mail.rcpt_tos) == ["cfo@example.com", "finance-ops@example.com"]
    assert mail.subject.startswith("Revenue by payment provider")
    html = mail.body("html")
    assert "<table" in html and "Total" in html
    [png] = [p for p in mail.message.walk() if p.get_content_type() == "image/png"]
    assert png.get_content_disposition() == "inline" and f'src="cid:{png["Content-ID"].strip("<>")}"' in html
    attached = mail.attachments
    assert {f"revenue_by_provider_{month}.xlsx", f"revenue_by_provider_{month}.csv"} <= set(attached)
    assert attached[f"revenue_by_provider_{month}.csv"] == files[f"revenue_by_provider_{month}.csv"].content


def test_ops_daily_summary_is_a_slack_table(books: dict[str, str], fake_slack: FakeSlack,
                                            clock: pendulum.DateTime) -> None:
    run = run_dag(reports.daily, conf={"conn_id": books["conn_id"]}, logical_date=clock)
    assert run.task_states == {"payments_summary": "success"}
    [message] = fake_slack.messages("#ops")
    text = str(message.blocks)
    yesterday, _ = berlin_days(clock, 1)
    assert f"Payments per provider and status, {yesterday:%Y-%m-%d}" in text
    assert "succeeded" in text and "Total" in text
    assert fake_slack.files == []
