"""HubSpot tickets associated with the incident entity's company and contact, through real DAG runs against the
fake HubSpot (incident state on SQLite and PostgreSQL): an entity check of overdue invoices, one ticket per
customer (TicketOperator, group_by="entity"), each linked to the company and/or contact whose ``customer_id``
property is the customer; a customer HubSpot does not know gets a ticket with no association, and no error."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from airflow_opsflow_testing import hubspot_search
from airflow_opsflow_testing.dag_runner import run_dag
from airflow_opsflow_testing.hubspot_server import FakeHubSpot

from airflow_opsflow.alerts.hubspot import TICKET_TO
from tests.conftest import Database
from tests.helpers import DAGS, load_module

pytestmark = pytest.mark.usefixtures("airflow_db")
dags = load_module(DAGS / "hubspot_ticket_associations.py")

# invoice_id, customer_id, amount, status
INVOICES = [(1, "C-01", 120.0, "overdue"), (2, "C-01", 80.0, "overdue"), (3, "C-02", 50.0, "overdue"),
            (4, "C-03", 70.0, "overdue"), (5, "C-04", 30.0, "overdue"), (6, "C-05", 99.0, "paid")]
COMPANY_OF = {"C-01": "acme.com", "C-02": "beta.io", "C-05": "eps.com"}  # C-03 and C-04: no company
CONTACT_OF = {"C-01": "ann@acme.com", "C-03": "carl@gamma.net", "C-05": "eve@eps.com"}  # C-02, C-04: no contact


@pytest.fixture
def hubspot(fake_hubspot: FakeHubSpot, hubspot_conn: str) -> tuple[FakeHubSpot, dict[str, str], dict[str, str]]:
    """Companies and contacts carrying the warehouse's customer id; returns (fake, company ids, contact ids) by
    customer."""
    fake_hubspot.define_property("tickets", "opsflow_fingerprint")
    for object_type in ("companies", "contacts"):
        fake_hubspot.define_property(object_type, "customer_id")
    client = fake_hubspot.client()
    companies = {cid: client.crm.companies.basic_api.create({"properties": {"domain": d, "customer_id": cid}}).id
                 for cid, d in COMPANY_OF.items()}
    contacts = {cid: client.crm.contacts.basic_api.create({"properties": {"email": e, "customer_id": cid}}).id
                for cid, e in CONTACT_OF.items()}
    return fake_hubspot, companies, contacts


@pytest.fixture
def invoices(sqlite_db: Database) -> Database:
    sqlite_db.execute("CREATE TABLE invoices (invoice_id INTEGER, customer_id TEXT, amount REAL, status TEXT)")
    sqlite_db.conn.executemany("INSERT INTO invoices VALUES (?, ?, ?, ?)", INVOICES)
    sqlite_db.conn.commit()
    return sqlite_db


@pytest.fixture
def state(db: Database, monkeypatch: pytest.MonkeyPatch) -> Database:
    """The incident state on ``db`` (SQLite, or PostgreSQL with tables of this test's own)."""
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", db.conn_id)
    if db.name == "postgres":
        prefix = "hs_assoc_"
        monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_TABLE_PREFIX", prefix)
        cur = db.conn.cursor()  # an earlier run's tables (and entity state) would make these incidents old
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename LIKE %s",
                    (f"{prefix}%",))
        for (name,) in cur.fetchall():
            cur.execute(f'DROP TABLE "{name}"')
        db.conn.commit()
        cur.close()
    return db


def _v4(fake: FakeHubSpot, ticket_id: str, to_type: str) -> dict[str, set[int]]:
    """The ticket's associations to ``to_type`` as HubSpot's v4 associations API lists them: id -> type ids."""
    page = fake.client().crm.associations.v4.basic_api.get_page("tickets", ticket_id, to_type)
    return {str(r.to_object_id): {t.type_id for t in r.association_types} for r in page.results}


