"""FakeJira search through the real ``jira`` library: endpoints per deployment, paging, the JQL subset, consistency.

What jira 3.10 does (checked in its source and in the requests recorded here): ``search_issues`` calls
``GET /rest/api/2/search`` (startAt/maxResults/total) on Server/DC, but on Cloud it delegates to
``enhanced_search_issues`` -> ``GET /rest/api/2/search/jql`` (nextPageToken/isLast), and refuses ``startAt > 0``
client-side. ``enhanced_search_issues`` is Cloud-only (it logs a warning and returns None on Server) and is the
only way to pass ``reconcileIssues``. Both first fetch ``GET /field`` once, to map field names to ids.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest
from airflow_opsflow_testing.jira_server import FakeJira
from jira import JIRA, JIRAError

BOTH = pytest.mark.parametrize("fake_jira", ["cloud", "server"], indirect=True)
TASK = {"project": {"key": "OPS"}, "issuetype": {"name": "Task"}}


def client(fake: FakeJira) -> JIRA:
    return fake.client(timeout=5, max_retry_delay=0.2)


def keys(c: JIRA, jql: str, **kwargs: object) -> list[str]:
    return [i.key for i in c.search_issues(jql, **kwargs)]  # type: ignore[call-overload]


def seed(fake: FakeJira, now: datetime, monkeypatch: pytest.MonkeyPatch) -> None:
    """Six issues dated back from ``now``, the fake's clock from then on (relative JQL like ``-7d`` reads it)."""
    monkeypatch.setattr(fake.tracker, "now", lambda: now)
    fake.add_issue("OPS", "open alert A", labels=["ALERT{a}", "opsflow"], created=now - timedelta(days=5))  # OPS-1
    fake.add_issue("OPS", "alert A resolved 3 days ago", labels=["ALERT{a}"], status="Done",
                   created=now - timedelta(days=6), resolved=now - timedelta(days=3))  # OPS-2
    fake.add_issue("OPS", "alert B won't fix", labels=["ALERT{b}"], status="Done", resolution="Won't Fix",
                   created=now - timedelta(days=4), resolved=now - timedelta(hours=2))  # OPS-3
    fake.add_issue("OPS", "alert B in progress", labels=["ALERT{b}"], status="In Progress", priority="High",
                   created=now - timedelta(days=3))  # OPS-4
    fake.add_issue("OPS", "resolved long ago", labels=["ALERT{a}"], status="Done",
                   created=now - timedelta(days=30), resolved=now - timedelta(days=10))  # OPS-5
    fake.add_issue("FIN", "finance, unlabelled", created=now - timedelta(days=1))  # FIN-1


