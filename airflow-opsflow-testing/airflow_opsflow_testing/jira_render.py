"""How :class:`~airflow_opsflow_testing.jira_server.FakeJira` renders objects: as Jira's REST v2 returns them.

Users differ by deployment: Cloud identifies them by ``accountId`` (no ``name``), Server/DC by ``name``/``key``.
Timestamps use Jira's format, ``2024-05-01T12:34:56.789+0000``.
"""

from __future__ import annotations

from datetime import datetime

from airflow_opsflow_testing.jira_schema import (
    CATEGORIES,
    CUSTOM_FIELDS,
    ISSUE_TYPES,
    PRIORITIES,
    RESOLUTIONS,
    STATUSES,
    JiraProject,
    JiraUser,
    JsonDict,
    Transition,
    component_id,
    jira_time,
    lookup,
)
from airflow_opsflow_testing.jira_tracker import JiraComment, JiraIssue

ISSUE_EXPAND = "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations"


def render_user(user: JiraUser, base: str, cloud: bool) -> JsonDict:
    out: JsonDict = {"emailAddress": user.email, "displayName": user.display_name, "active": True,
                     "timeZone": "Etc/UTC", "avatarUrls": {"48x48": f"{base}/secure/useravatar?size=large"}}
    if cloud:
        out.update(self=f"{base}/rest/api/2/user?accountId={user.account_id}", accountId=user.account_id,
                   accountType="atlassian")
    else:
        out.update(self=f"{base}/rest/api/2/user?username={user.name}", name=user.name, key=user.name)
    return out


# --- static REST objects ----------------------------------------------------------------------------------

def render_status(name: str, base: str) -> JsonDict:
    s = STATUSES[name]
    c = CATEGORIES[s.category]
    return {"self": f"{base}/rest/api/2/status/{s.id}", "description": "", "iconUrl": f"{base}/images/status.png",
            "name": s.name, "id": s.id,
            "statusCategory": {"self": f"{base}/rest/api/2/statuscategory/{c.id}", "id": c.id, "key": c.key,
                               "colorName": c.color, "name": c.name}}


def render_resolution(row: tuple[str, ...], base: str) -> JsonDict:
    return {"self": f"{base}/rest/api/2/resolution/{row[0]}", "id": row[0], "name": row[1], "description": row[2]}


def render_priority(row: tuple[str, ...], base: str) -> JsonDict:
    return {"self": f"{base}/rest/api/2/priority/{row[0]}", "id": row[0], "name": row[1], "statusColor": row[2],
            "description": row[1], "iconUrl": f"{base}/images/icons/priorities/{row[1].lower()}.svg"}


def render_issue_type(name: str, base: str) -> JsonDict:
    tid = ISSUE_TYPES[name]
    return {"self": f"{base}/rest/api/2/issuetype/{tid}", "id": tid, "name": name, "description": name,
            "subtask": False, "hierarchyLevel": 0, "iconUrl": f"{base}/images/icons/issuetypes/{name.lower()}.svg"}


def render_project(p: JiraProject, base: str, *, full: bool) -> JsonDict:
    out: JsonDict = {"self": f"{base}/rest/api/2/project/{p.id}", "id": p.id, "key": p.key, "name": p.name,
                     "projectTypeKey": "software", "simplified": False,
                     "avatarUrls": {"48x48": f"{base}/secure/projectavatar?pid={p.id}"}}
    if full:
        out.update(expand="description,lead,issueTypes,url,projectKeys,permissions,insight", description="",
                   issueTypes=[render_issue_type(t, base) for t in p.issue_types],
                   components=[render_component(p, c, base) for c in p.components], projectKeys=[p.key])
    return out


def render_component(p: JiraProject, name: str, base: str) -> JsonDict:
    cid = component_id(p, name)
    return {"self": f"{base}/rest/api/2/component/{cid}", "id": cid, "name": name}


def server_info(base: str, cloud: bool, now: datetime) -> JsonDict:
    if cloud:
        version, numbers, build = "1001.0.0-SNAPSHOT", [1001, 0, 0], 100289
    else:
        version, numbers, build = "9.12.15", [9, 12, 15], 9120015
    return {"baseUrl": base, "version": version, "versionNumbers": numbers,
            "deploymentType": "Cloud" if cloud else "Server", "buildNumber": build,
            "buildDate": "2025-01-01T00:00:00.000+0000", "serverTime": jira_time(now), "scmInfo": "opsflow-fake",
            "serverTitle": "Jira (opsflow fake)", "defaultLocale": {"locale": "en_US"}, "serverTimeZone": "Etc/UTC"}


def render_issue(issue: JiraIssue, project: JiraProject, base: str, cloud: bool, fields: set[str],
                 transitions: list[Transition] | None = None) -> JsonDict:
    """An issue with only ``fields`` (see ``select_fields``); ``transitions`` when ``expand=transitions``."""

    def user(u: JiraUser | None) -> JsonDict | None:
        return render_user(u, base, cloud) if u else None

    comments = [render_comment(issue, c, base, cloud) for c in issue.comments]
    res = lookup(RESOLUTIONS, issue.resolution) if issue.resolution else None
    values: JsonDict = {
        "summary": issue.summary, "description": issue.description,
        "project": render_project(project, base, full=False), "issuetype": render_issue_type(issue.issuetype, base),
        "status": render_status(issue.status, base), "resolution": render_resolution(res, base) if res else None,
        "resolutiondate": jira_time(issue.resolutiondate) if issue.resolutiondate else None,
        "created": jira_time(issue.created), "updated": jira_time(issue.updated), "labels": list(issue.labels),
        "priority": render_priority(lookup(PRIORITIES, issue.priority) or PRIORITIES[2], base),
        "assignee": user(issue.assignee), "reporter": user(issue.reporter),
        "components": [render_component(project, n, base) for n in issue.components],
        "comment": {"comments": comments, "maxResults": len(comments), "total": len(comments), "startAt": 0},
        **{cf: issue.custom.get(cf) for cf in sorted(CUSTOM_FIELDS)},
    }
    out: JsonDict = {"expand": ISSUE_EXPAND, "id": str(issue.id), "self": f"{base}/rest/api/2/issue/{issue.id}",
                     "key": issue.key, "fields": {k: v for k, v in values.items() if k in fields}}
    if transitions is not None:
        out["transitions"] = [render_transition(t, base, fields=False) for t in transitions]
    return out


def render_comment(issue: JiraIssue, c: JiraComment, base: str, cloud: bool) -> JsonDict:
    author = render_user(c.author, base, cloud)
    out: JsonDict = {"self": f"{base}/rest/api/2/issue/{issue.id}/comment/{c.id}", "id": c.id, "author": author,
                     "body": c.body, "updateAuthor": author, "created": jira_time(c.created),
                     "updated": jira_time(c.created)}
    if cloud:
        out["jsdPublic"] = True
    return out


def render_transition(t: Transition, base: str, *, fields: bool) -> JsonDict:
    out: JsonDict = {"id": t.id, "name": t.name, "to": render_status(t.to, base), "hasScreen": bool(t.screen),
                     "isGlobal": False, "isInitial": False, "isAvailable": True, "isConditional": False,
                     "isLooped": False}
    if fields:  # expand=transitions.fields: what the transition screen accepts
        out["fields"] = {f: {"required": False, "schema": {"type": f, "system": f}, "name": f.title(), "key": f,
                             "hasDefaultValue": False, "operations": ["set"],
                             "allowedValues": [render_resolution(r, base) for r in RESOLUTIONS]}
                         for f in t.screen}
    return out
