"""Rate limits, outages and lost answers through zenpy and ZendeskHook, and the request log.

How zenpy 2.0 reacts (its source, confirmed by the requests recorded here): a 429 *with* ``Retry-After`` is
waited out (in whole seconds, for ever unless ``ratelimit_budget`` is set) and re-sent, whatever the method;
a 429 without it raises ``requests.HTTPError`` (Zendesk's 429 body is plain text, not the JSON zenpy parses).
Its session adapter (``Retry(total=3, status_forcelist=[413, 503])``) re-sends idempotent requests (GET,
PUT...) after a 503 or a connection error - so an update whose answer was lost is applied twice, a comment
included - but never a POST: a create whose answer was lost raises although the ticket exists.
``FakeZendesk.client()`` mounts that adapter on http as zenpy does on https; ZendeskHook's zenpy, over plain
http, has no retrying adapter at all.
"""

from __future__ import annotations

import time

import pytest
import requests
from airflow.providers.zendesk.hooks.zendesk import ZendeskHook
from airflow_opsflow_testing.zendesk_server import FakeZendesk
from zenpy import Zenpy
from zenpy.lib.api_objects import Comment, Ticket
from zenpy.lib.exception import APIException, RatelimitBudgetExceeded

ALERT = {"subject": "payments: 3 checks failed", "external_id": "opsflow:7c1d", "tags": ["opsflow"]}


def client(fake: FakeZendesk, **kwargs: object) -> Zenpy:
    return fake.client(disable_cache=True, timeout=5, **kwargs)  # type: ignore[arg-type]


def alert() -> Ticket:
    return Ticket(**ALERT, comment=Comment(body="3 checks failed"))


def test_rate_limit_429_is_waited_out(fake_zendesk: FakeZendesk) -> None:
    fake_zendesk.set_rate_limit(3, 1.0)
    zd = client(fake_zendesk)
    fake_zendesk.add_ticket("seeded")
    started = time.monotonic()
    for _ in range(4):
        zd.tickets(id=1)
    assert 0.9 < time.monotonic() - started < 3
    assert [r.status for r in fake_zendesk.calls("show_ticket")] == [200, 200, 200, 429, 200]
    raw = [zd.tickets.session.get(f"{fake_zendesk.url}/api/v2/tickets/1.json") for _ in range(3)]
    limited = raw[-1]  # the retry above and two more fill the window again
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "1"
    assert limited.text == "Number of allowed API requests per minute exceeded"  # plain text, as Zendesk
    assert limited.headers["X-Rate-Limit"] == "3" and limited.headers["X-Rate-Limit-Remaining"] == "0"


def test_rate_limit_budget_and_headers(fake_zendesk: FakeZendesk) -> None:
    fake_zendesk.set_rate_limit(2, 60.0)
    zd = client(fake_zendesk, ratelimit_budget=1)
    first = zd.tickets.session.get(f"{fake_zendesk.url}/api/v2/users/me.json")
    assert first.headers["X-Rate-Limit"] == "2" and first.headers["X-Rate-Limit-Remaining"] == "1"
    assert first.headers["ratelimit-limit"] == "2" and int(first.headers["ratelimit-reset"]) <= 60
    zd.users.me()
    with pytest.raises(RatelimitBudgetExceeded):
        zd.users.me()  # Retry-After ~60 s: more than zenpy may wait


def test_incremental_exports_have_their_own_limit(fake_zendesk: FakeZendesk) -> None:
    fake_zendesk.set_rate_limit(700, 60.0, incremental_limit=1)
    zd = client(fake_zendesk, ratelimit_budget=1)
    list(zd.tickets.incremental(start_time=0))
    with pytest.raises(RatelimitBudgetExceeded):
        list(zd.tickets.incremental(start_time=0))
    assert zd.users.me().id == fake_zendesk.agent.id  # other endpoints are still served


def test_injected_429_on_create_is_retried_once(fake_zendesk: FakeZendesk) -> None:
    fake_zendesk.fail_next("create_ticket", status=429, retry_after=1)
    ticket = client(fake_zendesk).tickets.create(alert()).ticket
    assert [r.status for r in fake_zendesk.calls("create_ticket")] == [429, 201]
    assert [t.id for t in fake_zendesk.tickets] == [ticket.id]
    fake_zendesk.fail_next("create_ticket", status=429)  # without Retry-After zenpy gives up: the plain-text
    with pytest.raises(requests.HTTPError, match="429"):  # body is no JSON, so requests' HTTPError, not zenpy's
        client(fake_zendesk).tickets.create(alert())


