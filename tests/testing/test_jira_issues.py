"""FakeJira through the real ``jira`` library, Cloud and Server/DC: issues, comments, workflow, errors, auth, wiring."""

from __future__ import annotations

import json

import pytest
from airflow_opsflow_testing.jira_server import AUTH_FAILED, NOT_AUTHENTICATED, FakeJira
from jira import JIRA, JIRAError

BOTH = pytest.mark.parametrize("fake_jira", ["cloud", "server"], indirect=True)
TASK = {"project": {"key": "OPS"}, "issuetype": {"name": "Task"}}


def client(fake: FakeJira, **kwargs: object) -> JIRA:
    return fake.client(timeout=5, max_retry_delay=0.2, **kwargs)  # type: ignore[arg-type]


@BOTH
def test_site_metadata(fake_jira: FakeJira) -> None:
    c = client(fake_jira)
    info = c.server_info()
    assert info["deploymentType"] == ("Cloud" if fake_jira.cloud else "Server")
    assert info["baseUrl"] == fake_jira.url and c._is_cloud == fake_jira.cloud
    me = c.myself()
    assert me["emailAddress"] == fake_jira.email
    assert ("accountId" in me, "name" in me) == (fake_jira.cloud, not fake_jira.cloud)  # Cloud has no user names
    fields = {f["id"]: f for f in c.fields()}
    assert fields["customfield_10010"]["name"] == "Team" and fields["customfield_10010"]["custom"]
    assert fields["labels"]["schema"] == {"type": "array", "system": "labels", "items": "string"}
    assert [p.key for p in c.projects()] == ["OPS", "FIN"]
    assert [t.name for t in c.project("OPS").issueTypes] == ["Task", "Bug", "Incident"]
    assert [p.name for p in c.priorities()][:4] == ["Highest", "High", "Medium", "Low"]
    with pytest.raises(JIRAError) as caught:
        c.project("NOPE")
    assert (caught.value.status_code, caught.value.text) == (404, "No project could be found with key 'NOPE'.")


@BOTH
def test_create_read_update(fake_jira: FakeJira) -> None:
    c = client(fake_jira)
    created = c.create_issue(fields={**TASK, "summary": "payments: 3 checks failed", "description": "details",
                                     "labels": ["opsflow", "ALERT-1f2e"], "priority": {"name": "High"},
                                     "components": [{"name": "database"}], "customfield_10010": "data-platform"},
                             prefetch=False)
    assert (created.key, created.id) == ("OPS-1", "10001")
    issue = c.issue("OPS-1")
    f = issue.fields
    assert (f.summary, f.description, f.priority.name, f.issuetype.name) == (
        "payments: 3 checks failed", "details", "High", "Task")
    assert f.labels == ["ALERT-1f2e", "opsflow"]  # Jira returns labels sorted
    assert (f.status.name, f.status.statusCategory.key, f.resolution, f.resolutiondate) == ("To Do", "new", None, None)
    assert [comp.name for comp in f.components] == ["database"] and f.customfield_10010 == "data-platform"
    assert f.reporter.emailAddress == fake_jira.email and f.assignee is None

    only = c.issue("OPS-1", fields="summary,status").raw["fields"]
    assert set(only) == {"summary", "status"}
    assert "comment" not in c.issue("OPS-1", fields="*all,-comment").raw["fields"]

    issue.update(fields={"summary": "payments: 4 checks failed"}, update={"labels": [{"add": "sev2"}]})
    issue.add_field_value("labels", "payments")  # PUT {"update": {"labels": [{"add": ...}]}}
    issue.update(update={"labels": [{"remove": "opsflow"}]})
    user = {"accountId": "5b10a2844c20165700ede21g"} if fake_jira.cloud else {"name": "alice"}
    issue.update(fields={"assignee": user})
    held = fake_jira.issue("OPS-1")
    assert held.summary == "payments: 4 checks failed" and held.labels == ["ALERT-1f2e", "payments", "sev2"]
    assert held.assignee is not None and held.assignee.name == "alice"
    assert c.issue("OPS-1").fields.assignee.displayName == "Alice Ops"
    edits = fake_jira.calls("PUT")
    assert edits[1].body == {"update": {"labels": [{"add": "payments"}]}}
    assert all("Authorization" not in r.headers for r in fake_jira.requests)


@BOTH
def test_comments(fake_jira: FakeJira) -> None:
    c = client(fake_jira)
    c.create_issue(fields={**TASK, "summary": "s"}, prefetch=False)
    comment = c.add_comment("OPS-1", "still failing: 3 rows")
    assert comment.body == "still failing: 3 rows" and comment.author.displayName == "opsflow bot"
    c.add_comment("OPS-1", "recovered")
    assert [x.body for x in c.comments("OPS-1")] == ["still failing: 3 rows", "recovered"]
    assert [x.body for x in c.comments("OPS-1", order_by="-created")] == ["recovered", "still failing: 3 rows"]
    assert c.issue("OPS-1").fields.comment.total == 2
    with pytest.raises(JIRAError) as caught:
        c.add_comment("OPS-1", "  ")
    assert (caught.value.status_code, caught.value.text) == (400, "Comment body can not be empty!")
    assert [x.body for x in fake_jira.issue("OPS-1").comments] == ["still failing: 3 rows", "recovered"]


