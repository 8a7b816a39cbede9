"""The issues behind :class:`~airflow_opsflow_testing.jira_server.FakeJira`: create, edit, comment, transition, search.

Kept apart from the HTTP layer so Jira's semantics read on their own. Operations take request bodies as
Jira receives them and raise :class:`~.jira_schema.JiraApiError` with Jira's error shape. Writes are
validated on a copy and applied whole (a 400 changes nothing), as Jira does.

Search sees an *index*: every write adds a snapshot that becomes searchable ``search_delay`` seconds
later, so with a delay a new issue is missing from JQL results and an edited one matches in its old state
(Jira Cloud's eventual consistency). Ids passed as ``reconcileIssues`` are read fresh, as Cloud documents.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from airflow_opsflow_testing.jira_jql import JqlContext, JqlError, parse
from airflow_opsflow_testing.jira_schema import (
    CATEGORIES,
    CUSTOM_FIELDS,
    DEFAULT_PRIORITY,
    DEFAULT_RESOLUTION,
    INITIAL_STATUS,
    ISSUE_TYPES,
    NOT_ON_SCREEN,
    PRIORITIES,
    RESOLUTIONS,
    STATUSES,
    TRANSITIONS,
    JiraProject,
    JiraUser,
    Transition,
    bad_request,
    component_id,
    component_of,
    field_errors,
    issue_type_of,
    label_error,
    lookup,
    name_ref,
    not_found,
    user_ref,
)

UNBOUNDED = "Unbounded JQL queries are not allowed here. Please add a search restriction to your query."


@dataclass
class JiraComment:
    id: str
    body: str
    author: JiraUser
    created: datetime


@dataclass(frozen=True)
class TransitionRecord:
    """One transition an issue went through (``fake.issue(key).transitions``)."""

    name: str
    from_status: str
    to_status: str
    resolution: str | None
    at: datetime


@dataclass
class JiraIssue:
    """One issue as the fake holds it; ``FakeJira.issues`` / ``issue(key)`` return copies."""

    id: int
    key: str
    project: str
    issuetype: str
    summary: str
    created: datetime
    updated: datetime
    description: str | None = None
    status: str = INITIAL_STATUS
    resolution: str | None = None
    resolutiondate: datetime | None = None
    labels: list[str] = field(default_factory=list)
    priority: str = DEFAULT_PRIORITY
    assignee: JiraUser | None = None
    reporter: JiraUser | None = None
    components: list[str] = field(default_factory=list)
    custom: dict[str, Any] = field(default_factory=dict)  # customfield_... -> value
    comments: list[JiraComment] = field(default_factory=list)
    transitions: list[TransitionRecord] = field(default_factory=list)

    @property
    def status_category(self) -> str:
        """``new``, ``indeterminate`` or ``done``."""
        return STATUSES[self.status].category


class JiraTracker:
    """The issues of one fake Jira site. Public methods are thread-safe (the HTTP server is threaded)."""

    def __init__(self, projects: Iterable[JiraProject], users: Sequence[JiraUser], public_url: Callable[[], str],
                 cloud: Callable[[], bool]) -> None:
        self.projects = {p.key: p for p in projects}
        self.users = list(users)
        self._public_url, self._cloud = public_url, cloud
        self.lock = threading.RLock()
        self.search_delay = 0.0
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.issues: dict[int, JiraIssue] = {}
            self._keys: dict[str, int] = {}
            self._index: dict[int, list[tuple[float, JiraIssue]]] = {}  # id -> (searchable from, snapshot)
            self._next_id = 10001
            self._next_comment = 10100

    @staticmethod
    def now() -> datetime:
        value = datetime.now(UTC)
        return value.replace(microsecond=value.microsecond // 1000 * 1000)

    # --- look-ups ------------------------------------------------------------------------------------------

    def find(self, ref: str) -> JiraIssue:
        with self.lock:
            iid = int(ref) if ref.isdigit() else self._keys.get(ref.upper())
            if iid is None or iid not in self.issues:
                raise not_found("Issue does not exist or you do not have permission to see it.")
            return self.issues[iid]

    def project(self, ref: Any) -> JiraProject | None:
        if isinstance(ref, dict):
            ref = ref.get("key", ref.get("id"))
        return next((p for p in self.projects.values() if str(ref) in (p.key, p.id)), None)

    def user(self, ref: Any) -> JiraUser | None:
        """A user from ``{"accountId": ...}`` (Cloud) or ``{"name": ...}`` (Server/DC)."""
        if not isinstance(ref, dict):
            return None
        wanted = ref.get("accountId") if self._cloud() else ref.get("name", ref.get("key"))
        return next((u for u in self.users if wanted in ((u.account_id,) if self._cloud() else (u.name,))), None)

    # --- fields --------------------------------------------------------------------------------------------

    def _set(self, issue: JiraIssue, project: JiraProject, fid: str, value: Any) -> str | None:
        """Set one field on ``issue``; the error message, or None."""
        if fid == "summary":
            if not isinstance(value, str) or not value.strip():
                return "You must specify a summary of the issue."
            if "\n" in value or "\r" in value:
                return "The summary is invalid because it contains newline characters."
            if len(value) > 255:
                return "Summary must be less than 255 characters."
            issue.summary = value
        elif fid == "description":
            if value is not None and not isinstance(value, str):
                return "Operation value must be a string"
            issue.description = value
        elif fid == "labels":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                return "Operation value must be a list of strings"
            if error := next(filter(None, map(label_error, value)), None):
                return error
            issue.labels = sorted(set(value))
        elif fid == "priority":
            row = lookup(PRIORITIES, value)
            if row is None:
                return "The priority selected is invalid."
            issue.priority = row[1]
        elif fid in ("assignee", "reporter"):
            user = None if value is None else self.user(value)
            if value is not None and user is None:
                return f"User '{user_ref(value)}' does not exist."
            setattr(issue, fid, user)
        elif fid == "components":
            names = []
            for ref in value if isinstance(value, list) else [value]:
                name = component_of(project, ref)
                if name is None:
                    return f"Component name '{name_ref(ref)}' is not valid"
                names.append(name)
            issue.components = sorted(set(names), key=names.index)
        elif fid in CUSTOM_FIELDS:
            if value is not None and not isinstance(value, str):
                return "Operation value must be a string"
            issue.custom[fid] = value
        else:
            return NOT_ON_SCREEN.format(fid)
        return None

    def _update(self, issue: JiraIssue, project: JiraProject, update: Any, actor: JiraUser, errors: dict[str, str],
                allowed: Callable[[str], bool]) -> None:
        """Apply ``{"field": [{"add"|"remove"|"set": value}, ...]}`` operations, collecting errors."""
        if not isinstance(update, dict):
            errors["update"] = "Update must be an object"
            return
        for fid, ops in update.items():
            if not allowed(fid):
                errors[fid] = NOT_ON_SCREEN.format(fid)
                continue
            for op in ops if isinstance(ops, list) else [ops]:
                verb, arg = next(iter(op.items())) if isinstance(op, dict) and len(op) == 1 else ("?", None)
                if fid == "comment" and verb == "add" and isinstance(arg, dict):
                    if error := self._comment_error(arg.get("body")):
                        errors[fid] = error
                    else:
                        issue.comments.append(self._comment(str(arg["body"]), actor))
                elif fid in ("labels", "components") and verb in ("add", "remove"):
                    current: list[Any] = list(issue.labels if fid == "labels" else issue.components)
                    item = arg if fid == "labels" else component_of(project, arg) or name_ref(arg)
                    new = [*current, item] if verb == "add" else [v for v in current if v != item]
                    refs = new if fid == "labels" else [{"name": n} for n in new]
                    if error := self._set(issue, project, fid, refs):
                        errors[fid] = error
                elif verb == "set" and fid != "comment":
                    if error := self._set(issue, project, fid, arg):
                        errors[fid] = error
                else:
                    errors[fid] = f"Operation '{verb}' is not supported for the field '{fid}'."

    # --- writes --------------------------------------------------------------------------------------------

    def create(self, body: Any, actor: JiraUser) -> JiraIssue:
        fields = body.get("fields") if isinstance(body, dict) else None
        if not isinstance(fields, dict):
            raise field_errors({"project": "project is required", "issuetype": "issue type is required",
                                "summary": "You must specify a summary of the issue."})
        with self.lock:
            project = self.project(fields.get("project"))
            if project is None:
                raise field_errors({"project": "valid project is required" if fields.get("project")
                                    else "project is required"})
            errors: dict[str, str] = {}
            itype = issue_type_of(project, fields.get("issuetype"))
            if itype is None:
                errors["issuetype"] = "valid issue type is required" if fields.get("issuetype") \
                    else "issue type is required"
            now = self.now()
            work = JiraIssue(0, "", project.key, itype or "Task", "", now, now, reporter=actor)
            if "summary" not in fields:
                errors["summary"] = "You must specify a summary of the issue."
            for fid, value in fields.items():
                if fid in ("project", "issuetype"):
                    continue
                if fid == "labels" and not project.labels_on_create_screen:
                    errors[fid] = NOT_ON_SCREEN.format(fid)
                elif error := self._set(work, project, fid, value):
                    errors[fid] = error
            on_screen: Callable[[str], bool] = lambda f: f != "labels" or project.labels_on_create_screen  # noqa: E731
            self._update(work, project, body.get("update") or {}, actor, errors, on_screen)
            if errors:
                raise field_errors(errors)
            number = 1 + sum(1 for i in self.issues.values() if i.project == project.key)
            work.id, work.key = self._next_id, f"{project.key}-{number}"
            self._next_id += 1
            self._keys[work.key] = work.id
            self._commit(work)
            return work

    def edit(self, ref: str, body: Any, actor: JiraUser) -> None:
        if not isinstance(body, dict):
            raise bad_request("Can not deserialize the request body.")
        with self.lock:
            work = copy.deepcopy(self.find(ref))
            project = self.projects[work.project]
            errors: dict[str, str] = {}
            for fid, value in (body.get("fields") or {}).items():
                if error := self._set(work, project, fid, value):
                    errors[fid] = error
            self._update(work, project, body.get("update") or {}, actor, errors, lambda f: True)
            if errors:
                raise field_errors(errors)
            work.updated = self.now()
            self._commit(work)

    def add_comment(self, ref: str, body: Any, actor: JiraUser) -> tuple[JiraIssue, JiraComment]:
        text = body.get("body") if isinstance(body, dict) else None
        if error := self._comment_error(text):
            raise field_errors({"comment": error})
        with self.lock:
            work = copy.deepcopy(self.find(ref))
            comment = self._comment(str(text), actor)
            work.comments.append(comment)
            work.updated = comment.created
            self._commit(work)
            return work, comment

    def available(self, issue: JiraIssue) -> list[Transition]:
        return [t for t in TRANSITIONS if issue.status in t.sources]

    def transition(self, ref: str, body: Any, actor: JiraUser) -> None:
        wanted = body.get("transition") if isinstance(body, dict) else None
        tid = wanted.get("id") if isinstance(wanted, dict) else None
        if tid is None:
            raise bad_request("Missing 'transition' identifier")
        with self.lock:
            work = copy.deepcopy(self.find(ref))
            trans = next((t for t in self.available(work) if t.id == str(tid)), None)
            if trans is None:
                raise bad_request(f"Transition id '{tid}' is not valid for this issue.")
            errors: dict[str, str] = {}
            resolution = None
            for fid, value in (body.get("fields") or {}).items():
                if fid not in trans.screen:
                    errors[fid] = NOT_ON_SCREEN.format(fid)
                elif (row := lookup(RESOLUTIONS, value)) is None:
                    errors[fid] = f"Resolution '{name_ref(value)}' does not exist."
                else:
                    resolution = row[1]
            project = self.projects[work.project]
            self._update(work, project, body.get("update") or {}, actor, errors, lambda f: f == "comment")
            if errors:
                raise field_errors(errors)
            now = self.now()
            done = STATUSES[trans.to].category == "done"
            work.transitions.append(TransitionRecord(trans.name, work.status, trans.to,
                                                     (resolution or DEFAULT_RESOLUTION) if done else None, now))
            work.status = trans.to
            work.resolution = (resolution or DEFAULT_RESOLUTION) if done else None
            work.resolutiondate = now if done else None
            work.updated = now
            self._commit(work)

    def seed(self, issue: JiraIssue) -> JiraIssue:
        """Store an issue built by ``FakeJira.add_issue``: numbered now, searchable at once (it is "old")."""
        with self.lock:
            number = 1 + sum(1 for i in self.issues.values() if i.project == issue.project)
            issue.id, issue.key = self._next_id, f"{issue.project}-{number}"
            self._next_id += 1
            self._keys[issue.key] = issue.id
            self.issues[issue.id] = issue
            self._index[issue.id] = [(0.0, copy.deepcopy(issue))]
            return issue

    def set_search_delay(self, seconds: float) -> None:
        """From now on writes lag ``seconds`` behind search; pending ones become visible within that too."""
        with self.lock:
            self.search_delay = max(0.0, seconds)
            latest = time.monotonic() + self.search_delay
            for versions in self._index.values():
                versions[:] = [(min(at, latest), snapshot) for at, snapshot in versions]

    def _commit(self, issue: JiraIssue) -> None:
        self.issues[issue.id] = issue
        now = time.monotonic()
        versions = self._index.setdefault(issue.id, [])
        versions.append((now + self.search_delay, copy.deepcopy(issue)))
        while len(versions) > 1 and versions[1][0] <= now:  # older snapshots no search can see any more
            versions.pop(0)

    def _comment(self, body: str, actor: JiraUser) -> JiraComment:
        self._next_comment += 1
        return JiraComment(str(self._next_comment), body, actor, self.now())

    @staticmethod
    def _comment_error(body: Any) -> str | None:
        return None if isinstance(body, str) and body.strip() else "Comment body can not be empty!"

    # --- search --------------------------------------------------------------------------------------------

    def search(self, jql: str, *, actor: JiraUser | None, reconcile: Sequence[int] = (), lenient: bool = False,
               bounded: bool = False) -> tuple[list[JiraIssue], list[str]]:
        """Issues matching ``jql`` as the index sees them, in the query's order, and any warnings."""
        with self.lock:
            values = self._jql_values()
            ctx = JqlContext(values, self._key_exists, actor.aliases() if actor else set(), self.now(), lenient)
            try:
                query = parse(jql, ctx)
            except JqlError as e:
                raise bad_request(str(e)) from None
            if bounded and query.where is None:
                raise bad_request(UNBOUNDED)
            if missing := [i for i in reconcile if i not in self.issues]:
                raise bad_request(f"Issues to reconcile do not exist: {missing}")
            now = time.monotonic()
            seen = []
            for iid, versions in self._index.items():
                if iid in reconcile:
                    seen.append(self.issues[iid])
                elif visible := [snapshot for at, snapshot in versions if at <= now]:
                    seen.append(visible[-1])
            docs = [d for d in map(self._doc, seen) if query.matches(d)]
            return [d["_issue"] for d in query.sort(docs)], ctx.warnings

    def _key_exists(self, value: str) -> bool:
        return (int(value) in self.issues) if value.isdigit() else value.upper() in self._keys

    def _jql_values(self) -> dict[str, set[str]]:
        comps = {a for p in self.projects.values() for c in p.components for a in (c.lower(), component_id(p, c))}
        return {
            "project": {a for p in self.projects.values() for a in (p.key.lower(), p.name.lower(), p.id)},
            "status": {a for s in STATUSES.values() for a in (s.name.lower(), s.id)},
            "statuscategory": {a for c in CATEGORIES.values() for a in (c.key, c.name.lower(), str(c.id))},
            "resolution": {a for r in RESOLUTIONS for a in (r[1].lower(), r[0])},
            "priority": {a for r in PRIORITIES for a in (r[1].lower(), r[0])},
            "issuetype": {a for n, i in ISSUE_TYPES.items() for a in (n.lower(), i)},
            "components": comps,
            "assignee": {a for u in self.users for a in u.aliases()},
            "reporter": {a for u in self.users for a in u.aliases()},
        }

    def _doc(self, i: JiraIssue) -> dict[str, Any]:
        p, s = self.projects[i.project], STATUSES[i.status]
        c = CATEGORIES[s.category]
        prio = [r[1] for r in PRIORITIES].index(i.priority)
        res = lookup(RESOLUTIONS, i.resolution) if i.resolution else None
        return {
            "_issue": i, "key": [{i.key.lower(), str(i.id)}], "project": [{p.key.lower(), p.name.lower(), p.id}],
            "labels": [{label.lower()} for label in i.labels], "status": [{s.name.lower(), s.id}],
            "statuscategory": [{c.key, c.name.lower(), str(c.id)}],
            "resolution": [{res[1].lower(), res[0]}] if res else [],
            "priority": [{i.priority.lower(), PRIORITIES[prio][0]}],
            "issuetype": [{i.issuetype.lower(), ISSUE_TYPES[i.issuetype]}],
            "components": [{n.lower(), component_id(p, n)} for n in i.components],
            "assignee": [i.assignee.aliases()] if i.assignee else [],
            "reporter": [i.reporter.aliases()] if i.reporter else [],
            "created": i.created, "updated": i.updated, "resolutiondate": i.resolutiondate,
            "sort:key": (p.key, int(i.key.rpartition("-")[2])), "sort:project": p.key, "sort:status": s.order,
            "sort:statuscategory": ("new", "indeterminate", "done").index(c.key),
            "sort:priority": len(PRIORITIES) - prio,  # ascending = Lowest first, as Jira sorts priorities
            "sort:created": i.created, "sort:updated": i.updated, "sort:resolutiondate": i.resolutiondate,
        }


__all__ = ["JiraComment", "JiraIssue", "JiraTracker", "TransitionRecord"]