JQL_CASES = [
    ('project = OPS AND labels = "ALERT{a}" ORDER BY key ASC', ["OPS-1", "OPS-2", "OPS-5"]),
    ("labels in (\"ALERT{b}\", opsflow) ORDER BY key", ["OPS-1", "OPS-3", "OPS-4"]),
    ("project = FIN", ["FIN-1"]),
    ("project = ops and statusCategory != Done ORDER BY key", ["OPS-1", "OPS-4"]),
    ('statusCategory = "Done" ORDER BY key', ["OPS-2", "OPS-3", "OPS-5"]),
    ("statusCategory = indeterminate", ["OPS-4"]),
    ('statusCategory in ("To Do", "In Progress") AND project = OPS ORDER BY key', ["OPS-1", "OPS-4"]),
    ('(labels = "ALERT{a}" OR labels = "ALERT{b}") AND statusCategory = Done ORDER BY key',
     ["OPS-2", "OPS-3", "OPS-5"]),
    ("resolutiondate >= -7d ORDER BY resolutiondate DESC", ["OPS-3", "OPS-2"]),
    ("resolutiondate >= -60m", []),
    ('resolutiondate >= "-1w 2d" AND resolutiondate < -1d ORDER BY key', ["OPS-2"]),
    ('created >= "2000-01-01" AND created <= -5d ORDER BY created ASC', ["OPS-5", "OPS-2", "OPS-1"]),
    ("key in (OPS-1, OPS-3) ORDER BY key DESC", ["OPS-3", "OPS-1"]),
    ("issuekey = OPS-4", ["OPS-4"]),
    ("id in (10001, 10006) ORDER BY key", ["FIN-1", "OPS-1"]),
    ('resolution != "won\'t fix" ORDER BY key', ["OPS-2", "OPS-5"]),  # != never matches an empty field
    ("resolution = Unresolved ORDER BY key", ["FIN-1", "OPS-1", "OPS-4"]),
    ("labels is EMPTY", ["FIN-1"]),
    ("priority = High", ["OPS-4"]),
    # Alertmanager's Jira notifier, verbatim shape: open first, then the most recently resolved.
    ('(resolutiondate is EMPTY OR resolutiondate >= -10080m) and project="OPS" and labels="ALERT{a}" '
     "order by status ASC,resolutiondate DESC", ["OPS-1", "OPS-2"]),
    ('statusCategory != Done and project="OPS" and labels="ALERT{b}" order by status ASC,resolutiondate DESC',
     ["OPS-4"]),
    ("project = OPS ORDER BY statusCategory ASC, priority DESC, key ASC", ["OPS-1", "OPS-4", "OPS-2", "OPS-3",
                                                                         "OPS-5"]),
    # Equal values tie-break by key, descending (OPS-4 was created when OPS-2 was resolved).
    ("project = OPS OR project = FIN ORDER BY updated DESC", ["OPS-3", "FIN-1", "OPS-4", "OPS-2", "OPS-1",
                                                             "OPS-5"]),
]


@BOTH
@pytest.mark.parametrize(("jql", "expected"), JQL_CASES, ids=lambda v: str(v)[:40])
def test_jql_subset(fake_jira: FakeJira, jql: str, expected: list[str], clock: datetime,
                    monkeypatch: pytest.MonkeyPatch) -> None:
    seed(fake_jira, clock, monkeypatch)
    assert keys(client(fake_jira), jql) == expected


