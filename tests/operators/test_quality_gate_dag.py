"""Quality gates through real DAG runs: the check task's verdict on its asset event, and the downstream DAG
that runs its report only on good data (the example dags_examples/quality_gate.py)."""

from __future__ import annotations

from datetime import timedelta

import pendulum
import pytest
from airflow_opsflow_testing.dag_runner import run_dag
from airflow_opsflow_testing.sample_data import repair, seed
from airflow_opsflow_testing.slack_server import FakeSlack

from airflow_opsflow.operators.quality_gate import EXTRA_KEY, QualityGateOperator
from tests.conftest import Database
from tests.helpers import DAGS, EXAMPLES, load_module

pytestmark = pytest.mark.usefixtures("airflow_db", "slack_conn")
example = load_module(EXAMPLES / "quality_gate.py")
dags = load_module(DAGS / "quality_gate.py")


@pytest.fixture(autouse=True)
def state(sqlite_db: Database, tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", sqlite_db.conn_id)


def _verdict(run: object) -> dict[str, object]:
    return run.xcom("payments_passed_their_checks")  # type: ignore[attr-defined,no-any-return]


def test_the_report_runs_on_good_data_only(sqlite_db: Database, fake_slack: FakeSlack) -> None:
    conf = {"conn_id": sqlite_db.conn_id}
    seed(sqlite_db.conn, problems=True)
    checked = run_dag(example.producer, conf=conf)
    assert checked.task_states == {"check_payments": "success"}  # fail_on=("error",): the verdict goes out
    bad = run_dag(example.consumer, conf=conf)
    assert bad.task_states == {"payments_passed_their_checks": "skipped", "revenue_by_provider": "skipped"}
    assert fake_slack.messages("#finance-ops") == []

    repair(sqlite_db.conn)
    assert run_dag(example.producer, conf=conf).task_states == {"check_payments": "success"}
    good = run_dag(example.consumer, conf=conf)
    assert good.task_states == {"payments_passed_their_checks": "success", "revenue_by_provider": "success"}
    verdict = _verdict(good)
    assert verdict["status"] == "pass" and verdict["score"] == 1.0
    assert verdict["counts"] == {"pass": 3, "skipped": 0, "warn": 0, "fail": 0, "error": 0}
    assert (verdict["dag_id"], verdict["task_id"]) == ("payments_quality", "check_payments")
    [message] = fake_slack.messages("#finance-ops")
    assert "Revenue by payment provider" in (message.text or "")


def _newest_event(uri: str) -> tuple[dict[str, object], pendulum.DateTime]:
    """The asset's newest event as Airflow stored it: its extra and its timestamp."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        event = (session.query(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                 .filter(AssetModel.uri == uri).order_by(AssetEvent.id.desc()).first())
        return dict(event.extra), pendulum.instance(event.timestamp)


def test_the_verdict_on_the_asset_event_says_what_failed(sqlite_db: Database, fake_slack: FakeSlack) -> None:
    conf = {"conn_id": sqlite_db.conn_id}
    seed(sqlite_db.conn, problems=True)
    run_dag(example.producer, conf=conf)
    extra = _newest_event(example.VERIFIED_PAYMENTS.uri)[0][EXTRA_KEY]
    assert extra["status"] == "fail"  # type: ignore[index]
    assert (extra["counts"]["fail"], extra["counts"]["pass"]) == (2, 1)  # type: ignore[index]
    assert extra["score"] == pytest.approx(1 / 3, 1e-3)  # type: ignore[index]
    assert sorted(extra["not_passing"]) == ["amount_positive (fail)", "customer_exists (fail)"]  # type: ignore[index]


def test_a_stale_verdict_is_not_trusted(sqlite_db: Database, fake_slack: FakeSlack) -> None:
    conf = {"conn_id": sqlite_db.conn_id}
    seed(sqlite_db.conn, problems=False)
    run_dag(example.producer, conf=conf)
    _, at = _newest_event(example.VERIFIED_PAYMENTS.uri)
    later = at + timedelta(hours=3)  # a run 3 h after the verdict (max_age is 2 h), whatever the clock says
    stale = run_dag(example.consumer, conf=conf, logical_date=later)
    assert stale.task_states == {"payments_passed_their_checks": "skipped", "revenue_by_provider": "skipped"}


def test_an_asset_without_a_verdict_is_a_named_error_and_no_event_skips() -> None:
    assert run_dag(dags.plain_producer).task_states == {"load": "success"}
    run = run_dag(dags.plain_consumer)
    assert run.task_states == {"gate": "failed", "after": "upstream_failed"}
    empty = run_dag(dags.no_event)
    assert empty.task_states == {"gate": "skipped", "after": "skipped"}


def test_bad_settings_are_named_at_parse_time() -> None:
    from airflow.sdk import Asset

    with pytest.raises(ValueError, match=r"task 'g'.*require must be 'pass' or 'warn'"):
        QualityGateOperator(task_id="g", asset=Asset("opsflow://x/y"), require="fail")
    with pytest.raises(ValueError, match=r"task 'g'.*min_score must be between 0 and 1"):
        QualityGateOperator(task_id="g", asset=Asset("opsflow://x/y"), min_score=2)
    with pytest.raises(ValueError, match=r"task 'g'.*asset must be an airflow.sdk.Asset"):
        QualityGateOperator(task_id="g", asset="opsflow://x/y")  # type: ignore[arg-type]
