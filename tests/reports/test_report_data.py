"""ReportOperator on the data it meets: an empty week (the documented example, on every database), text
Excel cannot hold, a value Excel refuses, float sums in the CSV, a database that cannot be reached."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import datetime
from decimal import Decimal

import pandas as pd
import pendulum
import pytest
from airflow_opsflow_testing.dag_runner import run_dag
from airflow_opsflow_testing.sample_data import seed
from airflow_opsflow_testing.sample_metrics import seed_settlements
from airflow_opsflow_testing.slack_server import FakeSlack
from airflow_opsflow_testing.smtp_server import FakeSmtp

from airflow_opsflow.checks.session import ReadOnlySession
from airflow_opsflow.reports.build import column_kinds, frame_of
from tests.conftest import Database
from tests.helpers import DAGS, EXAMPLES, load_module

pytestmark = pytest.mark.usefixtures("airflow_db", "slack_conn", "smtp_conn")
dags = load_module(DAGS / "reports.py")

NOW = datetime(2026, 3, 2, 7, 0)  # the sample data's "now": payments over the 30 days before it
EMPTY_WEEK = pendulum.datetime(2025, 1, 6, 7, tz="UTC")  # a year before any payment
FULL_WEEK = pendulum.instance(NOW, tz="UTC")


def log_of(capfd: pytest.CaptureFixture[str]) -> str:
    out = capfd.readouterr()
    return out.out + out.err


def slack_text(fake_slack: FakeSlack, channel: str) -> str:
    [message] = fake_slack.messages(channel)
    return (message.text or "") + json.dumps(message.blocks or [])


@pytest.fixture
def ops(sqlite_db: Database) -> Database:
    seed(sqlite_db.conn, now=NOW, problems=True)
    return sqlite_db


@pytest.fixture(params=["sqlite", "pg", "mariadb"])
def docs_dbs(request: pytest.FixtureRequest, pg_db: Database, monkeypatch: pytest.MonkeyPatch) -> Database:
    """The docs' connections: ``ops_db`` (payments) on each database, ``warehouse`` (settlements) on PostgreSQL."""
    if request.param == "sqlite":
        ops = request.getfixturevalue("sqlite_db")
        monkeypatch.setenv("AIRFLOW_CONN_OPS_DB", json.dumps({"conn_type": "sqlite",
                                                              "host": ops.conn.execute("PRAGMA database_list")
                                                              .fetchone()[2]}))
    elif request.param == "pg":
        ops = pg_db
        monkeypatch.setenv("AIRFLOW_CONN_OPS_DB", request.getfixturevalue("pg_uri"))
    else:
        ops = request.getfixturevalue("mariadb_db")
        monkeypatch.setenv("AIRFLOW_CONN_OPS_DB", request.getfixturevalue("mariadb_uri"))
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", request.getfixturevalue("pg_uri"))
    seed(ops.conn, now=NOW, problems=True)
    ops.conn.commit()
    seed_settlements(pg_db.conn, ops.conn, breaks=True)
    return ops


def test_the_documented_example_sends_an_empty_week(docs_dbs: Database, fake_slack: FakeSlack,
                                                   fake_smtp: FakeSmtp) -> None:
    """pandas 3 read an empty result as columns of `object`: `revenue - settled` failed in step #4."""
    run = run_dag(dags.documented, logical_date=EMPTY_WEEK)
    assert run.task_states == {"revenue_by_provider": "success"}
    summary = run.xcom("revenue_by_provider")
    assert summary["rows"] == 0 and summary["columns"] == ["provider", "revenue", "settled", "unsettled"]
    assert "No rows for this report" in slack_text(fake_slack, "#finance-ops")
    assert len(fake_smtp.mails) == 1


