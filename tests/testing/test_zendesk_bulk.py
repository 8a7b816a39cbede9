"""FakeZendesk's organizations, users and bulk jobs through zenpy.

zenpy sends ``users.create_or_update([...])`` to ``users/create_or_update_many``, ``organizations.create([...])``
to ``create_many``, ``update([...])`` / ``update_by_external_id([...])`` to ``update_many`` and returns the
``JobStatus``; ``client.job_status(id=...)`` polls it (``results`` as ``JobStatusResult`` objects). zenpy has no
call for ``organizations/create_or_update_many`` - nor has Zendesk: the fake answers 404 ``InvalidEndpoint``.
"""

from __future__ import annotations

import json
import time

import pytest
from airflow_opsflow_testing.zendesk_server import FakeZendesk
from zenpy import Zenpy
from zenpy.lib.api_objects import JobStatus, Organization, User
from zenpy.lib.exception import APIException, RatelimitBudgetExceeded


def client(fake: FakeZendesk, **kwargs: object) -> Zenpy:
    return fake.client(disable_cache=True, timeout=5, **kwargs)  # type: ignore[arg-type]


def results(job: JobStatus) -> list[dict]:
    return [{k: v for k, v in vars(r).items() if not k.startswith("_") and k != "api" and v is not None}
            for r in job.results]


def test_create_or_update_many_users_runs_as_a_job(fake_zendesk: FakeZendesk) -> None:
    fake_zendesk.define_field("user", "plan", "dropdown", options=["free", "pro"])
    existing = fake_zendesk.add_user("Ann Old", "ann@example.com")
    zd = client(fake_zendesk)
    job = zd.users.create_or_update([
        User(name="Ann Lee", email="ANN@example.com", user_fields={"plan": "pro"}),
        User(name="Bob", email="bob@example.com", external_id="crm:bob"),
        User(name="Carl", email="carl@example.com", user_fields={"plan": "platinum"})])
    assert (job.status, job.total, job.progress, job.results) == ("queued", 3, None, None)
    assert fake_zendesk.calls("create_or_update_many_users")[-1].path == "/api/v2/users/create_or_update_many.json"
    assert fake_zendesk.user(email="bob@example.com") is None  # nothing applied while queued
    working = zd.job_status(id=job.id)
    assert (working.status, working.progress) == ("working", 2)
    done = zd.job_status(id=job.id)
    assert (done.status, done.progress) == ("completed", 3) and done.message.startswith("Completed at ")
    bob = fake_zendesk.user(external_id="crm:bob")
    assert bob is not None
    assert results(done) == [
        {"id": existing.id, "index": 0, "email": "ANN@example.com", "action": "update", "status": "Updated",
         "success": True},
        {"id": bob.id, "index": 1, "email": "bob@example.com", "external_id": "crm:bob", "action": "create",
         "status": "Created", "success": True},
        {"index": 2, "email": "carl@example.com", "status": "Failed", "success": False, "error": "RecordInvalid",
         "details": "plan: platinum is not a valid option"}]
    ann = fake_zendesk.user(id=existing.id)
    assert ann is not None and (ann.name, ann.fields) == ("Ann Lee", {"plan": "pro"})
    assert fake_zendesk.user(email="carl@example.com") is None


def test_organizations_by_external_id(fake_zendesk: FakeZendesk) -> None:
    fake_zendesk.define_field("organization", "seats", "integer")
    fake_zendesk.define_field("organization", "renewal", "date")
    zd = client(fake_zendesk)
    created = zd.organizations.create([Organization(name="Acme", external_id="crm:acme",
                                                    organization_fields={"seats": "12", "unknown": 1}),
                                       Organization(name="Globex", external_id="crm:globex")])
    fake_zendesk.run_jobs()
    job = fake_zendesk.job(created.id)
    assert [(r["index"], r["status"], r["external_id"]) for r in job["results"]] == [
        (0, "Created", "crm:acme"), (1, "Created", "crm:globex")]
    acme = fake_zendesk.organization(external_id="CRM:ACME")  # external ids compare case-insensitively
    assert acme is not None and acme.fields == {"seats": 12}  # undefined field keys are dropped
    assert zd.organizations(id=acme.id).organization_fields == {"seats": 12}
    updated = zd.organizations.update_by_external_id([
        Organization(external_id="crm:acme", organization_fields={"seats": 40, "renewal": "2026-01-31"}),
        Organization(external_id="crm:globex", organization_fields={"seats": "many"}),
        Organization(external_id="crm:nobody", notes="x")])
    sent = fake_zendesk.calls("update_many_organizations")[-1]
    assert sent.query == {"external_ids": ["crm:acme,crm:globex,crm:nobody"]}
    fake_zendesk.run_jobs()
    outcome = fake_zendesk.job(updated.id)["results"]
    assert [(r["status"], r.get("error"), r.get("details")) for r in outcome] == [
        ("Updated", None, None), ("Failed", "RecordInvalid", "seats: is not a number"),
        ("Failed", "RecordNotFound", "Not found")]
    acme = fake_zendesk.organization(external_id="crm:acme")
    assert acme is not None and acme.fields == {"seats": 40, "renewal": "2026-01-31"}
    by_ids = zd.organizations.update([Organization(id=acme.id, tags=["gold"])])
    fake_zendesk.run_jobs()
    assert fake_zendesk.job(by_ids.id)["results"][0]["status"] == "Updated"
    assert [o.name for o in zd.organizations(external_ids=["crm:acme", "crm:globex"])] == ["Acme", "Globex"]
    assert [o.id for o in zd.organizations(ids=[acme.id])] == [acme.id]


