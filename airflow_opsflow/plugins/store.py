"""The state store of one API request, its failures as HTTP errors: shared by every router of the API
(``api.py``, ``incidents_api.py``, ``history_api.py``), each of which ``api.create_app`` includes (so it
lives apart from ``api.py``: no import cycle)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from airflow.sdk.exceptions import AirflowException
from fastapi import HTTPException, status

from airflow_opsflow.connections.state import state_store
from airflow_opsflow.monitors.repo import MarkError, NotFlagged, NothingStored
from airflow_opsflow.state.schema import SCHEMA_VERSION
from airflow_opsflow.state.store import StateStore, StateStoreError

UNPROCESSABLE = 422  # (Starlette renamed its constant; the number stays)


def _status_of(error: MarkError) -> int:
    """404 when the request names nothing stored (check, bucket); 409 for a point that cannot be marked;
    422 for input that cannot be read or is ambiguous (a date, a segment, a time zone)."""
    if isinstance(error, NothingStored):
        return status.HTTP_404_NOT_FOUND
    if isinstance(error, NotFlagged):
        return status.HTTP_409_CONFLICT
    return UNPROCESSABLE


@contextmanager
def request_store(dag_id: str, task_id: str, check: str) -> Iterator[StateStore]:
    """The deployment's state store for one request; its failures as HTTP errors naming the check."""
    owner = f"opsflow API, dag {dag_id!r}, task {task_id!r}, check {check!r}"
    try:
        store = state_store(None, owner)
    except AirflowException as e:  # not configured, or the connection is not defined
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(e)) from None
    try:
        yield store
    except MarkError as e:
        raise HTTPException(_status_of(e), str(e)) from None
    except (AirflowException, StateStoreError) as e:  # the database is unreachable: messages name no secrets
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(e)) from None
    finally:
        store.close()


@contextmanager
def reading_store(owner: str) -> Iterator[StateStore | None]:
    """The state store for one request (None: opsflow never wrote there, so there is nothing to show); its
    failures as HTTP errors (:func:`request_store`). Read-only: a store whose tables are older than this opsflow
    is not migrated from here (a task run does that)."""
    with request_store(owner, "*", "*") as store:
        version = store.version()
        if version <= 0:
            yield None
            return
        if version < SCHEMA_VERSION:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                                f"the state database ({store.label}) holds opsflow schema version {version}, older "
                                f"than this opsflow's ({SCHEMA_VERSION}): the next opsflow task run upgrades it")
        yield store
