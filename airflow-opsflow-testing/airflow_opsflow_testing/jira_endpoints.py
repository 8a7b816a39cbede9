"""The endpoints of :class:`~airflow_opsflow_testing.jira_server.FakeJira`: HTTP parameters in, tracker, JSON out.

Parameters are read as Jira reads them: GET query lists may repeat a key or separate values by commas,
POST bodies are JSON. Search differs by deployment, as on the real products:

* Server/DC: ``GET|POST /rest/api/2/search`` with ``startAt``/``maxResults``/``total`` and ``validateQuery``;
* Cloud: ``GET|POST /rest/api/2/search/jql`` with ``nextPageToken``/``isLast`` (no ``total``), only issue ids
  unless ``fields`` are asked for, bounded queries only, and ``reconcileIssues`` (≤ 50 ids) read fresh;
  the old ``/search`` answers 410 Gone, and ``/search/jql`` is unknown (404) in Server mode.
"""

from __future__ import annotations

import base64
import json
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_opsflow_testing.jira_render import (
    render_comment,
    render_issue,
    render_issue_type,
    render_priority,
    render_project,
    render_resolution,
    render_status,
    render_transition,
    render_user,
    server_info,
)
from airflow_opsflow_testing.jira_schema import (
    FIELDS,
    ISSUE_TYPES,
    PRIORITIES,
    RESOLUTIONS,
    STATUSES,
    JiraApiError,
    JiraUser,
    JsonDict,
    bad_request,
    not_found,
    select_fields,
)
from airflow_opsflow_testing.jira_tracker import JiraIssue, JiraTracker

GONE = ("The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. "
        "A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046")
MAX_RECONCILE = 50
Query = dict[str, list[str]]
API = "/rest/api/2"


@dataclass
class Reply:
    status: int
    body: Any = None  # JSON-able; None: no body (204)
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[re.Match[str], Query, Any, JiraUser | None], Reply]
Route = tuple[str, re.Pattern[str], str, Handler]  # (HTTP method, path, operation name, handler)


def _args(q: Query, body: Any, lists: tuple[str, ...]) -> dict[str, Any]:
    """Query parameters (the last value; every value, comma-split, for ``lists``) overlaid by a JSON body."""
    args: dict[str, Any] = {k: ([x for v in vs for x in v.split(",") if x] if k in lists else vs[-1])
                            for k, vs in q.items()}
    if isinstance(body, dict):
        args.update({k: v for k, v in body.items() if v is not None})
    return args


def _int(args: dict[str, Any], name: str, default: int) -> int:
    value = args.get(name, default)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise bad_request(f"The value '{value}' is not valid for the parameter '{name}'.") from None


def _list(value: Any) -> list[str] | None:
    if value is None:
        return None
    items = value if isinstance(value, list) else [value]
    return [x.strip() for v in items for x in str(v).split(",") if x.strip()]


def _token(offset: int, jql: str) -> str:
    raw = json.dumps({"o": offset, "q": zlib.crc32(jql.encode())}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _offset(token: Any, jql: str) -> int:
    if not token:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(str(token) + "=" * (-len(str(token)) % 4)))
        if data["q"] == zlib.crc32(jql.encode()):
            return int(data["o"])
    except (ValueError, KeyError, TypeError):
        pass
    raise bad_request("The provided next page token is invalid or expired.")


