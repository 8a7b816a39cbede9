"""dbt artifacts on their own: what is read, what is refused (missing, truncated, foreign, stale), and how
tests, unit tests, skipped tests and failed models become results."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_opsflow.dbt.artifacts import DbtArtifactError, load
from airflow_opsflow.dbt.results import sample_query, to_check_results

RUN = "https://schemas.getdbt.com/dbt/run-results/v6.json"
MANIFEST = "https://schemas.getdbt.com/dbt/manifest/v12.json"


def result(uid: str, status: str, failures: int | None = None, message: str | None = None,
           code: str | None = None) -> dict[str, Any]:
    return {"unique_id": uid, "status": status, "failures": failures, "message": message, "timing": [],
            "thread_id": "Thread-1", "execution_time": 0.1, "adapter_response": {}, "compiled": code is not None,
            "compiled_code": code, "relation_name": None}


NODES = {
    "test.shop.not_null_orders_id.ab12": {
        "resource_type": "test", "name": "not_null_orders_id", "column_name": "id",
        "attached_node": "model.shop.orders",
        "test_metadata": {"name": "not_null", "namespace": None, "kwargs": {"column_name": "id", "model": "x"}},
        "config": {"severity": "ERROR", "warn_if": "!= 0", "error_if": "!= 0", "meta": {"owner": "ops"}},
        "original_file_path": "models/schema.yml"},
    "test.shop.source_accepted_values_raw_payments_status.cd34": {
        "resource_type": "test", "name": "source_accepted_values_raw_payments_status", "column_name": "status",
        "attached_node": None, "depends_on": {"nodes": ["source.shop.raw.payments"]},
        "test_metadata": {"name": "accepted_values", "namespace": None,
                          "kwargs": {"column_name": "status", "values": ["paid", "failed"], "model": "x"}},
        "config": {"severity": "warn"}},
    "test.shop.assert_totals.ef56": {"resource_type": "test", "name": "assert_totals",
                                     "depends_on": {"nodes": ["model.shop.invoices"]}, "config": {},
                                     "original_file_path": "tests/assert_totals.sql"},
    "model.shop.invoices": {"resource_type": "model", "name": "invoices", "relation_name": '"db"."main"."invoices"'},
}
UNIT = {"unit_test.shop.orders.test_totals": {"resource_type": "unit_test", "name": "test_totals",
                                              "model": "orders", "config": {}}}


def write(target: Path, results: list[dict[str, Any]], *, run_schema: str = RUN, manifest_schema: str = MANIFEST,
          generated: str = "2026-11-21T06:00:00.5Z") -> Path:
    target.mkdir(parents=True, exist_ok=True)
    (target / "run_results.json").write_text(json.dumps({
        "metadata": {"dbt_schema_version": run_schema, "dbt_version": "1.10.4", "generated_at": generated,
                     "invocation_id": "inv-1"},
        "results": results, "elapsed_time": 1.0, "args": {"which": "build"}}))
    (target / "manifest.json").write_text(json.dumps({
        "metadata": {"dbt_schema_version": manifest_schema, "project_name": "shop"}, "nodes": NODES,
        "unit_tests": UNIT, "sources": {"source.shop.raw.payments": {"source_name": "raw", "name": "payments"}}}))
    return target


def test_tests_unit_tests_skips_and_model_errors(tmp_path: Path) -> None:
    target = write(tmp_path / "t", [
        result("test.shop.not_null_orders_id.ab12", "fail", 3, "Got 3 results, configured to fail if != 0",
               "select id from orders where id is null"),
        result("test.shop.source_accepted_values_raw_payments_status.cd34", "warn", 1, "Got 1 result"),
        result("model.shop.invoices", "error", None, "Database Error in model invoices\n  relation missing"),
        result("test.shop.assert_totals.ef56", "skipped"),
        result("unit_test.shop.orders.test_totals", "pass", 0),
    ])
    run = load(target)
    assert (run.dbt_version, run.command, run.invocation_id, run.project) == ("1.10.4", "build", "inv-1", "shop")
    by = {r.name: r for r in to_check_results(run)}
    nn = by["not_null_orders_id"]
    assert (nn.status, nn.severity, nn.table, nn.violating_count, nn.owner) == ("fail", "error", "orders", 3, "ops")
    assert nn.expected == "not_null on orders.id" and nn.threshold == "error if failures != 0"
    assert nn.column == "id" and by["source_accepted_values_raw_payments_status"].column == "status"
    av = by["source_accepted_values_raw_payments_status"]
    assert (av.status, av.severity, av.table) == ("warn", "warn", "raw.payments")
    assert av.expected == "accepted_values(values=['paid', 'failed']) on raw.payments.status"
    skipped = by["assert_totals"]
    assert skipped.status == "skipped" and "upstream node did not build" in skipped.message
    assert skipped.expected.startswith("singular test tests/assert_totals.sql on invoices")
    model = by["dbt model invoices"]
    assert model.status == "error" and model.message == "Database Error in model invoices relation missing"
    assert by["test_totals"].kind == "dbt_unit_test" and by["test_totals"].status == "pass"
    assert sample_query(nn, "postgres", 5) == "SELECT * FROM (SELECT id FROM orders WHERE id IS NULL) AS " \
                                               "opsflow_dbt_failures LIMIT 5"
    assert sample_query(by["test_totals"], "postgres", 5) is None


def test_missing_truncated_foreign_and_stale_artifacts_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DbtArtifactError, match=r"run_results\.json does not exist: dbt did not finish"):
        load(tmp_path / "nothing")
    target = write(tmp_path / "t", [result("test.shop.not_null_orders_id.ab12", "pass", 0)])
    text = (target / "run_results.json").read_text()
    (target / "run_results.json").write_text(text[: len(text) // 2])
    with pytest.raises(DbtArtifactError, match=r"is not valid JSON .* truncated or still being written"):
        load(target)
    write(target, [], run_schema="https://schemas.getdbt.com/dbt/run-results/v5.json")
    with pytest.raises(DbtArtifactError, match=r"run-results schema v5 \(dbt 1.10.4\); opsflow reads v6"):
        load(target)
    write(target, [result("test.shop.not_null_orders_id.ab12", "pass", 0)],
          manifest_schema="https://schemas.getdbt.com/dbt/manifest/v11.json")
    with pytest.raises(DbtArtifactError, match="manifest schema v11"):
        load(target)
    write(target, [], run_schema="https://schemas.getdbt.com/dbt/catalog/v1.json")
    with pytest.raises(DbtArtifactError, match="is not a dbt run-results artifact"):
        load(target)
    write(target, [])
    with pytest.raises(DbtArtifactError, match="written at 2026-11-21 06:00:00 UTC, before this run started"):
        load(target, not_before=datetime(2026, 11, 21, 7, tzinfo=UTC))
    assert load(target, not_before=datetime(2026, 11, 21, 5, tzinfo=UTC)).results == {}


def test_names_shared_across_packages_are_told_apart(tmp_path: Path) -> None:
    NODES["test.other.not_null_orders_id.ff00"] = dict(NODES["test.shop.not_null_orders_id.ab12"])
    try:
        target = write(tmp_path / "t", [result("test.shop.not_null_orders_id.ab12", "pass", 0),
                                        result("test.other.not_null_orders_id.ff00", "pass", 0)])
        names = [r.name for r in to_check_results(load(target))]
        assert names == ["shop.not_null_orders_id", "other.not_null_orders_id"]
    finally:
        del NODES["test.other.not_null_orders_id.ff00"]


@pytest.mark.usefixtures("airflow_db")
def test_results_of_several_targets_merge_newest_first(tmp_path: Path, clock: datetime) -> None:
    from airflow_opsflow_testing.dag_runner import run_dag

    from tests.helpers import DAGS, load_module, results_by_name

    dags = load_module(DAGS / "dbt_targets.py")
    write(tmp_path / "a" / "target", [result("test.shop.not_null_orders_id.ab12", "fail", 2)],
          generated=clock.isoformat())
    write(tmp_path / "b" / "target", [result("test.shop.not_null_orders_id.ab12", "pass", 0),
                                      result("test.shop.assert_totals.ef56", "warn", 1)],
          generated=(clock + timedelta(seconds=1)).isoformat())
    run = run_dag(dags.dag, conf={"targets": str(tmp_path / "*" / "target")}, logical_date=clock)
    assert run.task_states == {"dbt_tests": "success"}
    statuses = {n: r["status"] for n, r in results_by_name(run.xcom("dbt_tests")).items()}
    assert statuses == {"not_null_orders_id": "pass", "assert_totals": "warn"}  # b is newer than a
    missing = run_dag(dags.dag, conf={"targets": str(tmp_path / "none" / "*")},
                      logical_date=clock + timedelta(minutes=1))
    assert missing.task_states == {"dbt_tests": "failed"} and missing.tries["dbt_tests"] == 1


def test_merged_targets_take_each_nodes_newest_result(tmp_path: Path) -> None:
    from airflow_opsflow.dbt.artifacts import merge

    old = write(tmp_path / "a", [result("model.shop.invoices", "error", None, "relation missing"),
                                 result("test.shop.not_null_orders_id.ab12", "fail", 2)],
                generated="2026-11-21T06:00:00Z")
    new = write(tmp_path / "b", [result("model.shop.invoices", "success"),
                                 result("test.shop.assert_totals.ef56", "pass", 0)], generated="2026-11-21T06:05:00Z")
    run = merge([load(new), load(old)])
    statuses = {r.name: r.status for r in to_check_results(run)}
    assert statuses == {"not_null_orders_id": "fail", "assert_totals": "pass"}  # the model was rebuilt: no error


@pytest.mark.usefixtures("airflow_db")
def test_targets_from_earlier_runs_are_skipped_unless_all_are(tmp_path: Path, clock: datetime) -> None:
    from airflow_opsflow_testing.dag_runner import run_dag

    from tests.helpers import DAGS, load_module, results_by_name

    dags = load_module(DAGS / "dbt_targets.py")
    write(tmp_path / "old" / "target", [result("test.shop.assert_totals.ef56", "fail", 3)],
          generated=(clock - timedelta(days=1)).isoformat())
    write(tmp_path / "new" / "target", [result("test.shop.not_null_orders_id.ab12", "pass", 0)],
          generated=(clock + timedelta(hours=1)).isoformat())  # written during the run below
    run = run_dag(dags.current_dag, conf={"targets": str(tmp_path / "*" / "target")}, logical_date=clock)
    assert run.task_states == {"dbt_tests": "success"}
    assert list(results_by_name(run.xcom("dbt_tests"))) == ["not_null_orders_id"]  # yesterday's is not news
    stale = run_dag(dags.current_dag, conf={"targets": str(tmp_path / "old" / "target")},
                    logical_date=clock + timedelta(minutes=1))
    assert stale.task_states == {"dbt_tests": "failed"} and stale.tries["dbt_tests"] == 1
