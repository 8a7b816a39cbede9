"""What a report is: named queries, then a small set of pandas steps over the frames they return.

The steps are data (Python dicts or YAML), validated when the DAG is parsed, each error naming the step
and the field. Every step reads one frame (``frame``, default the previous step's result; for the first
step, the first query's) and writes one (``into``, default the frame it read), so a report reads top to
bottom like a notebook.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from airflow_opsflow.checks.api_spec import (
    ApiSpec,
    HubSpotSource,
    SalesforceSource,
    ZendeskSource,
    with_system_connection,
)

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
Agg = Literal["sum", "mean", "median", "min", "max", "count", "nunique", "first", "last"]
AGGS = ("sum", "mean", "median", "min", "max", "count", "nunique", "first", "last")


class ReportSpecError(ValueError):
    """A report spec is invalid; the message names the step and field at fault."""


def _frame_name(v: str | None) -> str | None:
    if v is not None and not _NAME.match(v):
        raise ValueError(f"{v!r} is not a frame name (letters, digits and _)")
    return v


class Query(BaseModel):
    """One query of the report: SQL on a database, or records of a CRM or support API.

    An API query (``hubspot``, ``salesforce`` or ``zendesk``, as a reconcile side gives them: see
    :class:`~airflow_opsflow.checks.monitor_spec.ReconcileSide`) is staged page by page in a throwaway
    SQLite database, where ``sql`` then runs (SQLite SQL on the table named after the object or export:
    ``SELECT domain, tier FROM companies``; default: every record, ``SELECT *``).

    :param name: the frame it produces.
    :param sql: the query (templated).
    :param conn_id: its connection (default: the operator's ``conn_id``; an API's: the system's default).
    :param hubspot: HubSpot objects: ``{object, properties, filters}``.
    :param salesforce: a SOQL query: ``{soql}``.
    :param zendesk: an incremental export: ``{export, start_time}``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    sql: str | None = Field(default=None, min_length=1)
    conn_id: str | None = None
    hubspot: HubSpotSource | None = None
    salesforce: SalesforceSource | None = None
    zendesk: ZendeskSource | None = None

    _name = field_validator("name")(classmethod(lambda cls, v: _frame_name(v)))

    @model_validator(mode="before")
    @classmethod
    def _system_connection(cls, data: Any) -> Any:
        return with_system_connection(data)

    @model_validator(mode="after")
    def _source(self) -> Query:
        apis = [n for n in ("hubspot", "salesforce", "zendesk") if getattr(self, n) is not None]
        if len(apis) > 1:
            raise ValueError(f"a query reads one API, not {' and '.join(apis)}")
        if not apis and self.sql is None:
            raise ValueError("give 'sql' (or an API to read: 'hubspot', 'salesforce' or 'zendesk')")
        return self

    @property
    def api(self) -> ApiSpec | None:
        return self.hubspot or self.salesforce or self.zendesk

    @property
    def system(self) -> str | None:
        return next((n for n in ("hubspot", "salesforce", "zendesk") if getattr(self, n) is not None), None)


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    frame: str | None = None
    into: str | None = None

    _names = field_validator("frame", "into")(classmethod(lambda cls, v: _frame_name(v)))

    def inputs(self, current: str) -> list[str]:
        return [self.frame or current]


class Merge(_Step):
    """Join ``frame`` with ``right`` on ``on`` (columns named alike) or ``left_on``/``right_on``."""

    op: Literal["merge"]
    right: str
    on: list[str] | None = None
    left_on: list[str] | None = None
    right_on: list[str] | None = None
    how: Literal["inner", "left", "right", "outer"] = "left"
    suffixes: tuple[str, str] = ("", "_right")

    @model_validator(mode="after")
    def _keys(self) -> Merge:
        if (self.on is None) == (self.left_on is None or self.right_on is None):
            raise ValueError("give 'on', or both 'left_on' and 'right_on'")
        return self

    def inputs(self, current: str) -> list[str]:
        return [self.frame or current, self.right]


class Concat(_Step):
    """Stack ``frames`` (same columns) into one."""

    op: Literal["concat"]
    frames: list[str] = Field(min_length=2)

    def inputs(self, current: str) -> list[str]:
        return list(self.frames)


class Filter(_Step):
    """Keep the rows matching a pandas query expression (``"status == 'failed' and amount > 100"``)."""

    op: Literal["filter"]
    query: str = Field(min_length=1)


class Compute(_Step):
    """Add columns from pandas expressions (``{"margin": "revenue - costs"}``)."""

    op: Literal["compute"]
    columns: dict[str, str] = Field(min_length=1)


class Group(_Step):
    """Group by ``by`` and aggregate: ``{"amount": "sum", "orders": "count"}`` (output column: input
    column), or ``{"revenue": ["amount", "sum"]}`` to name the output."""

    op: Literal["group"]
    by: list[str] = Field(min_length=1)
    agg: dict[str, str | list[str]] = Field(min_length=1)

    @field_validator("agg")
    @classmethod
    def _aggs(cls, v: dict[str, str | list[str]]) -> dict[str, str | list[str]]:
        for out, how in v.items():
            func = how if isinstance(how, str) else (how[1] if len(how) == 2 else None)
            if func not in AGGS:
                raise ValueError(f"{out!r}: give an aggregate ({', '.join(AGGS)}) or [column, aggregate], "
                                 f"got {how!r}")
        return v


class Pivot(_Step):
    """A pivot table: ``index`` rows, one column per ``columns`` value, cells ``aggfunc`` of ``values``."""

    op: Literal["pivot"]
    index: list[str] = Field(min_length=1)
    columns: str
    values: str
    aggfunc: Agg = "sum"
    fill_value: int | float | None = 0


class Sort(_Step):
    """Sort by ``by`` (``ascending`` for all, default True)."""

    op: Literal["sort"]
    by: list[str] = Field(min_length=1)
    ascending: bool = True


class Head(_Step):
    """The first ``n`` rows."""

    op: Literal["head"]
    n: int = Field(ge=0)


class Rename(_Step):
    """Rename columns (``{"amount": "Revenue (EUR)"}``)."""

    op: Literal["rename"]
    columns: dict[str, str] = Field(min_length=1)


class Select(_Step):
    """Keep these columns, in this order."""

    op: Literal["select"]
    columns: list[str] = Field(min_length=1)


class Total(_Step):
    """Append a row summing the numeric columns, labelled ``label`` in the first column."""

    op: Literal["total"]
    label: str = "Total"


class Round(_Step):
    """Round numeric columns to ``decimals``."""

    op: Literal["round"]
    decimals: int = Field(default=2, ge=0, le=10)


Step = Annotated[Merge | Concat | Filter | Compute | Group | Pivot | Sort | Head | Rename | Select | Total | Round,
                 Field(discriminator="op")]
OPS = ("merge", "concat", "filter", "compute", "group", "pivot", "sort", "head", "rename", "select", "total",
       "round")


class ReportSpec(BaseModel):
    """Queries, steps, and which frame is the report (default: the last one written; without steps, the
    first query's)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    queries: list[Query] = Field(min_length=1)
    steps: list[Step] = Field(default_factory=list)
    output: str | None = None

    @model_validator(mode="after")
    def _frames_exist(self) -> ReportSpec:
        names = [q.name for q in self.queries]
        if len(set(names)) != len(names):
            raise ValueError(f"two queries share a name: {names}")
        known, current = set(names), names[0]
        for i, step in enumerate(self.steps):
            for name in step.inputs(current):
                if name not in known:
                    raise ValueError(f"step #{i + 1} ({step.op}) reads frame {name!r}, which no query or "
                                     f"earlier step produces (known: {', '.join(sorted(known))})")
            current = step.into or step.frame or current
            known.add(current)
        if self.output is not None and self.output not in known:
            raise ValueError(f"output {self.output!r} is not a frame of this report "
                             f"(known: {', '.join(sorted(known))})")
        return self

    @property
    def result_frame(self) -> str:
        if self.output:
            return self.output
        current = self.queries[0].name
        for step in self.steps:
            current = step.into or step.frame or current
        return current


def parse(queries: Any, steps: Any = None, output: str | None = None, context: str = "") -> ReportSpec:
    """Validate a report from its parts: ``queries`` as ``{name: sql}``, ``{name: {sql, conn_id}}`` or a
    list of query dicts; ``steps`` as a list of step dicts."""
    who = f" ({context})" if context else ""
    if isinstance(queries, dict):
        queries = [{"name": n, **(q if isinstance(q, dict) else {"sql": q})} for n, q in queries.items()]
    for i, step in enumerate(steps or []):
        if not isinstance(step, dict):
            raise ReportSpecError(f"invalid report spec{who}:\n  - step #{i + 1}: a step is a mapping such as "
                                  f"{{'op': 'sort', 'by': ['amount']}}, got {step!r}")
    try:
        return ReportSpec.model_validate({"queries": queries, "steps": steps or [], "output": output})
    except ValidationError as e:
        lines = []
        for err in e.errors():
            loc = list(err["loc"])
            where = ""
            if loc[:1] == ["steps"] and len(loc) > 1 and isinstance(loc[1], int):
                op = (steps[loc[1]] or {}).get("op", "?") if isinstance(steps, list) and loc[1] < len(steps) else "?"
                where = f"step #{loc[1] + 1} ({op})"
                rest = [str(x) for x in loc[2:] if x not in OPS]
            elif loc[:1] == ["queries"] and len(loc) > 1 and isinstance(loc[1], int):
                where, rest = f"query #{loc[1] + 1}", [str(x) for x in loc[2:]]
            else:
                rest = [str(x) for x in loc]
            field = f"field {'.'.join(rest)!r}: " if rest else ""
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "union_tag_invalid":
                msg = f"unknown op; use one of {', '.join(OPS)}"
            lines.append(f"  - {where}{': ' if where else ''}{field}{msg}")
        raise ReportSpecError(f"invalid report spec{who}:\n" + "\n".join(lines)) from None


class Chart(BaseModel):
    """A chart of the report frame (PNG).

    :param kind: ``line``, ``bar`` (default), ``barh`` or ``area``.
    :param x: the column along the x axis.
    :param y: the columns plotted (default: every numeric column but ``x``).
    :param title: the chart's title (default: the report's).
    :param stacked: stack bars or areas.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["line", "bar", "barh", "area"] = "bar"
    x: str
    y: list[str] | None = None
    title: str | None = None
    stacked: bool = False
