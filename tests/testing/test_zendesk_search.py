"""FakeZendesk's search, incremental exports and list paging through zenpy and ZendeskHook.

zenpy builds the query from keywords (``external_id="x"`` -> ``external_id:x``, ``status_less_than="closed"``
-> ``status<closed``, a list -> ``tags:"a" tags:"b"``, ``minus=`` -> ``-term``), follows ``next_page`` and
ends its results quietly when Zendesk refuses to page past 1,000 (422 ``invalid``). Its incremental generator
follows ``after_url`` until ``end_of_stream`` and keeps ``after_cursor`` for the next poll.
"""

from __future__ import annotations

import time
from datetime import timedelta

from airflow.providers.zendesk.hooks.zendesk import ZendeskHook
from airflow_opsflow_testing.zendesk_server import FakeZendesk
from zenpy import Zenpy
from zenpy.lib.api_objects import Comment, Organization, Ticket, User


def client(fake: FakeZendesk) -> Zenpy:
    return fake.client(disable_cache=True, timeout=5)


def ids(results: object) -> list[int]:
    return [r.id for r in results]  # type: ignore[attr-defined]


def seed(fake: FakeZendesk) -> None:
    now = fake.store.now()
    fake.add_ticket("orders: freshness", tags=["opsflow", "orders"], external_id="opsflow:a",
                    created=now - timedelta(days=3))  # 1
    fake.add_ticket("orders: volume", tags=["opsflow", "orders"], external_id="opsflow:a", status="closed",
                    priority="high", created=now - timedelta(days=10))  # 2
    fake.add_ticket("payments: nulls", tags=["opsflow", "payments"], external_id="opsflow:b", status="pending",
                    priority="urgent")  # 3
    fake.add_ticket("unrelated", tags=["billing"], status="new", comment="customer asks about an invoice")  # 4


def test_query_subset(fake_zendesk: FakeZendesk) -> None:
    seed(fake_zendesk)
    zd = client(fake_zendesk)
    assert ids(zd.search(type="ticket", external_id="opsflow:a", status_less_than="closed")) == [1]
    assert ids(zd.search(type="ticket", external_id="opsflow:a")) == [1, 2]
    assert ids(zd.search(type="ticket", tags=["orders", "payments"])) == [1, 2, 3]  # same key: any value
    assert ids(zd.search(type="ticket", tags="opsflow", minus="tags:orders")) == [3]
    assert ids(zd.search("invoice", type="ticket")) == [4]  # free text reads the comments too
    assert ids(zd.search(type="ticket", status="new", priority_greater_than="normal")) == []
    assert ids(zd.search(type="ticket", priority_greater_than="normal")) == [2, 3]
    assert ids(zd.search(type="ticket", created_greater_than=fake_zendesk.store.now() - timedelta(days=5))) \
        == [1, 3, 4]
    assert ids(zd.search("type:ticket created>2days")) == [3, 4]  # relative: created in the last 2 days
    assert ids(zd.search("type:ticket tags:opsflow order_by:priority sort:desc")) == [3, 2, 1]
    assert ids(zd.search(type="ticket", subject="orders*")) == [1, 2]
    assert zd.search.count(type="ticket", tags="opsflow") == 3


def test_users_and_organizations_are_searchable(fake_zendesk: FakeZendesk) -> None:
    acme = fake_zendesk.add_organization("Acme", external_id="crm:acme", tags=["gold"])
    fake_zendesk.add_user("Ann", "ann@example.com", external_id="crm:ann", organization_id=acme.id)
    zd = client(fake_zendesk)
    assert [u.name for u in zd.search(type="user", email="ann@example.com")] == ["Ann"]
    assert [o.name for o in zd.search(type="organization", external_id="crm:acme")] == ["Acme"]
    mixed = list(zd.search("acme"))
    assert [type(r).__name__ for r in mixed] == ["Organization"]


def test_search_lags_behind_writes(fake_zendesk: FakeZendesk) -> None:
    seed(fake_zendesk)
    fake_zendesk.search_delay(30)
    zd = client(fake_zendesk)
    new = zd.tickets.create(Ticket(subject="orders: duplicates", external_id="opsflow:c", tags=["opsflow"],
                                   comment=Comment(body="12 duplicate keys"))).ticket
    zd.tickets.update(Ticket(id=1, status="solved"))
    assert ids(zd.search(type="ticket", external_id="opsflow:c")) == []  # not indexed yet
    stale = list(zd.search(type="ticket", external_id="opsflow:a", status_less_than="closed"))
    assert [(t.id, t.status) for t in stale] == [(1, "open")]  # matched and returned in its old state
    assert zd.tickets(id=new.id).external_id == "opsflow:c"  # reads by id are fresh
    assert zd.tickets(id=1).status == "solved"
    fake_zendesk.search_delay(0)
    assert ids(zd.search(type="ticket", external_id="opsflow:c")) == [new.id]
    assert [(t.id, t.status) for t in zd.search(type="ticket", external_id="opsflow:a", status="solved")] \
        == [(1, "solved")]
    fake_zendesk.search_delay(0.3)
    zd.tickets.update(Ticket(id=3, tags=["opsflow", "payments", "escalated"]))
    assert ids(zd.search(type="ticket", tags="escalated")) == []
    time.sleep(0.4)
    assert ids(zd.search(type="ticket", tags="escalated")) == [3]


