"""Faults through the real ``jira`` library: rate limits, outages, and the lost answer that duplicates issues.

How jira 3.10's ``ResilientSession`` retries (its source, confirmed by the requests recorded here): every HTTP
method alike, POST included, up to ``max_retries`` (3) more times, on a connection error (waiting
``10 * 2**n`` s, capped by ``max_retry_delay`` = 60, times a 0.5-1.0 jitter), on 429 (``2 * Retry-After`` s,
or the exponential wait without the header) and on 503 *only with* ``Retry-After``. So a create whose answer
is lost is sent again and Jira, which has no idempotency key, creates a second issue. Tests cap the delay
with ``max_retry_delay`` to stay fast.
"""

from __future__ import annotations

import time

import pytest
import requests
from airflow_opsflow_testing.jira_server import FakeJira
from jira import JIRAError

BOTH = pytest.mark.parametrize("fake_jira", ["cloud", "server"], indirect=True)
ALERT = {"project": {"key": "OPS"}, "issuetype": {"name": "Incident"}, "summary": "payments: 3 checks failed",
         "labels": ["ALERT-7c1d"]}


def test_rate_limit_retried_after_twice_retry_after(fake_jira: FakeJira) -> None:
    c = fake_jira.client(timeout=5)  # the library's own back-off: 2 x Retry-After, jittered by 0.5-1.0
    fake_jira.fail_next("create", retry_after=1)
    started = time.monotonic()
    issue = c.create_issue(fields=ALERT, prefetch=False)
    assert 1.0 <= time.monotonic() - started < 4
    assert issue.key == "OPS-1" and len(fake_jira.issues) == 1
    create = fake_jira.calls(name="create")
    assert [(r.status, r.error) for r in create] == [(429, "Rate limit exceeded."), (201, None)]


def test_rate_limit_gives_up_after_max_retries(fake_jira: FakeJira) -> None:
    c = fake_jira.client(timeout=5, max_retries=2, max_retry_delay=0.05)
    fake_jira.fail_next("search", times=5, message="Rate limit exceeded.")
    with pytest.raises(JIRAError) as caught:
        c.search_issues("project = OPS")
    assert (caught.value.status_code, caught.value.text) == (429, "Rate limit exceeded.")
    assert caught.value.response.headers["Retry-After"] == "1"
    assert len(fake_jira.calls(name="search")) == 3  # the first try and max_retries more


@BOTH
def test_503_is_retried_only_with_retry_after(fake_jira: FakeJira) -> None:
    c = fake_jira.client(timeout=5, max_retry_delay=0.05)
    c.create_issue(fields=ALERT, prefetch=False)
    fake_jira.fail_next("issue", status=503, retry_after=None)
    with pytest.raises(JIRAError) as caught:
        c.issue("OPS-1")
    assert (caught.value.status_code, caught.value.text) == (503, "Service Unavailable")
    assert len(fake_jira.calls(name="issue")) == 1  # not retried
    fake_jira.fail_next("issue", status=503, retry_after=1)
    assert c.issue("OPS-1").key == "OPS-1"
    assert [r.status for r in fake_jira.calls(name="issue")] == [503, 503, 200]


def test_faults_by_path_prefix_and_other_statuses(fake_jira: FakeJira) -> None:
    c = fake_jira.client(timeout=5, max_retry_delay=0.05)
    c.create_issue(fields=ALERT, prefetch=False)
    fake_jira.fail_next("/rest/api/2/issue/OPS-1/", status=500, retry_after=None, message="boom")
    with pytest.raises(JIRAError) as caught:
        c.add_comment("OPS-1", "x")
    assert (caught.value.status_code, caught.value.text) == (500, "boom")
    assert c.add_comment("OPS-1", "y").body == "y"  # the fault is used up
    assert [x.body for x in fake_jira.issue("OPS-1").comments] == ["y"]


@BOTH
def test_lost_answer_makes_the_library_create_a_duplicate(fake_jira: FakeJira) -> None:
    c = fake_jira.client(timeout=5, max_retry_delay=0.1)  # library defaults otherwise: 3 retries
    fake_jira.drop_response_next("create")
    issue = c.create_issue(fields=ALERT, prefetch=False)  # the caller sees one success...
    first, second = fake_jira.issues  # ...Jira holds the alert twice
    assert first.summary == second.summary == ALERT["summary"] and first.labels == second.labels
    assert issue.key == second.key == "OPS-2"
    assert [r.status for r in fake_jira.calls(name="create")] == [None, 201]
    assert fake_jira.calls(name="create")[0].body == fake_jira.calls(name="create")[1].body


@BOTH
def test_lost_answer_without_retries_surfaces_although_the_issue_exists(fake_jira: FakeJira) -> None:
    c = fake_jira.client(timeout=5, max_retries=0)
    fake_jira.drop_response_next("create")
    with pytest.raises(requests.exceptions.ConnectionError):  # a raw requests error, not a JIRAError
        c.create_issue(fields=ALERT, prefetch=False)
    assert [i.key for i in fake_jira.issues] == ["OPS-1"]
    # The guard our ticketing needs: search by the alert's fingerprint before creating again.
    if fake_jira.cloud:
        found = c.enhanced_search_issues("labels = ALERT-7c1d", reconcileIssues=[])
    else:
        found = c.search_issues("labels = ALERT-7c1d")
    assert [i.key for i in found] == ["OPS-1"]


def test_lost_answer_on_a_transition_reports_a_400_although_it_happened(fake_jira: FakeJira) -> None:
    c = fake_jira.client(timeout=5, max_retry_delay=0.1)
    c.create_issue(fields=ALERT, prefetch=False)
    fake_jira.drop_response_next("transition")
    with pytest.raises(JIRAError) as caught:  # the re-sent transition is no longer valid from Done
        c.transition_issue("OPS-1", "31", comment="resolved")
    assert caught.value.status_code == 400 and "is not valid for this issue" in caught.value.text
    held = fake_jira.issue("OPS-1")
    assert held.status == "Done" and [x.body for x in held.comments] == ["resolved"]
