"""Metric checks with a business calendar in real DAG runs: a public holiday and the last business day's
billing run are learnt (the same metric without the calendar alarms on both), a campaign day with no
history gets no verdict, and a five-day outage to near zero alerts once, is never learnt as the new level,
and resolves on the first normal day."""

from __future__ import annotations

from collections.abc import Iterator

import pendulum
import pytest
from airflow_opsflow_testing.dag_runner import run_dag
from airflow_opsflow_testing.slack_server import FakeSlack

from tests.conftest import Database
from tests.helpers import DAGS, load_module, results_by_name, state_on
from tests.monitors.payments_calendar import create_payments, expected_payments

pytestmark = pytest.mark.usefixtures("airflow_db", "slack_conn")
dags = load_module(DAGS / "calendar_monitors.py")
KEY = "test_calendar_monitors/daily_payments/payments_per_day"


@pytest.fixture
def payments(db: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    state_on(db, monkeypatch, "opsflow_cal_")
    table = create_payments(db)
    yield table
    db.execute(f"DROP TABLE {table}")


def at_berlin(day: str, hour: int = 8) -> pendulum.DateTime:
    return pendulum.parse(day, tz="Europe/Berlin").add(hours=hour).in_timezone("UTC")  # type: ignore[union-attr]


def judged(db: Database, table: str, day: str) -> dict[str, dict]:  # type: ignore[type-arg]
    run = run_dag(dags.dag, conf={"conn_id": db.conn_id, "table": table}, logical_date=at_berlin(day))
    return results_by_name(run.xcom("daily_payments", key="results"))


def stored(db: Database, bucket_prefix: str) -> tuple[int, int, int]:
    """(anomalous, new_level, recovered) of the payments_per_day point whose UTC bucket starts so."""
    prefix = "opsflow_cal_" if db.dialect == "postgres" else "opsflow_"
    cur = db.conn.cursor()
    mark = "?" if db.dialect == "sqlite" else "%s"
    cur.execute(f"SELECT p.anomalous, p.new_level, COALESCE(p.recovered, 0) FROM {prefix}metric_points p JOIN "
                f"{prefix}metric_series s ON s.series_id = p.series_id WHERE s.history_key = {mark} AND p.bucket LIKE "
                f"{mark}", (KEY, bucket_prefix + "%"))
    row = cur.fetchone()
    cur.close()
    db.conn.rollback()
    return tuple(int(v) for v in row)  # type: ignore[return-value]


def test_holidays_and_billing_days_are_learnt_and_an_outage_is_not(db: Database, payments: str,
                                                                     fake_slack: FakeSlack) -> None:
    # Whit Monday 2026-05-25: a German public holiday, as quiet as a Sunday. The first run backfills a year,
    # which holds a dozen earlier holidays.
    holiday = judged(db, payments, "2026-05-26")
    cal, plain = holiday["payments_per_day"], holiday["payments_no_calendar"]
    assert cal["observed"]["bucket"] == "Mon 2026-05-25 (holiday)"
    assert cal["status"] == "pass", cal["message"]
    # Without the calendar, a Monday's band holds Easter Monday's quiet too, or the day alarms: either way
    # the quiet day is no ordinary Monday to it.
    width = cal["observed"]["high"] - cal["observed"]["low"]
    assert plain["status"] == "warn" or plain["observed"]["high"] - plain["observed"]["low"] > 2 * width, \
        (cal["message"], plain["message"])
    assert "learning holiday, last_business_day, spring_campaign" in cal["expected"]

    # Friday 2026-05-29: the month's last business day, 2.5 times a normal Friday (the billing run).
    billing = judged(db, payments, "2026-05-30")
    cal, plain = billing["payments_per_day"], billing["payments_no_calendar"]
    assert cal["observed"]["bucket"] == "Fri 2026-05-29 (last_business_day)"
    assert cal["status"] == "pass", cal["message"]
    assert cal["observed"]["low"] < expected_payments(pendulum.date(2026, 5, 29)) < cal["observed"]["high"]
    # Without the calendar, a Friday's band must hold both billing and ordinary Fridays: far wider.
    width = cal["observed"]["high"] - cal["observed"]["low"]
    assert plain["observed"]["high"] - plain["observed"]["low"] > 2 * width, (cal["message"], plain["message"])

    # Friday 2026-06-05: a campaign day never seen before gets no verdict, and says why.
    campaign = judged(db, payments, "2026-06-06")["payments_per_day"]
    assert campaign["status"] == "skipped"
    assert "spring_campaign has 0 earlier occurrences in the history, 2 needed to learn its effect" in \
        campaign["message"]
    assert not [m for m in fake_slack.messages("#data-quality") if "payments_per_day" in (m.text or "")]

    # The outage: Monday 2026-06-08 to Friday 06-12 at one payment a day.
    first = judged(db, payments, "2026-06-09")["payments_per_day"]
    assert first["status"] == "fail" and first["observed"]["value"] == 1
    fourth = judged(db, payments, "2026-06-12")["payments_per_day"]  # Thursday: past adapt_after (3)
    assert fourth["status"] == "fail" and "new_level" not in fourth["observed"], fourth["message"]
    assert stored(db, "2026-06-09")[:2] == (1, 0) and stored(db, "2026-06-10")[:2] == (1, 0)
    back = judged(db, payments, "2026-06-16")["payments_per_day"]  # Monday 06-15: payments are back
    assert back["status"] == "pass", back["message"]
    # Judged against the level before the outage, which was never learnt as the norm.
    normal = expected_payments(pendulum.date(2026, 6, 15))
    assert 0.8 * normal < back["observed"]["expected"] < 1.2 * normal
    alerts = [m for m in fake_slack.messages("#data-quality")
              if "payments_per_day" in (m.text or "") and m.thread_ts in (None, m.ts)]
    assert len(alerts) == 1, [m.text for m in alerts]  # one incident for the whole outage
    thread = fake_slack.thread("#data-quality", alerts[0].ts)
    assert (thread[-1].text or "").startswith(":white_check_mark: Resolved: payments_per_day")
