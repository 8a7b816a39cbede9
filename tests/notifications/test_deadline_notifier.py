"""IncidentNotifier as a deadline alert callback (Airflow 3.1+), run the way the triggerer runs it: Airflow's
own CallbackTrigger builds the notifier from the callback's kwargs and the context the scheduler's
``Deadline.handle_miss`` adds, and awaits it on a real event loop; alerts go to the fake Slack (real
slack_sdk), incidents to a real state database. The whole path through a real scheduler and triggerer is in
test_deadline_scheduler.py."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from datetime import timedelta
from typing import Any

import pendulum
import pytest
from airflow_opsflow_testing.slack_server import FakeSlack

from airflow_opsflow.notifiers.incident import IncidentNotifier
from tests.conftest import Database
from tests.dags.deadline import ALERTS

pytestmark = pytest.mark.usefixtures("slack_webhook_conn")
NOTIFIER = "airflow_opsflow.notifiers.incident.IncidentNotifier"
ROUTES = "tests.dags.deadline.ALERTS"
SAFETY_S = 20  # only a blocked event loop waits this long


@pytest.fixture
def state(sqlite_db: Database, monkeypatch: pytest.MonkeyPatch) -> Database:
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", sqlite_db.conn_id)
    return sqlite_db


def context(clock: pendulum.DateTime, run_id: str, *, ended: pendulum.DateTime | None = None) -> dict[str, Any]:
    """What ``Deadline.handle_miss`` (Airflow 3.3) puts in the callback's kwargs: the DAG run as the REST API
    shows it (JSON), the deadline (its time a datetime)."""
    queued = clock - timedelta(minutes=20)
    return {
        "dag_run": {"dag_run_id": run_id, "dag_id": "nightly_load", "queued_at": queued.isoformat(),
                    "start_date": (queued + timedelta(seconds=3)).isoformat(),
                    "end_date": ended.isoformat() if ended else None,
                    "state": "success" if ended else "running", "run_type": "scheduled", "conf": {}},
        "deadline": {"id": "0199a6c2-5b4e-7c1a-9d3e-000000000001", "deadline_time": queued + timedelta(minutes=15)},
    }


def trigger_events(kwargs: dict[str, Any]) -> list[dict[str, Any]]:
    from airflow.triggers.callback import CallbackTrigger

    trigger = CallbackTrigger(callback_path=NOTIFIER, callback_kwargs=kwargs)

    async def run() -> list[dict[str, Any]]:
        return [e.payload async for e in trigger.run()]

    return asyncio.run(run())


def incidents(db: Database) -> list[dict[str, Any]]:
    cur = db.conn.execute("SELECT dag_id, task_id, check_name, status, occurrences, summary FROM opsflow_incidents")
    return [dict(zip([c[0] for c in cur.description], row, strict=True)) for row in cur.fetchall()]


def test_a_missed_deadline_opens_one_incident_and_alerts_once(state: Database, fake_slack: FakeSlack,
                                                              clock: pendulum.DateTime) -> None:
    kwargs = {"alerts": ROUTES, "description": "{{ dag_run.dag_id }} feeds the 07:00 finance report"}
    events = trigger_events({**kwargs, "context": context(clock, "scheduled__1")})
    assert [e["state"] for e in events] == ["running", "success"]

    [alert] = fake_slack.messages("#alerts")
    due = (clock - timedelta(minutes=5)).strftime("%Y-%m-%d %H:%M:%S UTC")
    assert (alert.text or "").startswith(":rotating_light: ERROR: deadline_missed (nightly_load / dag run): "
                                         f"DAG run scheduled__1 missed its deadline {due} by ")
    # by how much: from the deadline to when the notifier ran (the run is still going)
    assert re.search(r"still running \d+[dhms].* after the deadline, queued at ", str(alert.blocks))
    assert "nightly_load feeds the 07:00 finance report" in str(alert.blocks)  # templated from the context

    [incident] = incidents(state)
    assert {k: incident[k] for k in ("dag_id", "task_id", "check_name", "status", "occurrences")} == {
        "dag_id": "nightly_load", "task_id": "dag run", "check_name": "deadline_missed", "status": "open",
        "occurrences": 1}

    # the next run misses it too: the same incident, quiet
    events = trigger_events({**kwargs, "context": context(clock + timedelta(days=1), "scheduled__2")})
    assert [e["state"] for e in events] == ["running", "success"]
    assert len(fake_slack.messages("#alerts")) == 1
    [incident] = incidents(state)
    assert (incident["status"], incident["occurrences"]) == ("open", 2)


def test_a_run_that_finished_late_says_by_how_much(state: Database, fake_slack: FakeSlack,
                                                   clock: pendulum.DateTime) -> None:
    """The scheduler noticed the deadline after the run ended (late): the miss is measured to its end."""
    ended = clock - timedelta(minutes=5) + timedelta(minutes=7)  # the deadline + 7 minutes
    events = trigger_events({"alerts": ROUTES, "name": "loaded_by_0700", "severity": "warn",
                             "context": context(clock, "scheduled__1", ended=ended)})
    assert [e["state"] for e in events] == ["running", "success"]
    [alert] = fake_slack.messages("#alerts")
    assert (alert.text or "").startswith(":warning: WARN: loaded_by_0700 (nightly_load / dag run): DAG run "
                                         "scheduled__1 missed its deadline ")
    assert (alert.text or "").endswith(" by 7m")
    assert f"finished (success) at {ended.strftime('%Y-%m-%d %H:%M:%S UTC')}, 7m after the deadline" in str(
        alert.blocks)
    [incident] = incidents(state)
    assert (incident["check_name"], json.loads(incident["summary"])["severity"]) == ("loaded_by_0700", "warn")


def test_the_notifier_never_blocks_the_triggerers_event_loop(state: Database, fake_slack: FakeSlack,
                                                             clock: pendulum.DateTime,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Slack answers the webhook only once another coroutine ran on the loop awaiting the notifier: the state
    database and HTTP work run in a worker thread (a blocked loop would time out the wait, failing the test)."""
    post = fake_slack.workspace.webhook_post
    posting = threading.Event()
    loop_ran = threading.Event()
    answered_after_the_loop_ran: list[bool] = []

    def held_post(*args: Any, **kwargs: Any) -> Any:
        posting.set()
        answered_after_the_loop_ran.append(loop_ran.wait(SAFETY_S))
        return post(*args, **kwargs)

    monkeypatch.setattr(fake_slack.workspace, "webhook_post", held_post)
    notifier = IncidentNotifier(alerts=ALERTS, context=context(clock, "scheduled__1"))  # type: ignore[arg-type]

    async def main() -> None:
        done = asyncio.Event()

        async def watcher() -> None:
            while not done.is_set():
                if posting.is_set():
                    loop_ran.set()
                await asyncio.sleep(0.01)

        watch = asyncio.create_task(watcher())
        await notifier  # as CallbackTrigger awaits it
        done.set()
        await watch

    asyncio.run(main())
    assert answered_after_the_loop_ran == [True]
    assert len(fake_slack.messages("#alerts")) == 1


