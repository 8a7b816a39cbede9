"""ReverseSyncOperator refuses bad settings when the DAG is parsed, naming the DAG, the task and the setting."""

from __future__ import annotations

from typing import Any

import pendulum
import pytest
from airflow.sdk import DAG

from airflow_opsflow.destinations import DatabaseTable, HttpEndpoint, HubSpotObjects
from airflow_opsflow.operators.reverse_sync import ReverseSyncOperator

DEST = HttpEndpoint("api", endpoint="/v1/items")


def build(**kwargs: Any) -> ReverseSyncOperator:
    with DAG("sync_dag", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")):
        settings: dict[str, Any] = {"task_id": "push", "conn_id": "db", "table": "t", "primary_key": "id",
                                    "destination": DEST, **kwargs}
        return ReverseSyncOperator(**settings)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"mode": "merge"}, "mode must be one of upsert, insert, update, mirror"),
    ({"primary_key": []}, "primary_key must name at least one column"),
    ({"sql": "SELECT 1"}, "give exactly one of sql= or table="),
    ({"shard": (4, 4)}, "shard must be (index, count)"),
    ({"mapping": {"amount": {"column": "a", "type": "money"}}}, "mapping: mapping of 'amount': unknown type"),
    ({"max_delete_share": 2}, "max_delete_share must be between 0 and 1"),
    ({"max_delete_rows": -1}, "max_delete_rows must be an integer >= 0, got -1"),
    ({"max_delete_rows": 0.5}, "max_delete_rows must be an integer >= 0, got 0.5"),
    ({"destination": "https://crm"}, "destination must be a SyncDestination"),
    ({"mode": "mirror", "cursor": "updated_at", "full_diff_every": None}, "mirror with a cursor needs full_diff_every"),
])
def test_bad_settings_name_dag_task_and_setting(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as error:
        build(**kwargs)
    assert "dag 'sync_dag', task 'push'" in str(error.value) and message in str(error.value)


def test_destination_settings_are_checked_when_declared() -> None:
    with pytest.raises(ValueError, match="per-record template: set batch_size=1"):
        HttpEndpoint("api", endpoint="/v1/items/{{ record.id }}")
    with pytest.raises(ValueError, match="invalid template"):
        HttpEndpoint("api", endpoint="/v1/items/{{ record.id", batch_size=1)
    with pytest.raises(ValueError, match="id_property"):
        HubSpotObjects("companies", id_property="")
    with pytest.raises(ValueError, match="key="):
        DatabaseTable("db", "crm", key=())


def test_good_settings_build() -> None:
    op = build(mode="mirror", shard=[1, 4], mapping={"id": "id"})
    assert op.shard == (1, 4) and op.template_ext == (".sql",)


@pytest.mark.parametrize(("flag", "value"), [("dry_run", "ture"), ("full_resync", "None")])
def test_a_flag_that_is_neither_true_nor_false_fails_the_run_before_anything_is_sent(flag: str, value: str) -> None:
    # It used to be false (so a misspelt dry_run sent everything); the rendered value is checked at run time.
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match=f"task 'push': {flag} must be true or false: '{value}' is not a"):
        build(**{flag: value}).execute({})