@BOTH
def test_workflow_and_resolution(fake_jira: FakeJira) -> None:
    c = client(fake_jira)
    c.create_issue(fields={**TASK, "summary": "s"}, prefetch=False)
    assert [(t["id"], t["name"], t["to"]["name"]) for t in c.transitions("OPS-1")] == [
        ("21", "In Progress", "In Progress"), ("31", "Done", "Done")]
    c.transition_issue("OPS-1", "In Progress")  # by name: the library looks the id up first
    assert c.issue("OPS-1").fields.status.statusCategory.key == "indeterminate"

    done = next(t for t in c.transitions("OPS-1", expand="transitions.fields") if t["name"] == "Done")
    assert "Won't Fix" in [r["name"] for r in done["fields"]["resolution"]["allowedValues"]]
    c.transition_issue("OPS-1", "31", fields={"resolution": {"name": "Won't Fix"}}, comment="not actionable")
    f = c.issue("OPS-1").fields
    assert (f.status.name, f.status.statusCategory.key, f.resolution.name) == ("Done", "done", "Won't Fix")
    assert f.resolutiondate is not None and f.comment.comments[-1].body == "not actionable"
    assert [t["name"] for t in c.transitions("OPS-1")] == ["Reopen"]

    c.transition_issue("OPS-1", "Reopen")
    f = c.issue("OPS-1").fields
    assert (f.status.name, f.resolution, f.resolutiondate) == ("To Do", None, None)
    c.transition_issue("OPS-1", "Done")  # no resolution given: the workflow sets "Done"
    held = fake_jira.issue("OPS-1")
    assert (held.status_category, held.resolution) == ("done", "Done")
    assert [(t.name, t.from_status, t.to_status, t.resolution) for t in held.transitions] == [
        ("In Progress", "To Do", "In Progress", None), ("Done", "In Progress", "Done", "Won't Fix"),
        ("Reopen", "Done", "To Do", None), ("Done", "To Do", "Done", "Done")]


@BOTH
def test_transition_errors(fake_jira: FakeJira) -> None:
    c = client(fake_jira)
    c.create_issue(fields={**TASK, "summary": "s"}, prefetch=False)
    with pytest.raises(JIRAError) as caught:
        c.transition_issue("OPS-1", "41")  # Reopen is not available from To Do
    assert (caught.value.status_code, caught.value.text) == (400, "Transition id '41' is not valid for this issue.")
    with pytest.raises(JIRAError) as caught:
        c.transition_issue("OPS-1", "21", fields={"resolution": {"name": "Done"}})  # not on that screen
    assert caught.value.text == "Field 'resolution' cannot be set. It is not on the appropriate screen, or unknown."
    with pytest.raises(JIRAError, match="Invalid transition name"):
        c.transition_issue("OPS-1", "Close")  # raised by the library after listing the transitions
    assert fake_jira.issue("OPS-1").transitions == []


@BOTH
def test_create_errors_have_jira_shape(fake_jira: FakeJira) -> None:
    c = client(fake_jira)
    cases = [
        ({"project": {"key": "NOPE"}, "issuetype": {"name": "Task"}, "summary": "s"},
         {"project": "valid project is required"}),
        ({"project": {"key": "OPS"}, "issuetype": {"name": "Epic"}, "summary": "s"},
         {"issuetype": "valid issue type is required"}),
        ({**TASK, "labels": ["has space"]},
         {"summary": "You must specify a summary of the issue.",
          "labels": "The label 'has space' contains spaces which is invalid."}),
        ({**TASK, "summary": "s", "customfield_99999": "x"},
         {"customfield_99999": "Field 'customfield_99999' cannot be set. It is not on the appropriate screen, "
                               "or unknown."}),
    ]
    for fields, errors in cases:
        with pytest.raises(JIRAError) as caught:
            c.create_issue(fields=fields, prefetch=False)
        assert caught.value.status_code == 400
        assert caught.value.text == ", ".join(errors.values())  # the library joins Jira's "errors" values
        assert caught.value.response.json() == {"errorMessages": [], "errors": errors}
    assert fake_jira.issues == [] and len(fake_jira.writes()) == len(cases)
    with pytest.raises(JIRAError) as caught:
        c.issue("OPS-99")
    assert (caught.value.status_code, caught.value.text) == (
        404, "Issue does not exist or you do not have permission to see it.")