def test_the_documented_example_files_carry_exact_sums(docs_dbs: Database, fake_slack: FakeSlack) -> None:
    run = run_dag(dags.documented, logical_date=FULL_WEEK)
    assert run.task_states == {"revenue_by_provider": "success"}
    files = {f.filename: f.content or b"" for f in fake_slack.files}
    rows = list(csv.DictReader(io.StringIO(files[next(n for n in files if n.endswith(".csv"))].decode())))
    cur = docs_dbs.conn.cursor()
    since, until = (FULL_WEEK.subtract(days=7).isoformat(), FULL_WEEK.isoformat())
    mark = "?" if docs_dbs.dialect == "sqlite" else "%s"
    cur.execute(f"SELECT provider, SUM(amount) FROM payments WHERE status = 'succeeded' AND created_at >= {mark} "
                f"AND created_at < {mark} GROUP BY provider", (since, until))
    expected = {p: Decimal(str(s)).quantize(Decimal("0.01")) for p, s in cur.fetchall()}  # SQLite sums REALs
    docs_dbs.conn.rollback()
    assert expected and {r["provider"]: Decimal(r["revenue"]) for r in rows[:-1]} == expected
    assert Decimal(rows[-1]["revenue"]) == sum(expected.values())  # the total row, too
    for r in rows:  # every number as people read it: cents, not 3225.7799999999997
        assert all(re.fullmatch(r"-?\d+(\.\d{1,2})?", r[c]) for c in ("revenue", "settled", "unsettled")), r


@pytest.mark.parametrize("name", ["sqlite", "pg", "mariadb"])
def test_an_empty_result_keeps_its_column_types(name: str, request: pytest.FixtureRequest) -> None:
    """Types from the driver (PostgreSQL, MariaDB); SQLite's driver has none, so no value means no type."""
    db: Database = request.getfixturevalue(f"{name}_db")
    sql = {"pg": "SELECT 1 AS n, 1.5::numeric(12,2) AS amount, 2.5::float8 AS rate, now() AS at, "
                 "localtimestamp AS local_at, true AS ok, 'x' AS label WHERE false",
           "mariadb": "SELECT 1 AS n, CAST(1.5 AS DECIMAL(12,2)) AS amount, CAST(2.5 AS DOUBLE) AS rate, "
                      "NULL AS at, NOW() AS local_at, NULL AS ok, 'x' AS label FROM DUAL WHERE 1 = 0",
           "sqlite": "SELECT 1 AS n, 1.5 AS amount WHERE 0"}[name]
    with ReadOnlySession(db.conn, db.dialect) as session:
        names, rows = session.query(sql)
        df = frame_of(names, rows, column_kinds(db.dialect, session.description))
    kinds = {c: str(t) for c, t in df.dtypes.items()}
    if name == "pg":
        assert kinds == {"n": "int64", "amount": "float64", "rate": "float64", "at": "datetime64[us, UTC]",
                         "local_at": "datetime64[us]", "ok": "bool", "label": "object"}
    elif name == "mariadb":
        assert kinds["n"] == "int64" and kinds["amount"] == kinds["rate"] == "float64"
        assert kinds["local_at"] == "datetime64[us]" and kinds["label"] == "object"
    else:
        assert kinds == {"n": "object", "amount": "object"}  # untyped: the steps read such columns as numbers
    # NULLs only, with rows: a number column is NaN, not None objects
    nulls = frame_of(["n", "amount"], [(None, None)], ["int", "float"])
    assert [str(t) for t in nulls.dtypes] == ["float64", "float64"]


def test_control_characters_are_removed_from_the_xlsx_and_said(ops: Database, fake_slack: FakeSlack,
                                                               fake_smtp: FakeSmtp) -> None:
    """openpyxl's IllegalCharacterError ended the task: the report goes out, the note says what changed."""
    run = run_dag(dags.control_characters, conf={"conn_id": ops.conn_id})
    assert run.task_states == {"report": "success"}
    note = ("payments.xlsx: control characters Excel cannot store removed from 3 cell(s) of column 'note' "
            "(sheet 'report'); payments.csv has them as they are")
    assert run.xcom("report")["notes"] == [note]
    files = {f.filename: f.content or b"" for f in fake_slack.files}
    assert pd.read_excel(io.BytesIO(files["payments.xlsx"]))["note"].tolist() == ["linefeed"] * 3
    assert "line\x01feed" in files["payments.csv"].decode()
    assert note in slack_text(fake_slack, "#ops") and note in (fake_smtp.mails[0].body("plain") or "")


