"""FakeZendesk's Search Export API and ``tickets/update_many`` jobs, through zenpy where zenpy has the call.

zenpy's ``search_export(type=..., cursor_pagination=n)`` sends ``filter[type]`` and ``page[size]`` and follows
``links.next`` while ``meta.has_more``; ``tickets.update([Ticket(id=..., ...)])`` sends the batch form of
``update_many`` (``{"tickets": [...]}``) and returns the ``JobStatus``. zenpy has no call for the bulk form
(``?ids=`` with one ``{"ticket": {...}}`` for all), which is sent here through zenpy's own session.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from airflow_opsflow_testing.zendesk_server import FakeZendesk
from zenpy import Zenpy
from zenpy.lib.api_objects import JobStatus, Ticket
from zenpy.lib.exception import RatelimitBudgetExceeded


def client(fake: FakeZendesk, **kwargs: Any) -> Zenpy:
    return fake.client(disable_cache=True, timeout=5, **kwargs)


def finished(zd: Zenpy, job: JobStatus) -> list[dict[str, Any]]:
    while job.status not in ("completed", "failed"):
        job = zd.job_status(id=job.id)
    return [{k: v for k, v in vars(r).items() if not k.startswith("_") and k != "api" and v is not None}
            for r in job.results]


def seed(fake: FakeZendesk) -> tuple[int, list[int]]:
    """Organization Acme with 5 open tickets (created a day apart, oldest last by id), a solved and a closed
    one; Globex with one open ticket. Returns Acme's id and its open tickets' ids, oldest first."""
    acme = fake.add_organization("Acme", external_id="crm:acme")
    globex = fake.add_organization("Globex", external_id="crm:globex")
    now = fake.store.now()
    statuses = ["new", "open", "pending", "hold", "open"]
    opened = [fake.add_ticket(f"acme {n}", status=s, organization_id=acme.id, tags=["billing"],
                              created=now - timedelta(days=10 - n)).id for n, s in enumerate(statuses)]
    fake.add_ticket("acme solved", status="solved", organization_id=acme.id)
    fake.add_ticket("acme closed", status="closed", organization_id=acme.id)
    fake.add_ticket("globex open", organization_id=globex.id)
    return acme.id, opened


def test_search_export_pages_by_cursor(fake_zendesk: FakeZendesk) -> None:
    acme, opened = seed(fake_zendesk)
    zd = client(fake_zendesk)
    found = zd.search_export(type="ticket", organization=acme, status_less_than="solved", cursor_pagination=2)
    assert [t.id for t in found] == opened  # every page, in created_at order, solved and closed left out
    calls = fake_zendesk.calls("search_export")
    assert len(calls) == 3 and calls[0].query["filter[type]"] == ["ticket"] and calls[0].query["page[size]"] == ["2"]
    assert "page[after]" not in calls[0].query and calls[1].query["page[after]"]
    last = zd.users.session.get(f"{fake_zendesk.url}{calls[-1].path}", params={
        k: v[-1] for k, v in calls[-1].query.items()}).json()
    assert last["meta"] == {"has_more": False, "after_cursor": last["meta"]["after_cursor"], "before_cursor": None}
    assert last["links"] == {"next": None, "prev": None} and last["results"][0]["result_type"] == "ticket"
    assert last["facets"] is None


def test_search_export_refusals_and_its_own_limit(fake_zendesk: FakeZendesk) -> None:
    acme, _ = seed(fake_zendesk)
    session = client(fake_zendesk).users.session
    url = f"{fake_zendesk.url}/api/v2/search/export.json"
    missing = session.get(url, params={"query": f"organization:{acme}"})
    assert missing.status_code == 400 and missing.json()["error"]["title"] == "Invalid attribute"
    other_type = session.get(url, params={"query": "type:user ann", "filter[type]": "ticket"})
    assert other_type.status_code == 400 and "type keyword" in other_type.json()["error"]["message"]
    too_big = session.get(url, params={"query": "status:open", "filter[type]": "ticket", "page[size]": 1001})
    assert too_big.status_code == 400
    first = session.get(url, params={"query": f"organization:{acme}", "filter[type]": "ticket", "page[size]": 1})
    fake_zendesk.advance(hours=2)  # the cursor lives an hour
    expired = session.get(url, params={"query": f"organization:{acme}", "filter[type]": "ticket", "page[size]": 1,
                                       "page[after]": first.json()["meta"]["after_cursor"]})
    assert expired.status_code == 400 and "expired" in expired.json()["error"]["message"]

    fake_zendesk.set_rate_limit(700, 60.0, search_export_limit=2)  # Zendesk: 100 a minute, on top of the rest
    limited = client(fake_zendesk, ratelimit_budget=1)
    assert list(limited.search_export(type="ticket", organization=acme, cursor_pagination=100))
    assert list(limited.search_export(type="ticket", organization=acme, cursor_pagination=100))
    with pytest.raises(RatelimitBudgetExceeded):  # zenpy would wait out Retry-After, beyond its budget
        list(limited.search_export(type="ticket", organization=acme, cursor_pagination=100))
    assert fake_zendesk.calls("search_export")[-1].status == 429
    assert limited.search(type="ticket", organization=acme).count == 7  # the other endpoints are not held


def test_update_many_tickets_runs_as_a_job(fake_zendesk: FakeZendesk) -> None:
    _, opened = seed(fake_zendesk)
    zd = client(fake_zendesk)
    job = zd.tickets.update([Ticket(id=opened[0], priority="high", additional_tags=["vip"]),
                             Ticket(id=opened[1], priority="urgent")])
    assert fake_zendesk.calls("update_many_tickets")[-1].path == "/api/v2/tickets/update_many.json"
    assert fake_zendesk.ticket(opened[0]).priority is None  # nothing applied while queued
    assert finished(zd, job) == [
        {"id": opened[0], "index": 0, "action": "update", "status": "Updated", "success": True},
        {"id": opened[1], "index": 1, "action": "update", "status": "Updated", "success": True}]
    first = fake_zendesk.ticket(opened[0])
    assert (first.priority, first.tags) == ("high", ["billing", "vip"])  # additional_tags keeps the others
    assert fake_zendesk.ticket(opened[1]).priority == "urgent"


def test_bulk_update_by_ids_and_closed_or_missing_tickets(fake_zendesk: FakeZendesk) -> None:
    acme, opened = seed(fake_zendesk)
    closed = fake_zendesk.add_ticket("closed", status="closed", organization_id=acme, tags=["old"]).id
    zd = client(fake_zendesk)
    answer = zd.users.session.put(f"{fake_zendesk.url}/api/v2/tickets/update_many.json",
                                  params={"ids": f"{opened[2]},{closed},999999"},
                                  json={"ticket": {"priority": "low", "additional_tags": ["vip"]}})
    assert answer.status_code == 200 and answer.json()["job_status"]["job_type"] == "bulk_update_tickets"
    job = zd.job_status(id=answer.json()["job_status"]["id"])
    assert finished(zd, job) == [
        {"id": opened[2], "index": 0, "action": "update", "status": "Updated", "success": True},
        {"id": closed, "index": 1, "action": "update", "status": "Failed", "success": False,
         "error": "RecordInvalid", "details": "Status: closed prevents ticket update"},
        {"id": 999999, "index": 2, "action": "update", "status": "Failed", "success": False,
         "error": "RecordNotFound", "details": "Not found"}]
    assert fake_zendesk.ticket(closed).tags == ["old"] and fake_zendesk.ticket(opened[2]).priority == "low"

    too_many = zd.users.session.put(f"{fake_zendesk.url}/api/v2/tickets/update_many.json",
                                    params={"ids": ",".join(str(n) for n in range(1, 102))},
                                    json={"ticket": {"priority": "low"}})
    assert too_many.status_code == 400 and too_many.json()["error"] == "TooManyValues"
    no_body = zd.users.session.put(f"{fake_zendesk.url}/api/v2/tickets/update_many.json", params={"ids": "1"},
                                   json={})
    assert no_body.status_code == 400 and no_body.json()["error"] == "ParameterMissing"