@BOTH
def test_labels_not_on_create_screen(fake_jira: FakeJira) -> None:
    fake_jira.set_labels_on_create_screen("OPS", False)
    c = client(fake_jira)
    with pytest.raises(JIRAError) as caught:
        c.create_issue(fields={**TASK, "summary": "s", "labels": ["opsflow"]}, prefetch=False)
    assert caught.value.response.json() == {"errorMessages": [], "errors": {
        "labels": "Field 'labels' cannot be set. It is not on the appropriate screen, or unknown."}}
    assert fake_jira.issues == []
    created = c.create_issue(fields={**TASK, "summary": "s"}, prefetch=False)  # the fallback: label afterwards
    c.issue(created.key).add_field_value("labels", "opsflow")
    assert fake_jira.issue(created.key).labels == ["opsflow"]
    c.create_issue(fields={"project": {"key": "FIN"}, "issuetype": {"name": "Bug"}, "summary": "s",
                           "labels": ["ok"]}, prefetch=False)  # other projects unaffected


@BOTH
def test_bad_credentials_are_401(fake_jira: FakeJira) -> None:
    good = client(fake_jira)
    wrong = {"basic_auth": (fake_jira.email, "wrong")} if fake_jira.cloud else {"token_auth": "wrong"}
    with pytest.raises(JIRAError) as caught:
        JIRA(server=fake_jira.url, timeout=5, **wrong)  # type: ignore[arg-type]  # serverInfo fails already
    assert (caught.value.status_code, caught.value.text) == (401, AUTH_FAILED)
    assert caught.value.response.json() == {"errorMessages": [AUTH_FAILED], "errors": {}}

    anonymous = JIRA(server=fake_jira.url, timeout=5)  # serverInfo is public, as on real Jira
    with pytest.raises(JIRAError) as caught:
        anonymous.myself()
    assert (caught.value.status_code, caught.value.text) == (401, NOT_AUTHENTICATED)

    fake_jira.expire_token()
    with pytest.raises(JIRAError) as caught:
        good.create_issue(fields={**TASK, "summary": "s"}, prefetch=False)
    assert caught.value.status_code == 401 and fake_jira.issues == []
    fake_jira.expire_token(False)
    assert good.create_issue(fields={**TASK, "summary": "s"}, prefetch=False).key == "OPS-1"


def test_mode_switch_changes_expected_auth(fake_jira: FakeJira) -> None:
    cloud = client(fake_jira)
    fake_jira.mode = "server"  # e.g. a connection still holding Cloud credentials
    with pytest.raises(JIRAError) as caught:
        cloud.myself()
    assert caught.value.status_code == 401
    assert client(fake_jira).server_info()["deploymentType"] == "Server"
    with pytest.raises(ValueError, match="mode must be one of"):
        fake_jira.mode = "datacenter"


@BOTH
def test_airflow_connection(fake_jira: FakeJira, jira_conn: str) -> None:
    from airflow.models.connection import Connection

    conn = Connection.get_connection_from_secrets(jira_conn)
    assert (conn.conn_type, conn.host, conn.extra_dejson) == ("opsflow_jira", fake_jira.url,
                                                              {"deployment": fake_jira.mode})
    if fake_jira.cloud:
        assert (conn.login, conn.password) == (fake_jira.email, fake_jira.api_token)
        c = JIRA(server=conn.host, basic_auth=(conn.login, conn.password), timeout=5)
    else:
        assert (conn.login or "", conn.password) == ("", fake_jira.pat)
        c = JIRA(server=conn.host, token_auth=conn.password, timeout=5)
    assert c.myself()["displayName"] == "opsflow bot"
    other = json.loads(fake_jira.jira_connection("jira_other", mode="server")["AIRFLOW_CONN_JIRA_OTHER"])
    assert other == {"conn_type": "opsflow_jira", "host": fake_jira.url, "login": "", "password": fake_jira.pat,
                     "extra": {"deployment": "server"}}


def test_seeding_recording_and_reset(fake_jira: FakeJira) -> None:
    old = fake_jira.add_issue("FIN", "old incident", labels=["x"], status="Done", resolution="Won't Fix")
    assert (old.key, old.status_category, old.resolution) == ("FIN-1", "done", "Won't Fix")
    c = client(fake_jira)
    start = fake_jira.mark()
    c.create_issue(fields={**TASK, "summary": "s"}, prefetch=False)
    c.add_comment("OPS-1", "c")
    assert [r.name for r in fake_jira.calls(since=start)] == ["create", "comment"]
    assert [r.name for r in fake_jira.writes(since=start)] == ["create", "comment"]
    assert [r.status for r in fake_jira.calls("POST", "/rest/api/2/issue/OPS-1")] == [201]
    assert [i.key for i in fake_jira.issues] == ["FIN-1", "OPS-1"]
    with pytest.raises(LookupError):
        fake_jira.issue("OPS-2")
    with pytest.raises(ValueError, match="unknown operation"):
        fake_jira.fail_next("creat")
    fake_jira.reset()
    assert fake_jira.issues == [] and fake_jira.requests == []