def test_single_create_or_update_and_duplicate_names(fake_zendesk: FakeZendesk) -> None:
    zd = client(fake_zendesk)
    first = zd.organizations.create_or_update(Organization(name="Initech", external_id="crm:initech"))
    again = zd.organizations.create_or_update(Organization(name="Initech", external_id="crm:initech", notes="n"))
    assert first.id == again.id and again.notes == "n"
    assert [r.status for r in fake_zendesk.calls("create_or_update_organization")] == [201, 200]
    with pytest.raises(APIException) as caught:  # a name alone never matches: it creates, and the name is taken
        zd.organizations.create_or_update(Organization(name="initech"))
    assert json.loads(str(caught.value))["details"] == {
        "name": [{"description": "Name: initech has already been taken", "error": "DuplicateValue"}]}
    with pytest.raises(APIException) as caught:
        zd.organizations._post(f"{fake_zendesk.url}/api/v2/organizations/create_or_update_many.json",
                               payload={"organizations": [{"name": "x"}]})
    assert caught.value.response.status_code == 404
    assert json.loads(str(caught.value)) == {"error": "InvalidEndpoint", "description": "Not found"}


def test_bulk_requests_take_at_most_100_records(fake_zendesk: FakeZendesk) -> None:
    zd = client(fake_zendesk)
    with pytest.raises(APIException) as caught:
        zd.users.create_or_update([User(name=f"u{n}", email=f"u{n}@example.com") for n in range(101)])
    assert caught.value.response.status_code == 400 and json.loads(str(caught.value))["error"] == "TooManyValues"


def test_job_statuses_progress_by_time(fake_zendesk: FakeZendesk) -> None:
    fake_zendesk.job_pace(polls=None, seconds=0.2)
    zd = client(fake_zendesk)
    job = zd.users.create_or_update([User(name="Dee", email="dee@example.com")])
    time.sleep(0.5)
    assert fake_zendesk.user(email="dee@example.com") is not None  # applied without being polled
    assert zd.job_status(id=job.id).status == "completed"
    assert [j.id for j in zd.job_status()["job_statuses"]] == [job.id]


def test_at_most_30_queued_jobs(fake_zendesk: FakeZendesk) -> None:
    fake_zendesk.job_pace(polls=None, seconds=0.4)  # every job completes 0.8 s after it was queued
    zd = client(fake_zendesk, ratelimit_budget=1)
    for n in range(30):
        zd.organizations.create([Organization(name=f"org {n}")])
    with pytest.raises(RatelimitBudgetExceeded):  # zenpy would wait out Retry-After, beyond its budget
        zd.organizations.create([Organization(name="one too many")])
    assert fake_zendesk.calls("create_many_organizations")[-1].status == 429
    started = time.monotonic()
    accepted = client(fake_zendesk).organizations.create([Organization(name="one too many")])
    assert accepted.status == "queued" and 0.9 < time.monotonic() - started < 3  # waited Retry-After: 1
    assert [r.status for r in fake_zendesk.calls("create_many_organizations")[-2:]] == [429, 200]


def test_job_limit_answer(fake_zendesk: FakeZendesk) -> None:
    fake_zendesk.job_pace(max_active=1, retry_after=7)
    zd = client(fake_zendesk)
    zd.users.create_or_update([User(name="a", email="a@example.com")])
    response = zd.users.session.post(f"{fake_zendesk.url}/api/v2/users/create_many.json",
                                     json={"users": [{"name": "b"}]})
    assert response.status_code == 429 and response.headers["Retry-After"] == "7"
    assert response.json()["error"] == "TooManyJobs"


def test_destroy_many_deletes_organizations_and_deactivates_users_as_a_job(fake_zendesk: FakeZendesk) -> None:
    orgs = [fake_zendesk.add_organization(f"Org {i}", external_id=f"org-{i}") for i in range(3)]
    ann = fake_zendesk.add_user("Ann", "ann@example.com", external_id="u-ann")
    zd = client(fake_zendesk)
    job = zd.organizations.delete([Organization(id=orgs[0].id), Organization(id=orgs[1].id)])
    assert fake_zendesk.calls("destroy_many_organizations")[-1].method == "DELETE"
    while job.status not in ("completed", "failed"):
        job = zd.job_status(id=job.id)
    assert [r["status"] for r in results(job)] == ["Deleted", "Deleted"]
    assert [o.name for o in fake_zendesk.organizations] == ["Org 2"]
    job = zd.users.delete([User(id=ann.id)])
    while job.status not in ("completed", "failed"):
        job = zd.job_status(id=job.id)
    assert fake_zendesk.user(id=ann.id).active is False  # users are soft-deleted
