"""TicketSensor, TicketRouteTrigger, TicketOperator and the ticket link with HubSpot, Salesforce and Zendesk:
real DAG runs against the fakes (a check opens the ticket, the sensor waits until someone closes it, poking
and deferred), the trigger on its own event loop, and the parameters."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from airflow_opsflow_testing.dag_runner import run_dag
from airflow_opsflow_testing.hubspot_server import FakeHubSpot
from airflow_opsflow_testing.salesforce_server import FakeSalesforce
from airflow_opsflow_testing.sample_data import seed
from airflow_opsflow_testing.zendesk_server import FakeZendesk

from airflow_opsflow.alerts.hubspot import HubSpotTicket
from airflow_opsflow.alerts.jira import JiraTicket
from airflow_opsflow.alerts.salesforce import SalesforceCase
from airflow_opsflow.alerts.zendesk import ZendeskTicket
from airflow_opsflow.flows.deliver_alerts import deliver_pending, routes_for
from airflow_opsflow.incidents.lifecycle import Observation, Policy, fingerprint
from airflow_opsflow.incidents.repo import IncidentRepo, Subject
from airflow_opsflow.incidents.tickets import TicketRoute
from airflow_opsflow.links import JiraTicketLink, TicketLink, ticket_url
from airflow_opsflow.sensors.ticket import TicketSensor
from airflow_opsflow.state.store import StateStore
from airflow_opsflow.triggers.ticket import TicketRouteTrigger, parse_tickets, route_spec, ticket_keys
from tests.conftest import Database
from tests.helpers import DAGS, ActAfter, load_module

dags = load_module(DAGS / "ticket_sensor_backends.py")
NO_CONTEXT = cast(Any, {})  # poke() reads the context only for upstream_task_id
SYSTEMS = ["hubspot", "salesforce", "zendesk"]


@dataclass
class System:
    """One fake ticketing system as a person sees it: who opens, closes and deletes tickets (through the
    system's own client library), and what counts as the sensor's read."""

    name: str
    route: TicketRoute
    batch_reads: Callable[[], list[list[str]]]  # the ids each batched read asked for (what the sensor sends)
    single_reads: Callable[[], int]  # requests reading one ticket by id
    ids: Callable[[], list[str]]  # the tickets in the fake
    open: Callable[[], str]  # open a ticket, its id
    close: Callable[[str], None]  # close one
    gone: Callable[[], str]  # the id of a ticket that was opened and deleted (Zendesk's fake: never opened)

    def reads(self) -> int:
        return len(self.batch_reads())


def _hubspot(fake: FakeHubSpot) -> System:
    fake.define_property("tickets", "opsflow_fingerprint")
    client = fake.client()
    return System("hubspot", HubSpotTicket(),
                  lambda: [[i["id"] for i in r.body["inputs"]] for r in fake.calls("batch/read", "tickets")],
                  lambda: len(fake.calls("get", "tickets")),
                  lambda: [t.id for t in fake.objects("tickets")],
                  lambda: hubspot_client_ticket(fake, stage="1"),
                  lambda i: client.crm.tickets.basic_api.update(i, {"properties": {"hs_pipeline_stage": "4"}}),
                  lambda: _archived(client, hubspot_client_ticket(fake, stage="1")))


def _salesforce(fake: FakeSalesforce) -> System:
    client = fake.client()

    def batch_reads() -> list[list[str]]:
        soql = [r.query["q"][0] for r in fake.calls("query")]
        return [re.findall(r"'([^']+)'", q) for q in soql if " FROM Case WHERE Id IN (" in q]

    def single_reads() -> int:  # GET sobjects/Case/<Id>, not the Case's describe
        return sum(not r.path.endswith("/describe")
                   for r in fake.calls(method="GET", path_prefix="/services/data/v59.0/sobjects/Case/"))

    return System("salesforce", SalesforceCase(), batch_reads, single_reads,
                  lambda: [str(r["Id"]) for r in fake.records("Case")],
                  lambda: str(client.Case.create({"Subject": "seeded", "Status": "New"})["id"]),
                  lambda i: client.Case.update(i, {"Status": "Closed"}),
                  lambda: _deleted(client, str(client.Case.create({"Subject": "gone", "Status": "New"})["id"])))


def _zendesk(fake: FakeZendesk) -> System:
    from zenpy.lib.api_objects import Ticket as ZTicket

    client = fake.client()
    return System("zendesk", ZendeskTicket(),
                  lambda: [r.query["ids"][0].split(",") for r in fake.calls("show_many_tickets")],
                  lambda: len(fake.calls("show_ticket")),
                  lambda: [str(t.id) for t in fake.tickets],
                  lambda: str(fake.add_ticket(status="open").id),
                  lambda i: client.tickets.update(ZTicket(id=int(i), status="solved")),
                  lambda: str(max(t.id for t in fake.tickets) + 100 if fake.tickets else 100))


def _archived(client: Any, ticket_id: str) -> str:
    client.crm.tickets.basic_api.archive(ticket_id)
    return ticket_id


def _deleted(client: Any, case_id: str) -> str:
    client.Case.delete(case_id)
    return case_id


@pytest.fixture(params=SYSTEMS)
def system(request: pytest.FixtureRequest) -> System:
    """Each fake system in turn, with its connection (``hubspot_default``, ``salesforce_default``...)."""
    name = request.param
    fake = request.getfixturevalue(f"fake_{name}")
    request.getfixturevalue(f"{name}_conn")
    return {"hubspot": _hubspot, "salesforce": _salesforce, "zendesk": _zendesk}[name](fake)


@pytest.fixture
def fake_requests(system: System, request: pytest.FixtureRequest) -> Callable[[], int]:
    """How many requests the system's fake has been sent so far."""
    fake = request.getfixturevalue(f"fake_{system.name}")
    return lambda: len(fake.requests)


@pytest.fixture
def payments(sqlite_db: Database, monkeypatch: pytest.MonkeyPatch) -> Database:
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", sqlite_db.conn_id)
    seed(sqlite_db.conn, problems=True)
    return sqlite_db




def _close_after_reads(system: System, reads: int) -> ActAfter:
    """Close every ticket once the system answered ``reads`` batched reads: the sensor saw them open that many
    times."""
    def close() -> None:
        for ticket_id in system.ids():
            system.close(ticket_id)

    return ActAfter(system.reads, reads, close, f"{system.name} ticket read(s)")


def _output(capfd: pytest.CaptureFixture[str]) -> str:
    out = capfd.readouterr()
    return out.out + out.err


def _events(trigger: TicketRouteTrigger) -> list[dict[str, Any]]:
    async def collect() -> list[dict[str, Any]]:
        return [e.payload async for e in trigger.run()]
    return asyncio.run(collect())


# --- real DAG runs --------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("mode", ["poke", "reschedule", "deferred"])
def test_waits_until_the_checks_ticket_is_closed(system: System, payments: Database, mode: str) -> None:
    closer = _close_after_reads(system, 2)  # once the sensor saw the ticket open twice
    run = run_dag(dags.wait_dags[(system.name, mode)], conf={"conn_id": payments.conn_id})
    closer.join()
    assert run.task_states == {"check_payments": "failed", "wait": "success"}
    [ticket_id] = system.ids()
    [record] = run.xcom("check_payments", key="tickets")
    assert record["system"] == system.name and record["id"] == ticket_id and record["key"] and record["url"]
    assert run.xcom("check_payments", key="_link_TicketLink") == record["url"]  # the UI's "Ticket(s)" link
    assert run.xcom("wait")["tickets"] == {record["key"]: "closed"}
    # it waited: it read again after the reads that saw the ticket open; batched reads by id, and no other read
    assert system.reads() > closer.seen >= 2 and set(map(tuple, system.batch_reads())) == {(ticket_id,)}
    assert system.single_reads() == (1 if system.name == "salesforce" else 0)  # the check reads its Case back
    if mode == "deferred":  # and its trigger polled until the ticket was closed
        assert run.xcom("wait")["polls"] >= 2


@pytest.mark.usefixtures("airflow_db", "zendesk_conn")
def test_ticket_operator_files_an_explicit_zendesk_ticket_and_the_sensor_waits_for_it(
        fake_zendesk: FakeZendesk, sqlite_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", sqlite_db.conn_id)
    zendesk = _zendesk(fake_zendesk)
    closer = _close_after_reads(zendesk, 2)  # once the sensor saw the ticket open twice
    run = run_dag(dags.explicit_dag)
    closer.join()
    assert run.task_states == {"explicit": "success", "wait": "success"}
    assert zendesk.reads() > closer.seen >= 2  # it waited: it read again after seeing the ticket open
    [ticket] = fake_zendesk.tickets
    assert (ticket.subject or "").startswith("Reconcile payments of ") and ticket.priority == "normal"  # warn
    url = f"{fake_zendesk.url.rstrip('/')}/agent/tickets/{ticket.id}"
    assert run.xcom("explicit", key="tickets") == [{"key": f"Zendesk #{ticket.id}", "url": url,
                                                    "system": "zendesk", "id": str(ticket.id)}]
    assert run.xcom("explicit", key="_link_TicketLink") == url
    assert run.xcom("wait") == {"tickets": {f"Zendesk #{ticket.id}": "closed"}}
    assert fake_zendesk.ticket(ticket.id).status == "solved"

    run_dag(dags.explicit_dag)  # the same summary: no second ticket, and the sensor sees it closed at once
    assert len(fake_zendesk.tickets) == 1


@pytest.mark.usefixtures("airflow_db")
def test_an_unknown_ticket_fails_fast_and_is_named(system: System, capfd: pytest.CaptureFixture[str]) -> None:
    run = run_dag(dags.failure_dags[system.name], conf={"tickets": "404404, 505505"})
    assert run.task_states == {"poke": "failed", "deferred": "failed"}
    assert run.tries == {"poke": 1, "deferred": 1}  # no retries for a ticket that does not exist
    # at the first poke (not the 30 s timeout): one read each (none in Salesforce, which knows from their form
    # that these name no Case), the deferred task never deferred
    assert system.batch_reads() == ([] if system.name == "salesforce" else [["404404", "505505"]] * 2)
    name = {"hubspot": "HubSpot", "salesforce": "Salesforce", "zendesk": "Zendesk"}[system.name]
    assert _output(capfd).count(f"no such {name} ticket(s): 404404, 505505") >= 2  # both tasks say why


@pytest.mark.usefixtures("airflow_db")
def test_a_poke_over_several_tickets_costs_one_batched_read(system: System, fake_requests: Callable[[], int]) -> None:
    ids = [system.open() for _ in range(5)]
    before = fake_requests()
    closer = _close_after_reads(system, 2)  # closed once the sensors saw them open twice
    run = run_dag(dags.failure_dags[system.name], conf={"tickets": ", ".join(ids)})
    closer.join()
    assert run.task_states == {"poke": "success", "deferred": "success"}
    reads = system.batch_reads()
    assert len(reads) > closer.seen >= 2  # read again once closed
    # each poke and each of the trigger's polls asked once for all five tickets; none read a ticket on its own
    assert len(reads) >= 3 and all(sorted(r) == sorted(ids) for r in reads)
    assert system.single_reads() == 0
    # besides the reads, at most two requests per backend opened (the poking task's, the deferred task's and
    # its trigger's): HubSpot's pipelines and account, a Salesforce login; len(ids): the closes
    assert fake_requests() - before - len(ids) - len(reads) <= 6
    backend = system.route.backend()
    today = {t.key: "closed" for i in ids if (t := backend.read({"id": i}, "")) is not None and t.closed}
    assert len(today) == 5
    assert run.xcom("poke") == {"tickets": today} and run.xcom("deferred")["tickets"] == today


def test_a_deleted_ticket_among_several_fails_the_poke_and_is_named(system: System) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    ids = [system.open() for _ in range(3)]
    gone = system.gone()
    sensor = TicketSensor(task_id="t", tickets=[*ids, gone], ticket=system.route)
    name = {"hubspot": "HubSpot", "salesforce": "Salesforce", "zendesk": "Zendesk"}[system.name]
    with pytest.raises(AirflowFailException, match=rf"task 't': no such {name} ticket\(s\): {gone} \(or the"):
        sensor.poke(NO_CONTEXT)
    assert system.batch_reads() == [[*ids, gone]] and system.single_reads() == 0


def test_read_many_gives_what_read_gives(system: System) -> None:
    from airflow_opsflow.incidents.tickets import ref_key

    ids = [system.open() for _ in range(4)]
    system.close(ids[1])
    system.close(ids[3])
    refs: list[dict[str, Any]] = [{"id": i, "key": f"k{n}"} for n, i in enumerate(ids)]
    refs += [{"id": system.gone(), "key": "gone"}, {"id": ids[1], "key": "again"},  # the same ticket twice
             {"id": "abc", "key": "bad"}, {"id": ids[2]}]  # no key: answered under its id
    if system.name == "salesforce":
        refs.append({"id": ids[0][:15], "key": "short"})  # a 15-character Id reads the same Case
    backend = system.route.backend()
    many = backend.read_many(refs)
    assert len(system.batch_reads()) == 1
    one = {ref_key(r): backend.read(r, "") for r in refs}
    assert set(many) == set(one) == {str(r.get("key") or r["id"]) for r in refs}

    def seen(t: Any) -> Any:
        return t and (t.id, t.key, t.url, t.closed, t.closed_at, t.ours, t.wont_fix, t.reopenable)

    assert {k: seen(t) for k, t in many.items()} == {k: seen(t) for k, t in one.items()}
    assert many["gone"] is None and many["bad"] is None and many["k1"].closed and not many["k0"].closed


@pytest.mark.usefixtures("airflow_db", "zendesk_conn")
def test_times_out_when_the_ticket_stays_open(fake_zendesk: FakeZendesk, capfd: pytest.CaptureFixture[str]) -> None:
    ticket = fake_zendesk.add_ticket(status="pending")
    run = run_dag(dags.timeout_dag, conf={"tickets": str(ticket.id)})
    assert run.task_states == {"never": "failed"}
    # the sensor's poke, then the trigger's polls (at least one) until its deadline, the sensor's 3 s timeout:
    # at most one a poke_interval (1 s), plus one cut to the deadline (and slack for the clocks)
    polls = len(fake_zendesk.calls("show_many_tickets")) - 1
    assert 1 <= polls <= 6
    assert f"Zendesk #{ticket.id} (open) did not become done within 3 s ({polls} polls)" in _output(capfd)


# --- the sensor's poke, without a DAG -----------------------------------------------------------------------


def test_poke_reads_each_ticket_by_id(system: System, tmp_path: Path) -> None:
    # two incidents' tickets, filed by the route itself
    repo = IncidentRepo(StateStore(lambda: sqlite3.connect(tmp_path / "state.db"), "sqlite"))
    subjects = {fingerprint("d", "t", c): Subject(fingerprint("d", "t", c), "d", "t", c) for c in ("a", "b")}
    repo.record([(s, Observation(True, "error", "run1", {"status": "fail"})) for s in subjects.values()],
                Policy(), routes_for([system.route]))
    assert deliver_pending(repo, [system.route], subjects, {}).failed == []
    first, second = system.ids()
    sensor = TicketSensor(task_id="t", tickets=[first, second], ticket=system.route)
    assert not sensor.poke(NO_CONTEXT).is_done
    system.close(first)
    assert not sensor.poke(NO_CONTEXT).is_done  # all of them must be closed
    assert TicketSensor(task_id="t", tickets=first, ticket=system.route, status_category="not done"
                        ).poke(NO_CONTEXT).is_done is False
    system.close(second)
    result = sensor.poke(NO_CONTEXT)
    assert result.is_done and set(result.xcom_value["tickets"].values()) == {"closed"}
    assert TicketSensor(task_id="t", tickets=second, ticket=system.route, status_category="not done"
                        ).poke(NO_CONTEXT).is_done is False


@pytest.mark.usefixtures("airflow_db")
def test_a_jira_ticket_route_uses_the_jira_path(fake_jira: Any, jira_conn: str) -> None:
    key = fake_jira.add_issue(status="Done").key
    sensor = TicketSensor(task_id="t", tickets=[{"key": key, "url": "u", "system": "jira", "id": "10001"}],
                          ticket=JiraTicket(project="OPS", conn_id=jira_conn))
    assert sensor.jira_conn_id == jira_conn and sensor.system == "jira"
    assert sensor.poke(NO_CONTEXT).xcom_value == {"tickets": {key: "Done"}}  # Jira's status name: the JQL path
    assert fake_jira.calls(name="search")


# --- the trigger on its own ---------------------------------------------------------------------------------


@pytest.fixture
def zendesk(fake_zendesk: FakeZendesk, zendesk_conn: str) -> Iterator[FakeZendesk]:
    yield fake_zendesk


def _trigger(route: TicketRoute, tickets: list[dict[str, str]], **kwargs: Any) -> TicketRouteTrigger:
    path, route_kwargs = route_spec(route)
    return TicketRouteTrigger(path, route_kwargs, tickets, **{"poll_interval": 0.1, **kwargs})


def test_trigger_fires_when_closed_and_names_unknown_tickets(zendesk: FakeZendesk) -> None:
    done = zendesk.add_ticket(status="solved")
    open_ = zendesk.add_ticket(status="open")
    [event] = _events(_trigger(ZendeskTicket(), [{"id": str(done.id), "key": "a"}]))
    assert event == {"status": "success", "tickets": {f"Zendesk #{done.id}": "closed"}, "polls": 1}
    [event] = _events(_trigger(ZendeskTicket(), [{"id": str(open_.id), "key": "b"}], status_category="not done"))
    assert event["status"] == "success"
    [event] = _events(_trigger(ZendeskTicket(), [{"id": "999", "key": "Zendesk #999"},
                                                 {"id": str(open_.id), "key": "b"}]))
    assert event["status"] == "error" and event["unknown"] == ["Zendesk #999"]
    assert event["message"].startswith("no such Zendesk ticket(s): Zendesk #999")


def test_a_failed_batch_read_is_sent_again_within_the_poll(fake_hubspot: FakeHubSpot, hubspot_conn: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # A read is harmless to repeat: a 503 is waited out (1 s, recorded rather than slept) and the same poll
    # goes on, so the trigger fires on its first poll.
    waits: list[float] = []
    monkeypatch.setattr(time, "sleep", waits.append)
    hubspot = _hubspot(fake_hubspot)
    record = hubspot_client_ticket(fake_hubspot, stage="4")
    fake_hubspot.fail_next(1, status=503, endpoint="batch/read")
    [event] = _events(_trigger(HubSpotTicket(), [{"id": record, "key": record}]))
    assert event == {"status": "success", "tickets": {f"HubSpot #{record}": "closed"}, "polls": 1}
    assert [r.status for r in fake_hubspot.calls("batch/read", "tickets")] == [503, 200]
    assert hubspot.reads() == 2 and hubspot.single_reads() == 0 and waits == [1.0]


def hubspot_client_ticket(fake: FakeHubSpot, stage: str) -> str:
    created = fake.client().crm.tickets.basic_api.create({"properties": {
        "subject": "seeded", "hs_pipeline": "0", "hs_pipeline_stage": stage}})
    return str(created.id)


def test_refused_credentials_fail_the_poke_and_the_trigger_after_a_few_polls(zendesk: FakeZendesk) -> None:
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    ticket = zendesk.add_ticket(status="open")
    zendesk.expire_credentials()
    with pytest.raises(AirflowException, match="cannot read the Zendesk tickets") as raised:
        TicketSensor(task_id="t", tickets=ticket.id, ticket=ZendeskTicket()).poke(NO_CONTEXT)
    assert not isinstance(raised.value, AirflowFailException)  # the task's retries may see it fixed
    [event] = _events(_trigger(ZendeskTicket(), [{"id": str(ticket.id), "key": "k"}]))
    assert event["status"] == "error" and event["polls"] == 4  # FAILED_POLLS in a row waited out, then given up
    assert event["message"].startswith("cannot read the Zendesk tickets: RuntimeError: Zendesk (zendesk_default)")


def test_trigger_reports_a_missing_connection() -> None:
    [event] = _events(_trigger(ZendeskTicket(conn_id="no_such_zendesk"), [{"id": "1", "key": "1"}]))
    assert event["status"] == "error" and event["polls"] == 0 and "no_such_zendesk" in event["message"]


@pytest.mark.parametrize("route", [
    HubSpotTicket(conn_id="hs", pipeline="Billing", associate={"companies": "domain"}, reopen_window_days=3,
                  name="hubspot-billing"),
    SalesforceCase(conn_id="sf", fingerprint_field="Marker__c", fields={"Origin": "Web"}),
    ZendeskTicket(conn_id="zd", tags=("payments", "ops"), custom_fields={360001: "x"}, mask_columns=("email",)),
])
def test_trigger_serializes_round_trip_and_rebuilds_the_route(route: TicketRoute) -> None:
    trigger = _trigger(route, [{"id": "12", "key": "#12"}], status_category="not done", deadline=1_700_000_000.5)
    path, kwargs = trigger.serialize()
    assert path == "airflow_opsflow.triggers.ticket.TicketRouteTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert TicketRouteTrigger(**kwargs).serialize() == (path, kwargs)
    rebuilt = type(route)(**kwargs["route_kwargs"])
    assert rebuilt.name == route.name and rebuilt.where() == route.where()
    assert {k: v for k, v in vars(rebuilt).items() if k != "custom_fields"} == {
        k: v for k, v in vars(route).items() if k != "custom_fields"}


# --- parameters, references, the link -----------------------------------------------------------------------


@pytest.mark.parametrize("value,system,refs", [
    ("123, 456,123", "zendesk", ["123", "456"]),
    (123, "zendesk", ["123"]),
    (["#7", 8], "zendesk", ["7", "8"]),
    ("[{'key': 'Case 00001001', 'url': 'u', 'system': 'salesforce', 'id': '500A'}]", "salesforce", ["500A"]),
    ([{"key": "OPS-1", "url": "https://j/browse/OPS-1", "system": "jira", "id": "10001"},
      {"key": "Zendesk #5", "url": "https://z/agent/tickets/5", "system": "zendesk", "id": "5"}], "zendesk", ["5"]),
    ("", "hubspot", []),
])
def test_ticket_references(value: Any, system: str, refs: list[str]) -> None:
    assert [r.id for r in parse_tickets(value, system)[0]] == refs


def test_jira_keys_come_from_new_and_old_entries_and_skip_other_systems() -> None:
    pushed = [{"key": "OPS-1", "url": "https://j/browse/OPS-1", "system": "jira", "id": "10001"},
              {"key": "OPS-2", "url": "https://j/browse/OPS-2"},  # pushed before entries named their system
              {"key": "HubSpot #9", "url": "https://app.hubspot.com/contacts/1/record/0-5/9", "system": "hubspot",
               "id": "9"}]
    assert ticket_keys(pushed) == ["OPS-1", "OPS-2"]
    assert parse_tickets(pushed)[1] == ["HubSpot #9 (HubSpot)"]
    with pytest.raises(ValueError, match=r"no Jira tickets among HubSpot #9 \(HubSpot\): give the sensor ticket="):
        ticket_keys(pushed[2:])


@pytest.mark.parametrize("kwargs,error", [
    ({"tickets": "1", "ticket": ZendeskTicket(), "status_category": "new"}, "needs Jira's status categories"),
    ({"tickets": "1", "ticket": ZendeskTicket(), "jira_conn_id": "j"}, "give either ticket or jira_conn_id"),
    ({"tickets": "1", "ticket": "zendesk"}, "ticket must be a ticket route"),
    ({"tickets": "12/../users", "ticket": HubSpotTicket()}, "not a ticket id: '12/../users'"),
    ({"tickets": [{"key": "Case 1", "system": "salesforce"}], "ticket": SalesforceCase()}, "no ticket id in"),
    ({"tickets": [{"key": "Zendesk #1", "system": "zendesk", "id": "1"}]}, "no Jira tickets among Zendesk #1"),
])
def test_bad_parameters_fail_at_parse_time(kwargs: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error.replace("(", r"\(").replace(")", r"\)")):
        TicketSensor(task_id="t", **kwargs)


def test_the_link_searches_jira_and_opens_the_first_ticket_elsewhere() -> None:
    assert JiraTicketLink is TicketLink and TicketLink.name == "Ticket(s)"
    jira = [{"key": f"OPS-{i}", "url": f"https://j/browse/OPS-{i}", "system": "jira", "id": str(i)} for i in (1, 2)]
    zendesk = [{"key": f"Zendesk #{i}", "url": f"https://z/agent/tickets/{i}", "system": "zendesk", "id": str(i)}
               for i in (3, 4)]
    assert ticket_url(jira) == "https://j/issues/?jql=key%20in%20%28OPS-1%2C%20OPS-2%29%20ORDER%20BY%20created%20DESC"
    assert ticket_url(zendesk) == "https://z/agent/tickets/3"
    assert ticket_url(zendesk[:1]) == "https://z/agent/tickets/3"
    assert ticket_url([*jira, *zendesk]) == "https://j/browse/OPS-1"  # several systems: the first ticket
    other_site = {**jira[1], "url": "https://k/browse/OPS-2"}
    assert ticket_url([jira[0], other_site]) == "https://j/browse/OPS-1"  # one search cannot span two sites
    assert ticket_url([]) == ""