def test_503_retried_by_the_client_adapter_not_by_the_hook(fake_zendesk: FakeZendesk, zendesk_conn: str) -> None:
    fake_zendesk.add_ticket("seeded")
    fake_zendesk.fail_next("show_ticket", status=503, times=2)
    assert client(fake_zendesk).tickets(id=1).subject == "seeded"
    assert [r.status for r in fake_zendesk.calls("show_ticket")] == [503, 503, 200]
    fake_zendesk.fail_next("show_ticket", status=503)
    with pytest.raises(APIException) as caught:
        ZendeskHook(zendesk_conn_id=zendesk_conn).get_ticket(1)
    assert caught.value.response.status_code == 503
    fake_zendesk.fail_next("create_ticket", status=503)  # a POST is never re-sent, even by the adapter
    with pytest.raises(APIException):
        client(fake_zendesk).tickets.create(alert())
    assert fake_zendesk.calls("create_ticket")[-1].status == 503


def test_lost_answer_on_create_leaves_a_ticket_the_caller_does_not_know(fake_zendesk: FakeZendesk) -> None:
    zd = client(fake_zendesk)
    fake_zendesk.drop_response_next("create_ticket")
    with pytest.raises(requests.ConnectionError):
        zd.tickets.create(alert())
    assert [r.status for r in fake_zendesk.calls("create_ticket")] == [None]  # applied, never answered
    assert [t.external_id for t in fake_zendesk.tickets] == ["opsflow:7c1d"]
    found = list(zd.tickets(external_id="opsflow:7c1d"))  # look before re-creating: the safe retry
    assert [t.subject for t in found] == [ALERT["subject"]]


def test_lost_answer_on_update_makes_zenpy_comment_twice(fake_zendesk: FakeZendesk, zendesk_conn: str) -> None:
    zd = client(fake_zendesk)
    ticket = zd.tickets.create(alert()).ticket
    fake_zendesk.drop_response_next("update_ticket")
    zd.tickets.update(Ticket(id=ticket.id, comment=Comment(body="still failing")))  # the caller sees success
    assert [c.body for c in fake_zendesk.ticket(ticket.id).comments] == [
        "3 checks failed", "still failing", "still failing"]
    assert [r.status for r in fake_zendesk.calls("update_ticket")] == [None, 200]
    fake_zendesk.drop_response_next("update_ticket")
    with pytest.raises(requests.ConnectionError):  # the hook's zenpy does not retry: once, and an error
        ZendeskHook(zendesk_conn_id=zendesk_conn).update_tickets(Ticket(id=ticket.id, comment=Comment(body="x")))
    assert [c.body for c in fake_zendesk.ticket(ticket.id).comments][-1:] == ["x"]


def test_slow_answer_times_out_after_the_write(fake_zendesk: FakeZendesk) -> None:
    zd = fake_zendesk.client(timeout=0.3)
    fake_zendesk.delay_next("create_ticket", seconds=0.8)
    with pytest.raises(requests.ReadTimeout):
        zd.tickets.create(alert())
    assert len(fake_zendesk.tickets) == 1  # written although the caller timed out
    fake_zendesk.latency(0.05)
    started = time.monotonic()
    zd.users.me()
    assert time.monotonic() - started >= 0.05


def test_request_log_and_fault_targets(fake_zendesk: FakeZendesk) -> None:
    zd = client(fake_zendesk)
    zd.tickets.create(alert())
    mark = fake_zendesk.mark()
    zd.tickets(id=1)
    zd.tickets.update(Ticket(id=1, status="pending"))
    assert [r.name for r in fake_zendesk.calls(since=mark)] == ["show_ticket", "update_ticket"]
    assert [r.name for r in fake_zendesk.writes(since=mark)] == ["update_ticket"]
    assert fake_zendesk.calls(method="PUT")[0].body == {"ticket": {"id": 1, "status": "pending"}}
    fake_zendesk.fail_next("/api/v2/tickets/1", status=500)
    with pytest.raises(APIException) as caught:
        zd.tickets.update(Ticket(id=1, status="open"))
    assert caught.value.response.status_code == 500
    fake_zendesk.fail_next(status=502, body={"error": "BadGateway"})  # any request
    with pytest.raises(APIException, match="BadGateway"):
        zd.users.me()
    with pytest.raises(ValueError, match="unknown operation"):
        fake_zendesk.fail_next("create_tickets")
    response = zd.users.session.get(f"{fake_zendesk.url}/api/v2/no_such_thing.json")
    assert response.status_code == 404 and response.json() == {"error": "InvalidEndpoint", "description": "Not found"}
    assert fake_zendesk.calls("unknown")[-1].path == "/api/v2/no_such_thing.json"
