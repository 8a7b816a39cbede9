"""opsflow's REST API, mounted in Airflow's API server under ``/opsflow``: people's feedback on metric checks.

::

    POST   /opsflow/api/v1/dags/{dag_id}/tasks/{task_id}/checks/{check}/marks   mark a flagged point expected
    DELETE /opsflow/api/v1/dags/{dag_id}/tasks/{task_id}/checks/{check}/marks?bucket=...   take the mark back
    GET    /opsflow/api/v1/dags/{dag_id}/tasks/{task_id}/checks/{check}/marks   the check's marks

Airflow mounts a plugin's app as it is: none of the core API's authentication reaches these routes, so each
declares Airflow's own (the caller's JWT, as for ``/api/v2``, checked by the configured auth manager). Reading
marks needs read access to the DAG's task instances; marking needs edit access to them (what marking a task
instance success needs). The marker is the authenticated user, never a request field. What a call does is
:mod:`airflow_opsflow.flows.feedback`, as for the CLI.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from fastapi import Depends, FastAPI, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from airflow_opsflow.flows import feedback
from airflow_opsflow.monitors.repo import Mark, MarkError
from airflow_opsflow.plugins.store import request_store
from airflow_opsflow.state.store import StateStore

UNPROCESSABLE = 422  # (Starlette renamed its constant; the number stays)
MARKS = "/api/v1/dags/{dag_id}/tasks/{task_id}/checks/{check}/marks"
T = TypeVar("T")

CanRead = Depends(requires_access_dag(method="GET", access_entity=DagAccessEntity.TASK_INSTANCE))
CanEdit = Depends(requires_access_dag(method="PUT", access_entity=DagAccessEntity.TASK_INSTANCE))

BUCKET_HELP = ("the bucket: the local date a day, week or month bucket starts (2026-06-15), a date and time, or "
               "the bucket's start with its offset (2026-06-14T22:00:00+00:00, as errors list them)")
SEGMENT_HELP = "for a check with segment_by: its values, in segment_by order"
HISTORY_KEY_HELP = "the check's history_key, when it sets one"
TIMEZONE_HELP = "the check's time zone, to read a local date and time exactly (hour buckets)"


class MarkBody(BaseModel):
    """The point to mark expected, and why."""

    model_config = ConfigDict(extra="forbid")

    bucket: str = Field(min_length=1, description=BUCKET_HELP, examples=["2026-06-15"])
    segment: dict[str, Any] | list[Any] | None = Field(
        None, description=SEGMENT_HELP + ' ({"country": "DE"} or ["DE"])', examples=[{"country": "DE"}])
    note: str | None = Field(None, description="why (kept with the mark and the incident)",
                             examples=["Whit Monday"])
    history_key: str | None = Field(None, description=HISTORY_KEY_HELP)
    timezone: str | None = Field(None, description=TIMEZONE_HELP, examples=["Europe/Berlin"])


class MarkOut(BaseModel):
    """A person's mark on one stored point."""

    bucket: datetime = Field(description="the bucket's start (UTC)")
    segment: list[Any] = Field(description="the series' segment values (empty without segment_by)")
    mark: str = Field(description='the mark ("expected")')
    marked_by: str = Field(description="who marked it (the Airflow user)")
    marked_at: datetime = Field(description="when (UTC)")
    note: str | None = Field(description="why")

    @classmethod
    def of(cls, m: Mark) -> MarkOut:
        return cls(bucket=m.bucket, segment=list(m.segment), mark=m.mark, marked_by=m.marked_by,
                   marked_at=m.marked_at, note=m.note)


class IncidentOut(BaseModel):
    """The check's incident after the call."""

    incident_id: str
    status: str = Field(description="open, acknowledged, resolved...")


class FeedbackOut(BaseModel):
    """What a mark (or unmark) did."""

    message: str = Field(description="the same paragraph the CLI prints")
    mark: MarkOut | None = Field(description="the mark stored (unmark: the one removed; null: there was none)")
    changed: bool = Field(description="false: the same person had already marked it so (or nothing to remove)")
    incident: IncidentOut | None = Field(None, description="the check's incident (null: it never had one)")
    resolved: bool = Field(False, description="this call resolved the incident")
    routes: list[str] = Field([], description="the routes owed its resolved alert (sent by the task's next run)")


class MarksOut(BaseModel):
    """A check's marks, oldest bucket first."""

    marks: list[MarkOut]


