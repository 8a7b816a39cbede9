"""TicketSensor and TicketStatusTrigger against the fake Jira, Cloud and Server: real DAG runs, and the
trigger on its own event loop."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Callable
from typing import Any, cast

import pytest
from airflow_opsflow_testing.dag_runner import run_dag
from airflow_opsflow_testing.jira_server import FakeJira

from airflow_opsflow.sensors.ticket import TicketSensor
from airflow_opsflow.triggers.ticket import TicketStatusTrigger, ticket_keys
from tests.helpers import DAGS, SAFETY_S, ActAfter, load_module

pytestmark = pytest.mark.usefixtures("airflow_db")
dags = load_module(DAGS / "ticket_sensors.py")
BOTH = pytest.mark.parametrize("fake_jira", ["cloud", "server"], indirect=True)
NO_CONTEXT = cast(Any, {})  # poke() reads the context only for upstream_task_id




def _searches(jira: FakeJira, agent: str = "") -> int:
    """The searches the fake answered (from a client whose User-Agent has ``agent``)."""
    return sum(agent in r.headers.get("User-Agent", r.headers.get("user-agent", ""))
               for r in jira.calls(name="search"))


def _searched_by(jira: FakeJira, agent: str) -> bool:
    return _searches(jira, agent) > 0


def _after_searches(jira: FakeJira, action: Callable[[], object], searches: int, agent: str = "") -> ActAfter:
    """``action`` once the fake answered ``searches`` searches (from a client whose User-Agent has ``agent``):
    the sensor saw the tickets unchanged that many times."""
    return ActAfter(lambda: _searches(jira, agent), searches, action, f"search(es) from {agent or 'any client'!r}")


def _resolve(jira: FakeJira, *keys: str) -> Callable[[], None]:
    client = jira.client()  # the real jira library, through the REST API, as a person closing the ticket

    def resolve() -> None:
        for key in keys:
            client.transition_issue(key, "Done")
    return resolve


def _output(capfd: pytest.CaptureFixture[str]) -> str:
    out = capfd.readouterr()
    return out.out + out.err


# --- real DAG runs --------------------------------------------------------------------------------------------


@BOTH
@pytest.mark.parametrize("dag_name", ["poke_dag", "reschedule_dag", "deferred_dag"])
def test_waits_until_the_tickets_are_done(fake_jira: FakeJira, jira_conn: str, dag_name: str) -> None:
    done = fake_jira.add_issue(status="Done").key
    open_ = fake_jira.add_issue(status="In Progress").key
    resolver = _after_searches(fake_jira, _resolve(fake_jira, open_), searches=2)  # once it saw it open twice
    mark = fake_jira.mark()
    dag = getattr(dags, dag_name)
    run = run_dag(dag, conf={"tickets": f"{done}, {open_.lower()}"})
    resolver.join()
    (task_id,) = dag.task_ids
    assert run.task_states == {task_id: "success"}
    assert run.xcom(task_id)["tickets"] == {done: "Done", open_: "Done"}
    # it waited: it searched again after the searches that saw the ticket open, each time one batched search
    # for both tickets on the deployment's endpoint
    searches = fake_jira.calls(name="search", since=mark)
    assert len(searches) > resolver.seen >= 2
    assert {r.path for r in searches} == {"/rest/api/2/search/jql" if fake_jira.cloud else "/rest/api/2/search"}
    assert all(r.body["jql"] == f"key in ({done}, {open_})" and r.body["fields"] == ["status"] for r in searches)
    if dag_name == "deferred_dag":  # it deferred, and its trigger polled until the ticket was done
        assert run.xcom(task_id)["polls"] >= 2
        assert _searched_by(fake_jira, "python-httpx")


@BOTH
def test_times_out_when_the_ticket_never_resolves(fake_jira: FakeJira, jira_conn: str,
                                                  capfd: pytest.CaptureFixture[str]) -> None:
    key = fake_jira.add_issue().key
    run = run_dag(dags.timeout_dag, conf={"tickets": key})
    assert run.task_states == {"never": "failed"}
    # the sensor's poke, then the trigger's polls (at least one) until its deadline, the sensor's 3 s timeout:
    # at most one a poke_interval (1 s), plus one cut to the deadline (and slack for the clocks)
    polls = _searches(fake_jira, "python-httpx")
    assert _searches(fake_jira) == polls + 1 and 1 <= polls <= 6
    assert f"{key} (To Do) did not become done within 3 s ({polls} polls)" in _output(capfd)


@BOTH
@pytest.mark.parametrize("problem", ["expired token", "unknown ticket"])
def test_bad_credentials_or_unknown_tickets_fail_fast(fake_jira: FakeJira, jira_conn: str, problem: str,
                                                      capfd: pytest.CaptureFixture[str]) -> None:
    key = fake_jira.add_issue().key
    if problem == "expired token":
        fake_jira.expire_token()
        conf, expected = {"tickets": key}, "(HTTP 401): the API token (Cloud) or personal access token"
    else:
        conf, expected = {"tickets": f"OPS-404,{key},FIN-77"}, "no such Jira ticket(s): OPS-404, FIN-77"
    run = run_dag(dags.failures_dag, conf=conf)
    assert run.task_states == {"poke": "failed", "deferred": "failed"}
    assert _output(capfd).count(expected) >= 2  # both tasks say why (not the 30 s timeout)
    # at the first poke (not at the timeout): each task opened one client (the token is refused there) and
    # searched for all its tickets once (strict JQL then names the unknown ones); the deferred one never deferred
    assert len(fake_jira.calls(name="serverInfo")) == 2 and not _searched_by(fake_jira, "python-httpx")
    everything = [r for r in fake_jira.calls(name="search") if r.body["jql"] == f"key in (OPS-404, {key}, FIN-77)"]
    assert len(everything) == (0 if problem == "expired token" else 2)


@BOTH
def test_token_expiring_while_deferred_fails_the_task(fake_jira: FakeJira, jira_conn: str,
                                                      capfd: pytest.CaptureFixture[str]) -> None:
    key = fake_jira.add_issue().key
    expirer = _after_searches(fake_jira, fake_jira.expire_token, searches=1, agent="python-httpx")  # it polls
    run = run_dag(dags.deferred_dag, conf={"tickets": key})
    expirer.join()
    assert run.task_states == {"deferred": "failed"}
    searches = fake_jira.calls(name="search")
    [refused] = [r for r in searches if r.status == 401]
    assert "python-httpx" in str(refused.headers)  # the trigger's poll, not the sensor's first poke
    assert searches[-1] is refused  # and the trigger gave up there: no poll after it
    assert "Jira refused the credentials of connection 'opsflow_jira_default' (HTTP 401)" in _output(capfd)


@BOTH
def test_waits_for_the_tickets_an_upstream_task_pushed(fake_jira: FakeJira, jira_conn: str) -> None:
    a, b = fake_jira.add_issue().key, fake_jira.add_issue().key
    resolver = _after_searches(fake_jira, _resolve(fake_jira, a, b), searches=2)  # once it saw them open twice
    run = run_dag(dags.upstream_dag, conf={"tickets": f"{a},{b}"})
    resolver.join()
    assert _searches(fake_jira) > resolver.seen >= 2
    assert run.task_states == {"check": "success", "wait": "success"}
    assert run.xcom("check", key="tickets")[0] == {"key": a, "url": f"https://jira.example.com/browse/{a}"}
    assert run.xcom("wait")["tickets"] == {a: "Done", b: "Done"}
    assert run.xcom("wait")["polls"] >= 2


def test_no_tickets_succeeds_at_once(fake_jira: FakeJira, jira_conn: str) -> None:
    run = run_dag(dags.upstream_dag, conf={"tickets": ""})  # the check opened no tickets
    assert run.task_states == {"check": "success", "wait": "success"}
    assert run.xcom("wait") == {"tickets": {}}
    assert fake_jira.requests == []  # not even a connection to Jira


# --- the sensor's poke, without a DAG -----------------------------------------------------------------------


@BOTH
def test_status_categories(fake_jira: FakeJira, jira_conn: str) -> None:
    keys = {status: fake_jira.add_issue(status=status).key for status in ("To Do", "In Progress", "Done")}
    reached = {"done": {"Done"}, "not done": {"To Do", "In Progress"}, "new": {"To Do"}, "To Do": {"To Do"},
               "indeterminate": {"In Progress"}, "in_progress": {"In Progress"}}
    for category, statuses in reached.items():
        for status, key in keys.items():
            result = TicketSensor(task_id="t", tickets=[key], status_category=category).poke(NO_CONTEXT)
            assert result.is_done == (status in statuses), (category, status)
    result = TicketSensor(task_id="t", tickets=list(keys.values()), status_category="not done").poke(NO_CONTEXT)
    assert not result.is_done  # all of them must be in the category


@BOTH
def test_many_tickets_are_searched_in_pages(fake_jira: FakeJira, jira_conn: str) -> None:
    keys = [fake_jira.add_issue(status="Done").key for _ in range(5)]
    fake_jira.max_results = 2
    mark = fake_jira.mark()
    result = TicketSensor(task_id="t", tickets=keys).poke(NO_CONTEXT)
    assert result.xcom_value == {"tickets": dict.fromkeys(keys, "Done")}
    [event] = _events(TicketStatusTrigger(jira_conn, keys, poll_interval=0.1))
    assert event == {"status": "success", "tickets": dict.fromkeys(keys, "Done"), "polls": 1}
    assert len(fake_jira.calls(name="search", since=mark)) == 6  # 3 pages each


@BOTH
def test_a_ticket_search_does_not_see_yet_is_read_directly(fake_jira: FakeJira, jira_conn: str) -> None:
    fake_jira.search_delay(60)  # as on Jira Cloud: a new ticket is not searchable at once
    key = fake_jira.client().create_issue(fields={"project": {"key": "OPS"}, "issuetype": {"name": "Task"},
                                                  "summary": "payments: 3 checks failed"}).key
    mark = fake_jira.mark()
    result = TicketSensor(task_id="t", tickets=key, status_category="new").poke(NO_CONTEXT)
    assert result.xcom_value == {"tickets": {key: "To Do"}}
    [event] = _events(TicketStatusTrigger(jira_conn, [key], status_category="new", poll_interval=0.1))
    assert event["status"] == "success" and event["tickets"] == {key: "To Do"}
    assert len(fake_jira.calls("GET", f"/rest/api/2/issue/{key}", since=mark)) == 2  # one each


# --- the trigger on its own ---------------------------------------------------------------------------------


def _events(trigger: TicketStatusTrigger) -> list[dict[str, Any]]:
    async def collect() -> list[dict[str, Any]]:
        return [e.payload async for e in trigger.run()]
    return asyncio.run(collect())


@BOTH
def test_trigger_errors_are_clear(fake_jira: FakeJira, jira_conn: str) -> None:
    key = fake_jira.add_issue().key
    [event] = _events(TicketStatusTrigger(jira_conn, ["OPS-77", key, "FIN-9"], poll_interval=0.1))
    assert event["status"] == "error" and event["unknown"] == ["OPS-77", "FIN-9"]
    assert event["message"].startswith("no such Jira ticket(s): OPS-77, FIN-9")
    fake_jira.expire_token()
    [event] = _events(TicketStatusTrigger(jira_conn, [key], poll_interval=0.1))
    assert event["status"] == "error" and "(HTTP 401)" in event["message"] and event["unknown"] == []


def test_trigger_reports_an_unreachable_jira(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_JIRA_DOWN", json.dumps({
        "conn_type": "opsflow_jira", "host": f"http://127.0.0.1:{port}", "password": "pat",
        "extra": {"deployment": "server"}}))
    [event] = _events(TicketStatusTrigger("jira_down", ["OPS-1"], poll_interval=0.1))
    assert event["status"] == "error" and event["polls"] == 1  # at once: no polling on
    assert event["message"].startswith(f"cannot reach Jira at http://127.0.0.1:{port} (connection 'jira_down'): "
                                       "ConnectError")


@BOTH
def test_trigger_asks_server_info_when_the_deployment_is_auto(fake_jira: FakeJira, jira_conn: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    [(name, value)] = fake_jira.jira_connection(jira_conn).items()
    monkeypatch.setenv(name, json.dumps({**json.loads(value), "extra": {"deployment": "auto"}}))
    key = fake_jira.add_issue(status="Done").key
    [event] = _events(TicketStatusTrigger(jira_conn, [key], poll_interval=0.1))
    assert event == {"status": "success", "tickets": {key: "Done"}, "polls": 1}
    assert len(fake_jira.calls(name="serverInfo")) == 1
    [search] = fake_jira.calls(name="search")
    assert search.path == ("/rest/api/2/search/jql" if fake_jira.cloud else "/rest/api/2/search")


def test_trigger_never_blocks_the_event_loop(fake_jira: FakeJira, jira_conn: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A rate limit (429, Retry-After: 1) and then a search the fake answers only once another coroutine ran
    on the trigger's loop meanwhile: the triggerer's loop stays free through the wait and the slow answer."""
    key = fake_jira.add_issue(status="Done").key
    search = fake_jira.tracker.search
    searching = threading.Event()  # the trigger's second search reached the fake...
    loop_ran = threading.Event()  # ...and a coroutine on the trigger's loop ran after that
    answered_after_the_loop_ran: list[bool] = []

    def held_search(*args: Any, **kwargs: Any) -> Any:
        searching.set()
        # False (after a safety deadline only a blocked loop reaches) fails the test below
        answered_after_the_loop_ran.append(loop_ran.wait(SAFETY_S))
        return search(*args, **kwargs)

    monkeypatch.setattr(fake_jira.tracker, "search", held_search)
    real_sleep = asyncio.sleep  # the watcher's own, unrecorded
    waits: list[float] = []

    async def recorded_sleep(delay: float, result: Any = None) -> Any:  # what the trigger waits, still waited
        waits.append(delay)
        return await real_sleep(delay, result)

    monkeypatch.setattr(asyncio, "sleep", recorded_sleep)
    fake_jira.fail_next("search", status=429, retry_after=1)
    trigger = TicketStatusTrigger(jira_conn, [key], poll_interval=30)  # Retry-After decides, not poll_interval

    async def main() -> tuple[list[dict[str, Any]], int]:
        ticks_in_the_wait = 0
        done = asyncio.Event()

        async def watcher() -> None:
            nonlocal ticks_in_the_wait
            while not done.is_set():
                rate_limited = [r.status for r in fake_jira.calls(name="search")] == [429]
                if rate_limited and not searching.is_set():  # between the 429 and the next search
                    ticks_in_the_wait += 1
                if searching.is_set():
                    loop_ran.set()
                await real_sleep(0.01)

        watch = asyncio.create_task(watcher())
        events = [e.payload async for e in trigger.run()]
        done.set()
        await watch
        return events, ticks_in_the_wait

    events, ticks_in_the_wait = asyncio.run(main())
    assert events == [{"status": "success", "tickets": {key: "Done"}, "polls": 2}]
    assert [r.status for r in fake_jira.calls(name="search")] == [429, 200]
    assert [w for w in waits if w > 0] == [1.0]  # it waited what Retry-After asked, not the 30 s poll interval
    # the watcher's 10 ms sleep ends before the trigger's 1 s one: it runs in the wait if the wait frees the loop
    assert ticks_in_the_wait >= 1
    assert answered_after_the_loop_ran == [True]  # the loop ran while the search was unanswered


