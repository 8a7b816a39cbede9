"""The fixed configuration behind :class:`~airflow_opsflow_testing.jira_server.FakeJira`, and Jira's error shape.

One small Jira site: projects with issue types Task/Bug/Incident, Jira's default priorities and resolutions,
a three-status workflow (To Do → In Progress → Done, "Reopen" back) and a field list with two custom
fields. Objects render as Jira's REST v2 returns them; users differ by deployment (Cloud identifies them by
``accountId``, Server/Data Center by ``name``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

JsonDict = dict[str, Any]

CLOUD = "cloud"
SERVER = "server"
MODES = (CLOUD, SERVER)

NOT_ON_SCREEN = "Field '{}' cannot be set. It is not on the appropriate screen, or unknown."


class JiraApiError(Exception):
    """A refused request, answered as Jira does: ``{"errorMessages": [...], "errors": {field: message}}``."""

    def __init__(self, status: int, messages: Sequence[str] = (), errors: Mapping[str, str] | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        self.status = status
        self.messages = list(messages)
        self.errors = dict(errors or {})
        self.headers = dict(headers or {})
        super().__init__(", ".join([*self.messages, *self.errors.values()]))

    def body(self) -> JsonDict:
        return {"errorMessages": self.messages, "errors": self.errors}


def not_found(message: str) -> JiraApiError:
    return JiraApiError(404, [message])


def bad_request(message: str) -> JiraApiError:
    return JiraApiError(400, [message])


def field_errors(errors: Mapping[str, str]) -> JiraApiError:
    return JiraApiError(400, [], errors)


def jira_time(value: datetime) -> str:
    """Jira's timestamp format: ``2024-05-01T12:34:56.789+0000``."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


# --- statuses, workflow, resolutions, priorities, issue types -----------------------------------------------

@dataclass(frozen=True)
class StatusCategory:
    id: int
    key: str  # "new" | "indeterminate" | "done": what clients should test, names are localised
    name: str
    color: str


CATEGORIES = {
    "new": StatusCategory(2, "new", "To Do", "blue-gray"),
    "indeterminate": StatusCategory(4, "indeterminate", "In Progress", "yellow"),
    "done": StatusCategory(3, "done", "Done", "green"),
}


@dataclass(frozen=True)
class Status:
    id: str
    name: str
    category: str  # a CATEGORIES key
    order: int  # the workflow position ORDER BY status sorts by


STATUSES = {s.name: s for s in (Status("10000", "To Do", "new", 1), Status("3", "In Progress", "indeterminate", 2),
                                Status("10001", "Done", "done", 3))}
INITIAL_STATUS = "To Do"


@dataclass(frozen=True)
class Transition:
    id: str
    name: str
    to: str  # a STATUSES name
    sources: tuple[str, ...]  # statuses it is available from
    screen: tuple[str, ...] = ()  # fields the transition screen lets a client set


TRANSITIONS = (
    Transition("11", "To Do", "To Do", ("In Progress",)),
    Transition("21", "In Progress", "In Progress", ("To Do",)),
    Transition("31", "Done", "Done", ("To Do", "In Progress"), ("resolution",)),
    Transition("41", "Reopen", "To Do", ("Done",)),
)
DEFAULT_RESOLUTION = "Done"  # set by the Done transition when the client names none

# (id, name, description); a resolution set means "resolved" to Jira, whatever the status.
RESOLUTIONS = (("10000", "Done", "Work has been completed on this issue."),
               ("10001", "Won't Fix", "This issue won't be actioned."),
               ("10002", "Duplicate", "The problem is a duplicate of an existing issue."),
               ("10003", "Cannot Reproduce", "The problem couldn't be reproduced."))
# (id, name, colour), highest first: Jira's default scheme.
PRIORITIES = (("1", "Highest", "#d04437"), ("2", "High", "#f15c75"), ("3", "Medium", "#f79232"),
              ("4", "Low", "#707070"), ("5", "Lowest", "#999999"))
DEFAULT_PRIORITY = "Medium"
ISSUE_TYPES = {"Task": "10001", "Bug": "10004", "Incident": "10010"}


def lookup(table: Sequence[tuple[str, ...]], ref: Any) -> tuple[str, ...] | None:
    """The row of ``table`` a ``{"id": ...}`` / ``{"name": ...}`` reference (or a bare name) points at."""
    if isinstance(ref, str):
        ref = {"name": ref}
    if not isinstance(ref, dict):
        return None
    if "id" in ref:
        return next((row for row in table if row[0] == str(ref["id"])), None)
    return next((row for row in table if row[1] == ref.get("name")), None)


# --- projects and users -----------------------------------------------------------------------------------

@dataclass
class JiraProject:
    """A project of the fake site. ``labels_on_create_screen=False`` makes a create that sets labels fail."""

    key: str
    name: str
    id: str = ""
    issue_types: tuple[str, ...] = tuple(ISSUE_TYPES)
    components: tuple[str, ...] = ()
    labels_on_create_screen: bool = True


DEFAULT_PROJECTS = (
    JiraProject("OPS", "Operations", "10000", components=("database", "pipelines", "reporting")),
    JiraProject("FIN", "Finance", "10001", components=("billing", "ledger")),
)


@dataclass(frozen=True)
class JiraUser:
    account_id: str  # Cloud's identifier
    name: str  # Server/DC's identifier
    email: str
    display_name: str

    def aliases(self) -> set[str]:
        return {self.account_id.lower(), self.name.lower(), self.email.lower(), self.display_name.lower()}


