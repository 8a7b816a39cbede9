"""opsflow's REST API inside Airflow's own API server app (``create_app()``, the plugin found through the
provider's ``airflow.plugins`` entry point), with the simple auth manager's users and its ``/auth/token``: a
real DAG run flags a drop, a user marks it through the API as herself, the incident closes and the task's
next run posts the resolution once; a viewer may list marks but not mark; errors name what is missing."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from airflow_opsflow_testing.dag_runner import run_dag
from airflow_opsflow_testing.slack_server import FakeSlack
from fastapi.testclient import TestClient

from airflow_opsflow.incidents.lifecycle import fingerprint
from airflow_opsflow.incidents.repo import IncidentRepo
from airflow_opsflow.monitors.repo import MetricRepo
from airflow_opsflow.state.store import StateStore
from tests.conftest import AIRFLOW_ENV, Database
from tests.monitors.orders import DROP_DAY
from tests.monitors.test_mark_expected_dag import KEY, dags, on_day, orders, resolutions, state  # noqa: F401
from tests.plugins import auth
from tests.plugins.auth import api_server

pytestmark = pytest.mark.usefixtures("airflow_db", "slack_conn")
USERS = {"alice": ("user", "alice-secret"), "victor": ("viewer", "victor-secret")}  # name: (role, password)
MARKS = "/opsflow/api/v1/dags/test_monitors/tasks/daily_orders/checks/orders_per_day/marks"
ROUTE = "slack:slack_api_default/#data-quality"


@pytest.fixture(scope="module")
def api(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """Airflow's API server app (core API, auth manager, plugins) with two simple-auth-manager users."""
    with api_server(USERS, tmp_path_factory.mktemp("auth"), "") as client:
        yield client


def login(client: TestClient, user: str) -> dict[str, str]:
    return auth.login(client, USERS, user)


def flag_the_drop(db: Database, orders: str, fake_slack: FakeSlack) -> str:  # noqa: F811
    """Two real runs: the second flags Monday 2026-06-15's drop and alerts; returns the alert's ts."""
    conf = {"conn_id": db.conn_id, "table": orders}
    assert run_dag(dags.dag, conf=conf, logical_date=on_day(DROP_DAY - 1.1)).task_states == {"daily_orders": "success"}
    drop = run_dag(dags.dag, conf=conf, logical_date=on_day(DROP_DAY + 1.1))
    assert drop.task_states == {"daily_orders": "failed"}
    [alert] = fake_slack.messages("#data-quality")
    return alert.ts


def test_the_plugin_is_registered_by_the_provider_entry_point(api: TestClient) -> None:
    from airflow import plugins_manager

    [info] = [p for p in plugins_manager.get_plugin_info() if p["name"] == "opsflow"]
    source = str(info["source"])  # the distribution and its entry point
    assert source.startswith("airflow-opsflow==") and "airflow_opsflow.plugins.plugin:OpsflowPlugin" in source
    assert [a["url_prefix"] for a in info["fastapi_apps"]] == ["/opsflow"]
    spec = api.get("/opsflow/openapi.json").json()
    path = spec["paths"]["/api/v1/dags/{dag_id}/tasks/{task_id}/checks/{check}/marks"]
    assert sorted(path) == ["delete", "get", "post"]
    assert "by" not in spec["components"]["schemas"]["MarkBody"]["properties"]  # the marker is the user
    assert api.get("/opsflow/docs").status_code == 200