def test_trigger_serializes_round_trip() -> None:
    trigger = TicketStatusTrigger("jira", ["OPS-1", "FIN-2"], status_category="not done", poll_interval=5,
                                  deadline=1_700_000_000.5)
    path, kwargs = trigger.serialize()
    assert path == "airflow_opsflow.triggers.ticket.TicketStatusTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert TicketStatusTrigger(**kwargs).serialize() == (path, kwargs)


# --- parameters -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value,keys", [
    ("OPS-1", ["OPS-1"]),
    ("ops-1, FIN-22,OPS-1", ["OPS-1", "FIN-22"]),
    (["OPS-1", "OPS-2"], ["OPS-1", "OPS-2"]),
    ([{"key": "OPS-3", "url": "https://jira/browse/OPS-3"}], ["OPS-3"]),
    ("[{'key': 'OPS-3', 'url': 'https://jira/browse/OPS-3'}]", ["OPS-3"]),  # an XCom rendered by a template
    ('["OPS-4"]', ["OPS-4"]),
    ("", []), ("None", []), (None, []), ([], []),
])
def test_ticket_keys(value: Any, keys: list[str]) -> None:
    assert ticket_keys(value) == keys


@pytest.mark.parametrize("kwargs,error", [
    ({"tickets": "OPS-1) OR project = FIN"}, "not a Jira issue key"),
    ({"tickets": ["OPS"]}, "not a Jira issue key: 'OPS'"),
    ({"tickets": "OPS-1", "upstream_task_id": "check"}, "give either tickets or upstream_task_id"),
    ({}, "give either tickets or upstream_task_id"),
    ({"tickets": "OPS-1", "status_category": "resolved"}, "status_category must be"),
])
def test_bad_parameters_fail_at_parse_time(kwargs: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error.replace("(", r"\(").replace(")", r"\)")):
        TicketSensor(task_id="t", **kwargs)


def test_templated_tickets_are_read_at_run_time() -> None:
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import DAG

    with DAG("t", schedule=None):
        check = PythonOperator(task_id="check", python_callable=list)
        TicketSensor(task_id="a", tickets=["{{ params.first }}", "OPS-2"])
        sensor = TicketSensor(task_id="b", tickets=check.output)
    assert sensor.upstream_task_ids == {"check"}