def test_routes_that_cannot_be_imported_fail_the_callback_naming_the_dag(state: Database, fake_slack: FakeSlack,
                                                                         clock: pendulum.DateTime) -> None:
    events = trigger_events({"alerts": "tests.dags.no_such_module.ALERTS", "context": context(clock, "r1")})
    assert [e["state"] for e in events] == ["running", "failed"]
    assert ("dag 'nightly_load', deadline 'deadline_missed': cannot import the alert routes "
            "'tests.dags.no_such_module.ALERTS'") in events[-1]["body"]
    assert fake_slack.messages() == []


def test_route_objects_cannot_be_deadline_kwargs_but_a_path_can() -> None:
    """Airflow serializes the callback's kwargs with the DAG: route objects fail there, a dotted path does not."""
    from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference
    from airflow.sdk.serde import serialize

    def alert(routes: Any) -> DeadlineAlert:
        return DeadlineAlert(reference=DeadlineReference.DAGRUN_QUEUED_AT, interval=timedelta(minutes=15),
                             callback=AsyncCallback(IncidentNotifier, kwargs={"alerts": routes}))

    assert serialize(alert(ROUTES).callback)["__data__"] == {"path": NOTIFIER, "kwargs": {"alerts": ROUTES}}
    with pytest.raises(TypeError, match="SlackAlert"):
        serialize(alert(ALERTS).callback)