def _segment(values: list[str]) -> dict[str, str] | None:
    """``?segment=country=DE`` (repeated in segment_by order), as the CLI's ``--segment``."""
    try:
        return feedback.parse_segment(values)
    except MarkError as e:
        raise HTTPException(UNPROCESSABLE, str(e)) from None


def _call(dag_id: str, task_id: str, check: str, fn: Callable[[StateStore], T]) -> T:
    with request_store(dag_id, task_id, check) as store:
        return fn(store)


def _out(done: feedback.Feedback) -> FeedbackOut:
    incident = (IncidentOut(incident_id=done.incident.incident_id, status=done.incident.status)
                if done.incident is not None else None)
    return FeedbackOut(message=done.text(), mark=MarkOut.of(done.mark) if done.mark else None,
                       changed=done.changed, incident=incident, resolved=done.resolved, routes=list(done.routes))


_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "not authenticated (no or an expired token)"},
    403: {"description": "not allowed on this DAG, or an invalid token"},
    404: {"description": "no stored check or bucket by that name; the message lists the nearest flagged buckets"},
    422: {"description": "a bucket, segment or time zone that cannot be read or matches several points"},
    503: {"description": "no state database is configured ([opsflow] state_conn_id) or it cannot be reached"},
}


def create_app() -> FastAPI:
    """The FastAPI app Airflow's API server mounts at ``/opsflow`` (see ``plugin.py``)."""
    app = FastAPI(
        title="opsflow API",
        version="1",
        description="Feedback on opsflow's metric checks, in Airflow's API server. Authenticate as for "
                    "Airflow's REST API: `Authorization: Bearer <JWT>` (e.g. from `POST /auth/token`).",
    )
    from airflow_opsflow.plugins import incidents_api  # the Ops view's incidents and entities (read-only)
    app.include_router(incidents_api.router)

    @app.post(MARKS, response_model=FeedbackOut, dependencies=[CanEdit],
              responses={**_ERRORS, 409: {"description": "the point was not flagged"}},
              summary="Mark a flagged point of a metric check expected")
    def mark_expected(dag_id: str, task_id: str, check: str, body: MarkBody, user: GetUserDep) -> FeedbackOut:
        """Marks the flagged point at `bucket` expected, by the authenticated user. When it explains the
        check's open incident (the newest bucket it judged, every other flagged series of that bucket marked
        too), the incident resolves and the task's next run sends the resolution to `routes`. Marking again
        is no error (`changed` is false)."""
        return _out(_call(dag_id, task_id, check, lambda store: feedback.mark_expected(
            store, dag_id=dag_id, task_id=task_id, check=check, bucket=body.bucket, segment=body.segment,
            by=user.get_name(), note=body.note, history_key=body.history_key, timezone=body.timezone)))

    @app.delete(MARKS, response_model=FeedbackOut, dependencies=[CanEdit], responses=_ERRORS,
                summary="Take back the mark on a point")
    def unmark(dag_id: str, task_id: str, check: str,
               bucket: Annotated[str, Query(min_length=1, description=BUCKET_HELP)],
               segment: Annotated[list[str], Query(description=SEGMENT_HELP + ", each NAME=VALUE")] = [],  # noqa: B006
               history_key: Annotated[str | None, Query(description=HISTORY_KEY_HELP)] = None,
               timezone: Annotated[str | None, Query(description=TIMEZONE_HELP)] = None) -> FeedbackOut:
        """Removes the mark on the point at `bucket`: the detector treats it as its verdict says again. A
        resolved incident stays resolved. No mark there is no error (`mark` is null)."""
        seg = _segment(segment)
        return _out(_call(dag_id, task_id, check, lambda store: feedback.unmark(
            store, dag_id=dag_id, task_id=task_id, check=check, bucket=bucket, segment=seg,
            history_key=history_key, timezone=timezone)))

    @app.get(MARKS, response_model=MarksOut, dependencies=[CanRead],
             responses={k: v for k, v in _ERRORS.items() if k in (401, 403, 503)},
             summary="List the marks on a metric check's points")
    def marks(dag_id: str, task_id: str, check: str,
              history_key: Annotated[str | None, Query(description=HISTORY_KEY_HELP)] = None) -> MarksOut:
        """Every mark on the check's points (who, when, why), oldest bucket first."""
        found = _call(dag_id, task_id, check, lambda store: feedback.marks(
            store, dag_id=dag_id, task_id=task_id, check=check, history_key=history_key))
        return MarksOut(marks=[MarkOut.of(m) for m in found])

    from airflow_opsflow.plugins import history_api
    app.include_router(history_api.router)
    return app