def test_loading_the_plugin_builds_no_app() -> None:
    """Every Airflow process loads plugins (each task's runner too); only the API server reads the app."""
    code = ("import sys, airflow.plugins_manager; before = set(sys.modules); "
            "from airflow_opsflow.plugins.plugin import OpsflowPlugin; OpsflowPlugin(); "
            "new = set(sys.modules) - before; "
            "print(sorted(m for m in new if m.startswith(('fastapi', 'airflow.api_fastapi', "
            "'airflow_opsflow.plugins.api', 'airflow_opsflow.flows', 'airflow_opsflow.connections'))))")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **AIRFLOW_ENV},
                         capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_a_user_marks_a_drop_through_the_api_and_the_next_run_posts_the_resolution_once(
        api: TestClient, db: Database, orders: str, state: StateStore, fake_slack: FakeSlack) -> None:  # noqa: F811
    ts = flag_the_drop(db, orders, fake_slack)
    alice = login(api, "alice")

    done = api.post(MARKS, headers=alice, json={"bucket": "2026-06-15", "note": "Whit Monday"})
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["mark"] == {"bucket": "2026-06-14T22:00:00Z", "segment": [], "mark": "expected",
                            "marked_by": "alice", "marked_at": body["mark"]["marked_at"], "note": "Whit Monday"}
    assert (body["changed"], body["resolved"], body["routes"]) == (True, True, [ROUTE])
    assert body["incident"]["status"] == "resolved" and body["incident"]["incident_id"].endswith("-1")
    assert "marked expected by alice" in body["message"]
    [mark] = MetricRepo(state).marks_of(KEY)
    assert (mark.bucket, mark.marked_by, mark.note) == (datetime(2026, 6, 14, 22, tzinfo=UTC), "alice", "Whit Monday")
    incidents = IncidentRepo(state)
    fp = fingerprint("test_monitors", "daily_orders", "orders_per_day")
    incident = incidents.get(fp)
    assert incident is not None and incident.status == "resolved" and incident.summary["dismissed"]["by"] == "alice"
    assert [(d.transition, d.status) for d in incidents.pending([fp])] == [("resolved", "pending")]
    assert resolutions(fake_slack, ts) == []  # delivered by the task's next run, not by the API

    # Who marks is the token's user, never a field of the request.
    forged = api.post(MARKS, headers=alice, json={"bucket": "2026-06-15", "by": "mallory"})
    assert forged.status_code == 422 and "by" in forged.text
    again = api.post(MARKS, headers=alice, json={"bucket": "2026-06-15"})
    assert again.status_code == 200 and again.json()["changed"] is False
    assert "already marked expected by alice" in again.json()["message"]

    listed = api.get(MARKS, headers=login(api, "victor"))  # a viewer may read the marks
    assert listed.status_code == 200
    assert [(m["bucket"], m["marked_by"], m["note"]) for m in listed.json()["marks"]] == [
        ("2026-06-14T22:00:00Z", "alice", "Whit Monday")]

    conf = {"conn_id": db.conn_id, "table": orders}
    tuesday = run_dag(dags.dag, conf=conf, logical_date=on_day(DROP_DAY + 2.1))
    assert tuesday.task_states == {"daily_orders": "success"}
    [resolution] = resolutions(fake_slack, ts)
    assert "orders_per_day" in resolution and incidents.pending([fp]) == []
    posted = len(fake_slack.messages("#data-quality"))
    rerun = run_dag(dags.dag, conf=conf, logical_date=on_day(DROP_DAY + 2.1),
                    run_after=on_day(DROP_DAY + 2.1) + timedelta(minutes=1))
    assert rerun.task_states == {"daily_orders": "success"}
    assert len(resolutions(fake_slack, ts)) == 1 and len(fake_slack.messages("#data-quality")) == posted

    removed = api.delete(MARKS, headers=alice, params={"bucket": "2026-06-15"})
    assert removed.status_code == 200 and removed.json()["mark"]["marked_by"] == "alice"
    assert api.get(MARKS, headers=alice).json() == {"marks": []}
    after = incidents.get(fp)
    assert after is not None and after.status == "resolved"  # taking a mark back reopens nothing by itself


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_who_may_do_what_and_what_errors_say(api: TestClient, db: Database, orders: str, state: StateStore,  # noqa: F811
                                             fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch) -> None:
    flag_the_drop(db, orders, fake_slack)
    alice, victor = login(api, "alice"), login(api, "victor")
    point = {"bucket": "2026-06-15"}

    assert api.post(MARKS, json=point).status_code == 401
    assert api.get(MARKS).status_code == 401
    assert api.post(MARKS, json=point, headers={"Authorization": "Bearer not-a-jwt"}).status_code == 403
    assert api.post(MARKS, json=point, headers=victor).status_code == 403  # a viewer may not mark
    assert api.delete(MARKS, params=point, headers=victor).status_code == 403
    assert MetricRepo(state).marks_of(KEY) == []

    unknown = api.post(MARKS, json={"bucket": "2026-07-01"}, headers=alice)
    assert unknown.status_code == 404
    assert unknown.json()["detail"] == (
        "dag 'test_monitors', task 'daily_orders', check 'orders_per_day': no stored bucket starts at "
        "'2026-07-01'; the nearest flagged buckets (starts, UTC): 2026-06-14T22:00:00+00:00")
    check = api.post(MARKS.replace("orders_per_day", "orders_per_week"), json=point, headers=alice)
    assert check.status_code == 404 and "check 'orders_per_week': no metric history is stored" in check.text
    bad = api.post(MARKS, json={"bucket": "15.06.2026"}, headers=alice)
    assert bad.status_code == 422 and "field 'bucket': '15.06.2026' is not a date" in bad.json()["detail"]
    segment = api.delete(MARKS, params={**point, "segment": "DE"}, headers=alice)
    assert segment.status_code == 422 and "field 'segment': 'DE' is not NAME=VALUE" in segment.json()["detail"]
    normal = api.post(MARKS, json={"bucket": "2026-06-12"}, headers=alice)  # a Friday the detector found normal
    assert normal.status_code == 409 and "was not flagged" in normal.json()["detail"]
    nothing = api.delete(MARKS, params=point, headers=alice)
    assert nothing.status_code == 200 and nothing.json()["mark"] is None
    assert "nothing removed" in nothing.json()["message"]

    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", "no_such_conn")
    missing = api.get(MARKS, headers=victor)
    assert missing.status_code == 503 and "'no_such_conn'" in missing.json()["detail"]
    monkeypatch.delenv("AIRFLOW__OPSFLOW__STATE_CONN_ID")
    unset = api.post(MARKS, json=point, headers=alice)
    assert unset.status_code == 503 and "[opsflow] state_conn_id" in unset.json()["detail"]
    assert api.get(MARKS).status_code == 401  # authentication comes first, whatever the store