# --- fields -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FieldDef:
    id: str
    name: str
    schema: JsonDict
    clause_names: tuple[str, ...]
    navigable: bool = True
    orderable: bool = True  # settable through create/edit (as Jira's /field reports it)

    @property
    def custom(self) -> bool:
        return self.id.startswith("customfield_")

    def render(self) -> JsonDict:
        out: JsonDict = {"id": self.id, "key": self.id, "name": self.name, "custom": self.custom,
                         "orderable": self.orderable, "navigable": self.navigable, "searchable": True,
                         "clauseNames": list(self.clause_names), "schema": self.schema}
        if self.custom:
            out["untranslatedName"] = self.name
        return out


def _sys(kind: str, system: str, items: str | None = None) -> JsonDict:
    return {"type": kind, "system": system, **({"items": items} if items else {})}


def _custom(kind: str, plugin: str, cid: int) -> JsonDict:
    return {"type": kind, "custom": f"com.atlassian.jira.plugin.system.customfieldtypes:{plugin}", "customId": cid}


FIELDS = (
    FieldDef("issuekey", "Key", {}, ("id", "issue", "issuekey", "key"), orderable=False),
    FieldDef("summary", "Summary", _sys("string", "summary"), ("summary",)),
    FieldDef("description", "Description", _sys("string", "description"), ("description",)),
    FieldDef("project", "Project", _sys("project", "project"), ("project",)),
    FieldDef("issuetype", "Issue Type", _sys("issuetype", "issuetype"), ("issuetype", "type")),
    FieldDef("status", "Status", _sys("status", "status"), ("status",), orderable=False),
    FieldDef("statusCategory", "Status Category", _sys("statusCategory", "statusCategory"), ("statusCategory",),
             orderable=False),
    FieldDef("resolution", "Resolution", _sys("resolution", "resolution"), ("resolution",)),
    FieldDef("resolutiondate", "Resolved", _sys("datetime", "resolutiondate"), ("resolutiondate", "resolved"),
             orderable=False),
    FieldDef("created", "Created", _sys("datetime", "created"), ("created", "createdDate"), orderable=False),
    FieldDef("updated", "Updated", _sys("datetime", "updated"), ("updated", "updatedDate"), orderable=False),
    FieldDef("labels", "Labels", _sys("array", "labels", "string"), ("labels",)),
    FieldDef("priority", "Priority", _sys("priority", "priority"), ("priority",)),
    FieldDef("assignee", "Assignee", _sys("user", "assignee"), ("assignee",)),
    FieldDef("reporter", "Reporter", _sys("user", "reporter"), ("reporter",)),
    FieldDef("components", "Components", _sys("array", "components", "component"), ("component",)),
    FieldDef("comment", "Comment", _sys("comments-page", "comment"), ("comment",), navigable=False),
    FieldDef("customfield_10010", "Team", _custom("string", "textfield", 10010), ("cf[10010]", "Team")),
    FieldDef("customfield_10011", "Runbook", _custom("string", "url", 10011), ("cf[10011]", "Runbook")),
)
FIELD_IDS = {f.id for f in FIELDS if f.id not in ("issuekey", "statusCategory")}  # what an issue's fields hold
CUSTOM_FIELDS = {f.id for f in FIELDS if f.custom}


def select_fields(requested: Sequence[str] | None, default: str) -> set[str]:
    """Which fields an issue is rendered with, from a ``fields`` parameter (ids, ``*all``, ``*navigable``, ``-id``).

    Unknown ids are ignored and ``id`` alone means "no fields", as Jira does.
    """
    tokens = [t.strip() for item in (requested or [default]) for t in str(item).split(",") if t.strip()]
    chosen: set[str] = set()
    navigable = {f.id for f in FIELDS if f.navigable} & FIELD_IDS
    for token in tokens:
        if token == "*all":
            chosen |= FIELD_IDS
        elif token == "*navigable":
            chosen |= navigable
        elif not token.startswith("-") and token in FIELD_IDS:
            chosen.add(token)
    for token in tokens:
        if token.startswith("-"):
            chosen.discard(token[1:])
    return chosen


def component_id(p: JiraProject, name: str) -> str:
    return str(int(p.id) * 10 + p.components.index(name))


# --- validation helpers ------------------------------------------------------------------------------------

def label_error(label: str) -> str | None:
    if not label or any(ch.isspace() for ch in label):
        return f"The label '{label}' contains spaces which is invalid."
    if len(label) > 255:
        return f"The label '{label}' exceeds the maximum length for a single label of 255 characters."
    return None


def issue_type_of(project: JiraProject, ref: Any) -> str | None:
    if not isinstance(ref, dict):
        return None
    name = next((n for n, i in ISSUE_TYPES.items() if i == str(ref["id"])), None) if "id" in ref else ref.get("name")
    return name if name in project.issue_types else None


def component_of(project: JiraProject, ref: Any) -> str | None:
    if isinstance(ref, dict) and "id" in ref:
        return next((c for c in project.components if component_id(project, c) == str(ref["id"])), None)
    name = name_ref(ref)
    return name if name in project.components else None


def name_ref(ref: Any) -> str:
    return str(ref.get("name", ref.get("id", ""))) if isinstance(ref, dict) else str(ref)


def user_ref(ref: Any) -> str:
    return str(next(iter(ref.values()), "")) if isinstance(ref, dict) and ref else str(ref)