def test_search_pages_and_stops_at_1000_results(fake_zendesk: FakeZendesk) -> None:
    for n in range(1005):
        fake_zendesk.add_ticket(f"bulk {n}", tags=["bulk"])
    zd = client(fake_zendesk)
    results = zd.search(type="ticket", tags="bulk")
    assert len(results) == 1005  # zenpy's len() is the reported count
    assert len(list(results)) == 1000  # ...but Zendesk serves no result past the 1,000th
    pages = fake_zendesk.calls("search")
    assert [r.status for r in pages] == [200] * 10 + [422]
    assert pages[1].query["page"] == ["2"] and pages[1].query["per_page"] == ["100"]


def test_hook_search_with_status(fake_zendesk: FakeZendesk, zendesk_conn: str) -> None:
    seed(fake_zendesk)
    hook = ZendeskHook(zendesk_conn_id=zendesk_conn)
    assert ids(hook.search_tickets(external_id="opsflow:a", status_less_than="closed")) == [1]
    assert ids(hook.search_tickets(tags="opsflow", sort_by="created_at", sort_order="asc")) == [2, 1, 3]


def test_incremental_ticket_export_by_cursor(fake_zendesk: FakeZendesk) -> None:
    seed(fake_zendesk)
    zd = client(fake_zendesk)
    export = zd.tickets.incremental(start_time=0, per_page=2)
    assert ids(export) == [1, 2, 3, 4]
    assert export.end_of_stream is True
    assert [r.query.get("cursor") is not None for r in fake_zendesk.calls("incremental_tickets")] == [False, True]
    cursor = export.after_cursor
    assert ids(zd.tickets.incremental(cursor=cursor)) == []  # nothing new: the cursor stays usable
    zd.tickets.update(Ticket(id=3, status="open"))
    create = zd.tickets.create(Ticket(subject="later", comment=Comment(body="b"))).ticket
    assert ids(zd.tickets.incremental(cursor=cursor)) == [3, create.id]  # each changed ticket once, in order
    later = int(fake_zendesk.store.now().timestamp()) + 3600
    assert ids(zd.tickets.incremental(start_time=later)) == []


def test_incremental_user_and_organization_exports(fake_zendesk: FakeZendesk) -> None:
    zd = client(fake_zendesk)
    start = int(fake_zendesk.store.now().timestamp())
    fake_zendesk.add_organization("Acme", external_id="crm:acme")
    fake_zendesk.add_user("Ann", "ann@example.com")
    assert [u.name for u in zd.users.incremental(start_time=start)] == ["opsflow bot", "Ann"]
    orgs = zd.organizations.incremental(start_time=start)
    assert [o.name for o in orgs] == ["Acme"] and orgs.end_of_stream is True


def test_cursor_pagination_on_lists(fake_zendesk: FakeZendesk) -> None:
    for n in range(150):
        fake_zendesk.add_ticket(f"t{n}")
    zd = client(fake_zendesk)
    assert len(list(zd.tickets())) == 150
    listed = fake_zendesk.calls("list_tickets")
    assert listed[0].query == {"page[size]": ["100"]} and "page[after]" in listed[1].query
    session = zd.tickets.session  # the client's authenticated session, for the raw JSON
    first = session.get(f"{fake_zendesk.url}/api/v2/tickets.json?page[size]=2").json()
    assert [t["id"] for t in first["tickets"]] == [1, 2] and first["meta"]["has_more"] is True
    second = session.get(first["links"]["next"]).json()
    assert [t["id"] for t in second["tickets"]] == [3, 4]
    back = session.get(second["links"]["prev"]).json()
    assert [t["id"] for t in back["tickets"]] == [1, 2]
    last = session.get(f"{fake_zendesk.url}/api/v2/tickets.json?page[size]=100&page[after]="
                       f"{second['meta']['after_cursor']}").json()
    assert len(last["tickets"]) == 100 and last["meta"]["has_more"] is True
    too_big = session.get(f"{fake_zendesk.url}/api/v2/tickets.json?page[size]=101")
    assert too_big.status_code == 400 and too_big.json()["error"] == "InvalidPaginationParameter"
    offset = session.get(f"{fake_zendesk.url}/api/v2/tickets.json?per_page=50&page=3").json()
    assert offset["count"] == 150 and offset["next_page"] is None and "page=2&" in offset["previous_page"]


def test_organization_and_user_lists_page_by_cursor(fake_zendesk: FakeZendesk) -> None:
    for n in range(120):
        fake_zendesk.add_organization(f"org {n}")
    zd = client(fake_zendesk)
    assert len(list(zd.organizations())) == 120
    zd.users.create(User(name="Bob", email="bob@example.com"))
    assert [u.name for u in zd.users()] == ["opsflow bot", "Bob"]
    assert zd.organizations(id=fake_zendesk.organizations[0].id).name == "org 0"
    assert isinstance(zd.organizations.create(Organization(name="New org")), Organization)