def test_a_cell_over_excels_limit_is_cut_and_said(ops: Database, fake_slack: FakeSlack,
                                                  fake_smtp: FakeSmtp, capfd: pytest.CaptureFixture[str]) -> None:
    """A 2,000,000-character cell was cut to 32,767 characters silently while the task succeeded."""
    run = run_dag(dags.long_cell, conf={"conn_id": ops.conn_id})
    assert run.task_states == {"report": "success"}
    note = ("payments.xlsx: 1 cell(s) of column 'body' (sheet 'report') longer than Excel's 32,767 characters "
            "cut; payments.csv has them as they are")
    assert run.xcom("report")["notes"] == [note]
    assert note in log_of(capfd)
    files = {f.filename: f.content or b"" for f in fake_slack.files}
    body = pd.read_excel(io.BytesIO(files["payments.xlsx"]))["body"].tolist()
    assert len(body[0]) == 32_767 and body[0].endswith("…") and body[1] == "short"
    assert len(pd.read_csv(io.BytesIO(files["payments.csv"]))["body"][0]) == 2_000_000
    assert note in slack_text(fake_slack, "#ops") and note in (fake_smtp.mails[0].body("plain") or "")


def test_a_value_excel_refuses_names_task_file_and_column(ops: Database, pg_db: Database, fake_slack: FakeSlack,
                                                          fake_smtp: FakeSmtp,
                                                          capfd: pytest.CaptureFixture[str]) -> None:
    run = run_dag(dags.excel_refuses, conf={"conn_id": ops.conn_id, "warehouse_conn_id": pg_db.conn_id})
    assert run.task_states == {"report": "failed"} and run.tries["report"] == 1  # the same data fails again
    assert fake_slack.messages() == [] and fake_smtp.mails == []
    assert re.search(r"task 'report'.*: rendering the report \(frame 'payments'\) failed: payments\.xlsx: "
                     r"sheet 'report', column 'opens': ValueError: Excel does not support datetimes with "
                     r"timezones.*nothing was sent", log_of(capfd))


def test_the_csv_carries_the_numbers_people_see(ops: Database, fake_slack: FakeSlack) -> None:
    """0.1 + 0.2 and 3000.01 + 225.77 summed in floats were 0.30000000000000004 and 3225.7799999999997."""
    run = run_dag(dags.float_sums, conf={"conn_id": ops.conn_id})
    assert run.task_states == {"report": "success"}
    files = {f.filename: f.content or b"" for f in fake_slack.files}
    assert files["payments.csv"].decode().splitlines() == ["provider,amount", "a,0.3", "b,3225.78"]
    assert pd.read_excel(io.BytesIO(files["payments.xlsx"]))["amount"].tolist() == [0.3, 3225.78]
    assert "3,225.78" in slack_text(fake_slack, "#ops")


def test_a_database_that_cannot_be_reached_is_named_and_retried(ops: Database, fake_slack: FakeSlack,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_OPSFLOW_DOWN", "postgresql://reporter:s3cret-pw@127.0.0.1:1/ops")
    run = run_dag(dags.unreachable, conf={"conn_id": ops.conn_id})
    assert run.task_states == {"report": "failed"} and fake_slack.messages() == []
    assert run.tries["report"] == 2  # a database that may come back: retried
    log = log_of(capfd)
    assert re.search(r"task 'report'.*connection 'opsflow_down'.*OperationalError: .*refused", log)
    assert "s3cret-pw" not in log


@pytest.mark.parametrize("example", ["finance", "daily"])
def test_the_example_dags_send_an_empty_period(example: str, ops: Database, pg_db: Database,
                                               fake_slack: FakeSlack) -> None:
    """dags_examples/reports.py on a period without payments (its windows end at the run's ``run_after``)."""
    examples = load_module(EXAMPLES / "reports.py")
    seed_settlements(pg_db.conn, ops.conn, breaks=True)
    run = run_dag(getattr(examples, example), conf={"conn_id": ops.conn_id, "warehouse_conn_id": pg_db.conn_id},
                  logical_date=EMPTY_WEEK)
    [task] = run.task_states
    assert run.task_states[task] == "success" and run.xcom(task)["rows"] == 0
    assert "No rows for this report" in slack_text(fake_slack, "#finance-ops" if example == "finance" else "#ops")
