"""FakeZendesk's tickets through the real clients: zenpy (``fake.client()``) and Airflow's ZendeskHook.

zenpy (2.0.x) sends only the attributes an object had set or changed (``Ticket.comment = Comment(...)`` adds
a comment on update), turns a create/update answer into a ``TicketAudit`` and raises ``APIException`` (body
in ``str(e)``) or ``RecordNotFoundException`` for 404s. It caches tickets for 30 s, so reads after a write
use ``disable_cache=True``.
"""

from __future__ import annotations

import json

import pytest
from airflow.providers.zendesk.hooks.zendesk import ZendeskHook
from airflow_opsflow_testing.zendesk_server import FakeZendesk
from zenpy import Zenpy
from zenpy.lib.api_objects import Comment, Ticket
from zenpy.lib.exception import APIException, RecordNotFoundException


def client(fake: FakeZendesk, **kwargs: object) -> Zenpy:
    return fake.client(disable_cache=True, timeout=5, **kwargs)  # type: ignore[arg-type]


def error(caught: pytest.ExceptionInfo[APIException]) -> dict:
    return json.loads(str(caught.value))


def create(zd: Zenpy, subject: str = "payments: 3 checks failed", **fields: object) -> Ticket:
    fields.setdefault("comment", Comment(body="details of the failing checks"))
    return zd.tickets.create(Ticket(subject=subject, **fields)).ticket


@pytest.mark.parametrize("auth", ["token", "password", "oauth"])
def test_every_credential_kind_authenticates(fake_zendesk: FakeZendesk, auth: str) -> None:
    me = client(fake_zendesk, auth=auth).users.me()
    assert (me.email, me.role) == (fake_zendesk.email, "admin")
    header = fake_zendesk.calls("me")[-1].headers
    assert "Authorization" not in header  # never recorded


def test_bad_credentials_get_zendesks_401(fake_zendesk: FakeZendesk) -> None:
    fake_zendesk.expire_credentials()
    with pytest.raises(APIException) as caught:
        client(fake_zendesk).tickets(id=1)
    assert caught.value.response.status_code == 401
    assert error(caught) == {"error": "Couldn't authenticate you"}
    fake_zendesk.expire_credentials(False)
    no_password = FakeZendesk(password_access=False).start()
    try:
        with pytest.raises(APIException, match="Couldn't authenticate you"):
            client(no_password, auth="password").users.me()
        assert client(no_password).users.me().id == no_password.agent.id
    finally:
        no_password.stop()


def test_create_show_and_show_many(fake_zendesk: FakeZendesk) -> None:
    zd = client(fake_zendesk)
    audit = zd.tickets.create(Ticket(subject="orders: freshness", external_id="opsflow:9f1c", priority="high",
                                     tags=["opsflow", "orders"], comment=Comment(body="stale for 3h", public=False)))
    ticket = audit.ticket
    assert (ticket.id, ticket.status, ticket.priority, ticket.external_id) == (1, "new", "high", "opsflow:9f1c")
    assert ticket.tags == ["opsflow", "orders"] and ticket.description == "stale for 3h"
    assert ticket.requester_id == ticket.submitter_id == fake_zendesk.agent.id
    assert audit.audit.events[0]["type"] == "Comment"
    assert fake_zendesk.calls("create_ticket")[-1].status == 201
    second = create(zd, "second", external_id="opsflow:9f1c")
    assert [t.id for t in zd.tickets(ids=[1, second.id, 99])] == [1, second.id]  # unknown ids left out
    assert [t.id for t in zd.tickets(external_id="opsflow:9f1c")] == [1, 2]
    assert zd.tickets(id=second.id).subject == "second"
    assert fake_zendesk.ticket(1).comments[0].public is False


def test_create_needs_a_comment_and_valid_fields(fake_zendesk: FakeZendesk) -> None:
    zd = client(fake_zendesk)
    with pytest.raises(APIException) as caught:
        zd.tickets.create(Ticket(subject="no body"))
    assert caught.value.response.status_code == 422
    assert error(caught) == {"error": "RecordInvalid", "description": "Record validation errors", "details": {
        "description": [{"description": "Description: cannot be blank", "error": "BlankValue"}]}}
    with pytest.raises(APIException) as caught:
        create(zd, priority="sky-high")
    assert error(caught)["details"]["priority"][0]["description"] == "Priority: sky-high is not valid"
    assert fake_zendesk.tickets == []  # nothing half-created
    legacy = zd.tickets.create(Ticket(subject="s", description="the description as first comment")).ticket
    assert fake_zendesk.ticket(legacy.id).description == "the description as first comment"


def test_unknown_ticket_is_record_not_found(fake_zendesk: FakeZendesk) -> None:
    with pytest.raises(RecordNotFoundException) as caught:
        client(fake_zendesk).tickets(id=404)
    assert caught.value.response.status_code == 404
    assert json.loads(str(caught.value)) == {"error": "RecordNotFound", "description": "Not found"}