def test_tickets_are_associated_with_the_entitys_company_and_contact(
        hubspot: tuple[FakeHubSpot, dict[str, str], dict[str, str]], invoices: Database, state: Database) -> None:
    fake, companies, contacts = hubspot
    # HubSpot allows 5 searches a second per account; the lookups' pace is the next test's subject, not this one's
    fake.set_search_rate_limit(100)
    conf = {"conn_id": invoices.conn_id}
    run = run_dag(dags.dag, conf=conf)
    assert run.task_states == {"check_invoices": "failed", "tickets": "success"}  # no association error
    assert run.tries["tickets"] == 1
    tickets = {t.properties["subject"].split("[")[2].split("]")[0]: t.id for t in fake.objects("tickets")}
    assert sorted(tickets) == ["C-01", "C-02", "C-03", "C-04"]  # one per customer with an overdue invoice

    for customer, ticket_id in tickets.items():
        company = {companies[customer]: {TICKET_TO["companies"]}} if customer in companies else {}
        contact = {contacts[customer]: {TICKET_TO["contacts"]}} if customer in contacts else {}
        # the fake's association store, and the v4 API that HubSpot's UI and integrations read
        assert fake.associations("tickets", ticket_id, "companies") == company, customer
        assert fake.associations("tickets", ticket_id, "contacts") == contact, customer
        assert _v4(fake, ticket_id, "companies") == company, customer
        assert _v4(fake, ticket_id, "contacts") == contact, customer
    assert TICKET_TO == {"companies": 339, "contacts": 16}  # HubSpot-defined ticket→company / ticket→contact
    # both directions exist, as on HubSpot: the company and the contact list the ticket
    assert set(fake.associations("companies", companies["C-01"], "tickets")) == {tickets["C-01"]}
    assert set(fake.associations("contacts", contacts["C-01"], "tickets")) == {tickets["C-01"]}
    assert fake.associations("companies", companies["C-05"], "tickets") == {}  # paid: no ticket, no link

    # one company and one contact search per new ticket, none for anything else
    assert len(fake.calls("search", "companies")) == 4 and len(fake.calls("search", "contacts")) == 4
    before = len(fake.requests)
    run = run_dag(dags.dag, conf=conf)  # the same customers overdue: not one request to HubSpot
    assert run.task_states["tickets"] == "success" and len(fake.requests) == before
    if state.name == "postgres":  # the incidents really are there: four tickets created
        assert state.scalar("SELECT COUNT(*) FROM hs_assoc_deliveries WHERE status = 'sent'") == 4


class SearchClock:
    """The fake HubSpot's clock for its search rate limit (and search index): it stands still while the DAG runs
    and moves only when the code under test sleeps, so a burst of searches is a burst on any machine, and a
    client that waits before searching again gets its slot."""

    def __init__(self) -> None:
        self.now = time.monotonic()  # records already indexed stay visible
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_a_burst_of_new_tickets_waits_out_hubspots_search_limit(
        hubspot: tuple[FakeHubSpot, dict[str, str], dict[str, str]], invoices: Database,
        monkeypatch: pytest.MonkeyPatch, sqlite_db: Database) -> None:
    fake, companies, contacts = hubspot
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", sqlite_db.conn_id)
    clock = SearchClock()
    monkeypatch.setattr(hubspot_search, "time", SimpleNamespace(monotonic=clock.monotonic))
    monkeypatch.setattr(time, "sleep", clock.sleep)
    run = run_dag(dags.dag, conf={"conn_id": invoices.conn_id})
    # 4 new tickets: 1 ticket search, then a company and a contact search for each (9 searches at HubSpot's 5/s)
    assert run.task_states["tickets"] == "success" and run.tries["tickets"] == 1
    tickets = {t.properties["subject"].split("[")[2].split("]")[0]: t.id for t in fake.objects("tickets")}
    assert sorted(tickets) == ["C-01", "C-02", "C-03", "C-04"]
    assert {c: set(fake.associations("tickets", t, "companies")) for c, t in tickets.items()} == {
        c: ({companies[c]} if c in companies else set()) for c in tickets}
    assert {c: set(fake.associations("tickets", t, "contacts")) for c, t in tickets.items()} == {
        c: ({contacts[c]} if c in contacts else set()) for c in tickets}