@BOTH
def test_search_endpoint_per_deployment(fake_jira: FakeJira, clock: datetime,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    seed(fake_jira, clock, monkeypatch)
    c = client(fake_jira)
    start = fake_jira.mark()
    found = c.search_issues("statusCategory != Done", maxResults=2, fields="summary,status")
    assert [i.key for i in found] == ["OPS-4", "OPS-1"]  # no ORDER BY: key descending; FIN-1 is on page 2
    assert set(found[0].raw["fields"]) == {"summary", "status"}
    search = fake_jira.calls(name="search", since=start)
    assert len(search) == 1 and fake_jira.writes(since=start) == []
    if fake_jira.cloud:
        assert search[0].path == "/rest/api/2/search/jql" and found.total == 2  # no total: the page's length
        assert search[0].query["fields"] == ["summary", "status"] and "startAt" not in search[0].query
    else:
        assert search[0].path == "/rest/api/2/search" and search[0].query["validateQuery"] == ["True"]
        assert found.total == 3
    assert [r.name for r in fake_jira.calls(since=start)] == ["field", "search"]  # the library's field-id cache
    assert keys(c, "project = OPS AND statusCategory != Done", use_post=True) == ["OPS-4", "OPS-1"]
    assert fake_jira.calls("POST", since=start)[0].name == "search" and fake_jira.writes() == []


def test_old_search_is_gone_on_cloud(fake_jira: FakeJira) -> None:
    c = client(fake_jira)
    with pytest.raises(JIRAError) as caught:
        c._session.get(f"{fake_jira.url}/rest/api/2/search", params={"jql": "project = OPS"})
    assert caught.value.status_code == 410 and "/rest/api/3/search/jql" in caught.value.text
    with pytest.raises(JIRAError, match="deprecated in Jira Cloud"):
        c.search_issues("project = OPS", startAt=2)  # refused by the library, no request sent
    with pytest.raises(JIRAError) as caught:
        c.enhanced_search_issues("order by created DESC")
    assert caught.value.text == ("Unbounded JQL queries are not allowed here. "
                                 "Please add a search restriction to your query.")
    fake_jira.mode = "server"
    server = client(fake_jira)
    assert server.enhanced_search_issues("project = OPS") is None  # Cloud-only in the library
    with pytest.raises(JIRAError) as caught:
        server._session.get(f"{fake_jira.url}/rest/api/2/search/jql", params={"jql": "project = OPS"})
    assert caught.value.status_code == 404


@pytest.mark.parametrize("fake_jira", ["server"], indirect=True)
def test_server_paging(fake_jira: FakeJira) -> None:
    fake_jira.max_results = 2  # the site's page cap: the library pages with startAt
    for n in range(5):
        fake_jira.add_issue(summary=f"s{n}", labels=["paged"])
    c = client(fake_jira)
    start = fake_jira.mark()
    every = c.search_issues("labels = paged ORDER BY key", maxResults=False)
    assert [i.key for i in every] == [f"OPS-{n}" for n in range(1, 6)] and every.total == 5
    pages = fake_jira.calls(name="search", since=start)
    assert [(r.query["startAt"], r.query["maxResults"]) for r in pages] == [
        (["0"], ["100"]), (["2"], ["2"]), (["4"], ["2"])]  # asks for 100, pages by what the site returned
    page = c.search_issues("labels = paged ORDER BY key", startAt=2, maxResults=2)
    assert [i.key for i in page] == ["OPS-3", "OPS-4"] and (page.startAt, page.maxResults, page.total) == (2, 2, 5)
    with pytest.warns(Warning, match="All issues cannot be fetched at once"):
        raw = c.search_issues("labels = paged", maxResults=0, json_result=True)
    assert (raw["total"], raw["issues"]) == (5, [])


def test_cloud_paging(fake_jira: FakeJira) -> None:
    fake_jira.max_results = 2
    for n in range(5):
        fake_jira.add_issue(summary=f"s{n}", labels=["paged"])
    c = client(fake_jira)
    first = c.enhanced_search_issues("labels = paged ORDER BY key", maxResults=2)
    assert [i.key for i in first] == ["OPS-1", "OPS-2"] and first.nextPageToken
    second = c.enhanced_search_issues("labels = paged ORDER BY key", nextPageToken=first.nextPageToken,
                                      maxResults=2)
    assert [i.key for i in second] == ["OPS-3", "OPS-4"]
    raw = c.enhanced_search_issues("labels = paged ORDER BY key", nextPageToken=second.nextPageToken,
                                   maxResults=2, json_result=True)
    assert [i["key"] for i in raw["issues"]] == ["OPS-5"] and raw["isLast"] and "total" not in raw
    start = fake_jira.mark()
    every = c.enhanced_search_issues("labels = paged ORDER BY key", maxResults=0)  # the library follows tokens
    assert [i.key for i in every] == [f"OPS-{n}" for n in range(1, 6)]
    assert len(fake_jira.calls(name="search", since=start)) == 3
    with pytest.raises(JIRAError, match="next page token is invalid"):
        c.enhanced_search_issues("labels = other", nextPageToken=first.nextPageToken)
    ids_only = c.enhanced_search_issues("labels = paged", maxResults=1, json_result=True, fields=[])
    assert ids_only["issues"][0]["fields"] == {}  # /search/jql returns ids unless fields are asked for


@BOTH
@pytest.mark.parametrize(("jql", "message"), [
    ("project = NOPE", "The value 'NOPE' does not exist for the field 'project'."),
    ("status = Closed", "The value 'Closed' does not exist for the field 'status'."),
    ("key = OPS-99", "An issue with key 'OPS-99' does not exist for field 'key'."),
    ("foo = bar", "Field 'foo' does not exist or you do not have permission to view it."),
    ("project = OPS labels = x", "Expecting either 'OR' or 'AND' but got 'labels'."),
    ("labels = a@b", "The character '@' is a reserved JQL character."),
    ("project = OPS ORDER BY labels", "Field 'labels' does not support sorting."),
    ("resolutiondate >= yesterday", "Date value 'yesterday' for field 'resolutiondate' is invalid."),
    ('summary ~ "disk full"', "Searching the text field 'summary' is not supported here (opsflow FakeJira"),
    ("NOT labels = x", "The NOT operator is not supported here"),
    ('cf[10010] = "data"', "Searching the custom field 'cf[10010]' is not supported here"),
    ("status WAS Done", "The history operator 'WAS' is not supported here"),
    ("created >= startOfDay()", "The function 'startOfDay()' is not supported here"),
    ("priority > Low", "The operator '>' on the field 'priority' is not supported here"),
], ids=lambda v: str(v)[:30])
def test_bad_or_unsupported_jql_is_a_400(fake_jira: FakeJira, jql: str, message: str, clock: datetime,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    seed(fake_jira, clock, monkeypatch)
    with pytest.raises(JIRAError) as caught:
        client(fake_jira).search_issues(jql)
    assert caught.value.status_code == 400 and message in caught.value.text
    assert caught.value.response.json()["errors"] == {}


@pytest.mark.parametrize("fake_jira", ["server"], indirect=True)
def test_server_validate_query_false_warns(fake_jira: FakeJira, clock: datetime,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    seed(fake_jira, clock, monkeypatch)
    c = client(fake_jira)
    raw = c.search_issues("project = OPS AND labels = opsflow OR project = NOPE", validate_query=False,
                          json_result=True)
    assert [i["key"] for i in raw["issues"]] == ["OPS-1"]
    assert raw["warningMessages"] == ["The value 'NOPE' does not exist for the field 'project'."]
    with pytest.raises(JIRAError):  # the fake's limits stay errors: never an approximate answer
        c.search_issues('summary ~ "x"', validate_query=False)


def test_cloud_eventual_consistency_and_reconcile(fake_jira: FakeJira) -> None:
    fake_jira.add_issue(summary="indexed long ago", labels=["ALERT{a}"])  # OPS-1
    fake_jira.search_delay(30)
    c = client(fake_jira)
    new = c.create_issue(fields={**TASK, "summary": "just created", "labels": ["ALERT{a}"]}, prefetch=False)
    c.transition_issue("OPS-1", "Done")
    jql = 'labels = "ALERT{a}" AND statusCategory != Done ORDER BY key'
    assert keys(c, jql) == ["OPS-1"]  # stale: OPS-1 still open in the index, OPS-2 not there yet
    assert c.issue(new.key).key == "OPS-2"  # reads by key are consistent
    fresh = c.enhanced_search_issues(jql, reconcileIssues=[int(new.id), 10001])
    assert [i.key for i in fresh] == ["OPS-2"]
    assert fake_jira.calls(name="search")[-1].query["reconcileIssues"] == ["10002", "10001"]
    posted = c.enhanced_search_issues(jql, reconcileIssues=[int(new.id)], use_post=True)
    assert [i.key for i in posted] == ["OPS-1", "OPS-2"]  # only the ids passed are fresh
    with pytest.raises(JIRAError, match="at most 50"):
        c.enhanced_search_issues(jql, reconcileIssues=list(range(10001, 10052)))
    with pytest.raises(JIRAError, match="do not exist"):
        c.enhanced_search_issues(jql, reconcileIssues=[99999])

    fake_jira.search_delay(0)  # pending writes become visible at once
    assert keys(c, jql) == ["OPS-2"]
    fake_jira.search_delay(0.3)
    c.create_issue(fields={**TASK, "summary": "lags 0.3 s", "labels": ["ALERT{a}"]}, prefetch=False)
    assert keys(c, jql) == ["OPS-2"]
    time.sleep(0.4)
    assert keys(c, jql) == ["OPS-2", "OPS-3"]