def test_update_adds_comments_and_changes_fields(fake_zendesk: FakeZendesk) -> None:
    zd = client(fake_zendesk)
    ticket = create(zd, tags=["opsflow"])
    ticket.comment = Comment(body="still failing: 4 checks", public=False)
    ticket.priority = "urgent"
    ticket.tags = ["opsflow", "escalated"]
    audit = zd.tickets.update(ticket)
    assert (audit.ticket.priority, audit.ticket.tags) == ("urgent", ["opsflow", "escalated"])
    changes = {e["field_name"]: (e["previous_value"], e["value"]) for e in audit.audit.events if e["type"] == "Change"}
    assert changes == {"priority": (None, "urgent"), "tags": (["opsflow"], ["opsflow", "escalated"])}
    assert [(c.body, c.public) for c in zd.tickets.comments(ticket.id)] == [
        ("details of the failing checks", True), ("still failing: 4 checks", False)]
    body = fake_zendesk.calls("update_ticket")[-1].body
    assert set(body["ticket"]) == {"id", "comment", "priority", "tags"}  # zenpy sends what changed


def test_status_rules(fake_zendesk: FakeZendesk) -> None:
    zd = client(fake_zendesk)
    ticket = create(zd)
    solved = zd.tickets.update(Ticket(id=ticket.id, status="solved", comment=Comment(body="fixed"))).ticket
    assert (solved.status, solved.assignee_id) == ("solved", fake_zendesk.agent.id)  # auto assign on solve
    reopened = zd.tickets.update(Ticket(id=ticket.id, status="open", comment=Comment(body="broke again"))).ticket
    assert reopened.status == "open"  # solved -> open by an update is allowed
    with pytest.raises(APIException) as caught:
        zd.tickets.update(Ticket(id=ticket.id, status="new"))
    assert error(caught)["details"]["status"][0]["description"] == "Status: cannot be set back to new"
    assigned = create(zd, "assigned", assignee_id=fake_zendesk.agent.id)
    assert assigned.status == "open"  # a new ticket with an assignee is open


def test_closed_ticket_cannot_be_updated_and_takes_a_follow_up(fake_zendesk: FakeZendesk) -> None:
    zd = client(fake_zendesk)
    ticket = create(zd, external_id="opsflow:alert-1")
    zd.tickets.update(Ticket(id=ticket.id, status="solved"))
    assert fake_zendesk.close_solved(days=4) == []  # solved just now: not due yet
    fake_zendesk.advance(days=4)
    assert fake_zendesk.close_solved(days=4) == [ticket.id]
    with pytest.raises(APIException) as caught:
        zd.tickets.update(Ticket(id=ticket.id, comment=Comment(body="failing again")))
    assert caught.value.response.status_code == 422
    assert error(caught) == {"error": "RecordInvalid", "description": "Record validation errors",
                             "details": {"status": [{"description": "Status: closed prevents ticket update"}]}}
    assert len(fake_zendesk.ticket(ticket.id).comments) == 1
    follow_up = zd.tickets.create(Ticket(subject="payments: failing again", via_followup_source_id=ticket.id,
                                         comment=Comment(body="again"), external_id="opsflow:alert-1")).ticket
    assert follow_up.via.source.rel == "follow_up" and follow_up.via.source.from_["ticket_id"] == ticket.id
    assert zd.tickets(id=ticket.id).followup_ids == [follow_up.id]
    with pytest.raises(APIException) as caught:  # only a closed ticket takes a follow-up
        zd.tickets.create(Ticket(subject="x", via_followup_source_id=follow_up.id, comment=Comment(body="x")))
    assert "is not closed" in error(caught)["details"]["via_followup_source_id"][0]["description"]


def test_safe_update_refuses_stale_writes(fake_zendesk: FakeZendesk) -> None:
    zd = client(fake_zendesk)
    ticket = create(zd)
    stamp = ticket.updated_at
    fake_zendesk.advance(seconds=5)
    zd.tickets.update(Ticket(id=ticket.id, comment=Comment(body="someone else")))
    with pytest.raises(APIException) as caught:
        zd.tickets.update(Ticket(id=ticket.id, status="pending", safe_update=True, updated_stamp=stamp))
    assert caught.value.response.status_code == 409 and error(caught)["error"] == "UpdateConflict"
    fresh = zd.tickets(id=ticket.id)
    assert zd.tickets.update(Ticket(id=ticket.id, status="pending", safe_update=True,
                                    updated_stamp=fresh.updated_at)).ticket.status == "pending"


def test_hook_creates_reads_updates_and_searches(fake_zendesk: FakeZendesk, zendesk_conn: str) -> None:
    hook = ZendeskHook(zendesk_conn_id=zendesk_conn)
    audit = hook.create_tickets(Ticket(subject="dbt: 2 models failed", external_id="opsflow:dbt",
                                       comment=Comment(body="see the run"), tags=["opsflow"]))
    ticket = hook.get_ticket(audit.ticket.id)
    assert (ticket.subject, ticket.external_id) == ("dbt: 2 models failed", "opsflow:dbt")
    ticket.comment = Comment(body="resolved", public=False)
    ticket.status = "solved"
    assert hook.update_tickets(ticket).ticket.status == "solved"
    assert [t.id for t in hook.search_tickets(external_id="opsflow:dbt")] == [ticket.id]
    assert fake_zendesk.calls("search")[-1].query["query"] == ["type:ticket external_id:opsflow:dbt"]


@pytest.mark.parametrize("auth", ["token", "token_extra", "oauth", "password"])
def test_hook_connection_kinds(fake_zendesk: FakeZendesk, monkeypatch: pytest.MonkeyPatch, auth: str) -> None:
    for name, value in fake_zendesk.zendesk_connection("zd_" + auth, auth=auth).items():  # type: ignore[arg-type]
        monkeypatch.setenv(name, value)
    fake_zendesk.add_ticket("seeded")
    assert ZendeskHook(zendesk_conn_id="zd_" + auth).get_ticket(1).subject == "seeded"