class Endpoints:
    """Mixed into FakeJira, which provides ``tracker``, ``max_results``, ``url`` and ``cloud``."""

    tracker: JiraTracker
    max_results: int

    if TYPE_CHECKING:
        @property
        def url(self) -> str: ...

        @property
        def cloud(self) -> bool: ...

    def _route_table(self) -> list[Route]:
        """Every endpoint; the operation names are what ``fail_next``/``calls(name=...)`` take."""
        issue = API + r"/issue/(?P<key>[^/]+)"
        table: list[tuple[str, str, str, Handler]] = [
            ("GET", "/serverInfo", "serverInfo", self._server_info), ("GET", "/myself", "myself", self._myself),
            ("GET", "/field", "field", self._fields), ("GET", "/priority", "priority", self._static),
            ("GET", "/resolution", "resolution", self._static), ("GET", "/status", "status", self._static),
            ("GET", "/issuetype", "issuetype", self._static), ("GET", "/project", "projects", self._projects),
            ("GET", r"/project/(?P<key>[^/]+)", "project", self._project), ("POST", "/issue", "create", self._create),
            ("GET", issue, "issue", self._issue), ("PUT", issue, "edit", self._edit),
            ("GET", issue + "/comment", "comments", self._comments),
            ("POST", issue + "/comment", "comment", self._add_comment),
            ("GET", issue + "/transitions", "transitions", self._transitions),
            ("POST", issue + "/transitions", "transition", self._transition),
            ("GET", "/search", "search", self._search_server), ("POST", "/search", "search", self._search_server),
            ("GET", "/search/jql", "search", self._search_cloud), ("POST", "/search/jql", "search", self._search_cloud),
        ]
        return [(verb, re.compile((path if path.startswith(API) else API + path) + "$"), name, handler)
                for verb, path, name, handler in table]

    def _server_info(self, m: re.Match[str], q: Query, body: Any, actor: JiraUser | None) -> Reply:
        return Reply(200, server_info(self.url, self.cloud, self.tracker.now()))

    def _myself(self, m: re.Match[str], q: Query, body: Any, actor: JiraUser | None) -> Reply:
        assert actor is not None
        return Reply(200, {**render_user(actor, self.url, self.cloud), "locale": "en_US",
                           "groups": {"size": 1, "items": []}, "applicationRoles": {"size": 1, "items": []}})

    def _fields(self, m: re.Match[str], q: Query, body: Any, actor: JiraUser | None) -> Reply:
        return Reply(200, [f.render() for f in FIELDS])

    def _static(self, m: re.Match[str], q: Query, body: Any, actor: JiraUser | None) -> Reply:
        kind, base = m.re.pattern.rstrip("$").rpartition("/")[2], self.url
        items: list[JsonDict] = {
            "priority": lambda: [render_priority(r, base) for r in PRIORITIES],
            "resolution": lambda: [render_resolution(r, base) for r in RESOLUTIONS],
            "status": lambda: [render_status(s, base) for s in STATUSES],
            "issuetype": lambda: [render_issue_type(t, base) for t in ISSUE_TYPES],
        }[kind]()
        return Reply(200, items)

    def _projects(self, m: re.Match[str], q: Query, body: Any, actor: JiraUser | None) -> Reply:
        return Reply(200, [render_project(p, self.url, full=False) for p in self.tracker.projects.values()])

    def _project(self, m: re.Match[str], q: Query, body: Any, actor: JiraUser | None) -> Reply:
        project = self.tracker.project(m["key"])
        if project is None:
            raise not_found(f"No project could be found with key '{m['key']}'.")
        return Reply(200, render_project(project, self.url, full=True))

    def _render(self, issue: JiraIssue, fields: set[str], expand: str) -> JsonDict:
        transitions = self.tracker.available(issue) if "transitions" in expand.split(",") else None
        return render_issue(issue, self.tracker.projects[issue.project], self.url, self.cloud, fields, transitions)

    def _create(self, m: re.Match[str], q: Query, body: Any, actor: JiraUser | None) -> Reply:
        assert actor is not None
        issue = self.tracker.create(body, actor)
        return Reply(201, {"id": str(issue.id), "key": issue.key, "self": f"{self.url}/rest/api/2/issue/{issue.id}"})

    def _issue(self, m: re.Match[str], q: Query, body: Any, actor: JiraUser | None) -> Reply:
        with self.tracker.lock:
            issue = self.tracker.find(m["key"])
            fields = select_fields(_list(q.get("fields")), "*all")
            return Reply(200, self._render(issue, fields, ",".join(q.get("expand", []))))

    def _edit(self, m: re.Match[str], q: Query, body: Any, actor: JiraUser | None) -> Reply:
        assert actor is not None
        self.tracker.edit(m["key"], body, actor)
        return Reply(204)

    def _comments(self, m: re.Match[str], q: Query, body: Any, actor: JiraUser | None) -> Reply:
        args = _args(q, None, ())
        with self.tracker.lock:
            issue = self.tracker.find(m["key"])
            comments = list(issue.comments)
            if str(args.get("orderBy", "")).startswith("-"):
                comments.reverse()
            start, limit = _int(args, "startAt", 0), _int(args, "maxResults", 5000)
            page = [render_comment(issue, c, self.url, self.cloud) for c in comments[start:start + limit]]
        return Reply(200, {"startAt": start, "maxResults": limit, "total": len(comments), "comments": page})

    def _add_comment(self, m: re.Match[str], q: Query, body: Any, actor: JiraUser | None) -> Reply:
        assert actor is not None
        issue, comment = self.tracker.add_comment(m["key"], body, actor)
        return Reply(201, render_comment(issue, comment, self.url, self.cloud))

    def _transitions(self, m: re.Match[str], q: Query, body: Any, actor: JiraUser | None) -> Reply:
        args = _args(q, None, ("expand",))
        with_fields = "transitions.fields" in (args.get("expand") or [])
        with self.tracker.lock:
            available = self.tracker.available(self.tracker.find(m["key"]))
        if "transitionId" in args:
            available = [t for t in available if t.id == args["transitionId"]]
        return Reply(200, {"expand": "transitions",
                           "transitions": [render_transition(t, self.url, fields=with_fields) for t in available]})

    def _transition(self, m: re.Match[str], q: Query, body: Any, actor: JiraUser | None) -> Reply:
        assert actor is not None
        self.tracker.transition(m["key"], body, actor)
        return Reply(204)

    def _search_server(self, m: re.Match[str], q: Query, body: Any, actor: JiraUser | None) -> Reply:
        if self.cloud:
            raise JiraApiError(410, [GONE])
        args = _args(q, body, ("fields", "expand"))
        jql = str(args.get("jql") or "")
        start = max(0, _int(args, "startAt", 0))
        limit = min(max(0, _int(args, "maxResults", 50)), self.max_results)
        lenient = str(args.get("validateQuery", "strict")).lower() in ("false", "none", "warn")
        with self.tracker.lock:
            found, warnings = self.tracker.search(jql, actor=actor, lenient=lenient)
            fields = select_fields(_list(args.get("fields")), "*navigable")
            expand = ",".join(_list(args.get("expand")) or [])
            issues = [self._render(i, fields, expand) for i in found[start:start + limit]]
        out = {"expand": "schema,names", "startAt": start, "maxResults": limit, "total": len(found), "issues": issues}
        if warnings:
            out["warningMessages"] = warnings
        return Reply(200, out)

    def _search_cloud(self, m: re.Match[str], q: Query, body: Any, actor: JiraUser | None) -> Reply:
        if not self.cloud:
            raise not_found(f"null for uri: {self.url}/rest/api/2/search/jql")
        args = _args(q, body, ("fields", "expand", "reconcileIssues", "properties"))
        jql = str(args.get("jql") or "")
        try:
            reconcile = [int(i) for i in args.get("reconcileIssues") or []]
        except (TypeError, ValueError):
            raise bad_request("reconcileIssues must be a list of issue ids (numbers).") from None
        if len(reconcile) > MAX_RECONCILE:
            raise bad_request(f"reconcileIssues accepts at most {MAX_RECONCILE} issue ids.")
        start = _offset(args.get("nextPageToken"), jql)
        limit = min(max(1, _int(args, "maxResults", 50)), self.max_results)
        with self.tracker.lock:
            found, _ = self.tracker.search(jql, actor=actor, reconcile=reconcile, bounded=True)
            fields = select_fields(_list(args.get("fields")), "id")
            expand = ",".join(_list(args.get("expand")) or [])
            issues = [self._render(i, fields, expand) for i in found[start:start + limit]]
        out: dict[str, Any] = {"issues": issues, "isLast": start + limit >= len(found)}
        if not out["isLast"]:
            out["nextPageToken"] = _token(start + limit, jql)
        return Reply(200, out)
