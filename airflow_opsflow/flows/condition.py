"""Does a data condition hold? Used by DataConditionSensor in poke mode and by its trigger."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow_opsflow.checks.spec import Suite
from airflow_opsflow.core.truth import truth


class ConditionError(RuntimeError):
    """The condition cannot be evaluated (bad SQL, unknown column...): waiting longer will not help."""


def condition_holds(
    conn: Any,
    dialect: str,
    *,
    sql: str | None = None,
    suite: Suite | None = None,
    statement_timeout: timedelta | None = None,
    now: datetime | None = None,
) -> tuple[bool, str]:
    """Return (holds, detail). With ``sql``: the first column of the first row is truthy (NULL, no row, zero,
    and false/no/off/0 as text are false; see :func:`airflow_opsflow.core.truth.truth`; any other value is true). With
    ``suite``: every check passes, its time-based checks judged at ``now`` (the run's time)."""
    from airflow_opsflow.checks.session import QueryError, ReadOnlySession
    from airflow_opsflow.core.sqlparts import SqlFragmentError, query
    from airflow_opsflow.flows.check_suite import run_suite

    if sql is not None:
        try:
            statement = query(sql, dialect, "the sensor's sql").sql(dialect, comments=False)
        except SqlFragmentError as e:
            raise ConditionError(str(e)) from None
        with ReadOnlySession(conn, dialect, statement_timeout) as session:
            try:
                _, rows = session.query(statement, limit=1)
            except QueryError as e:
                raise ConditionError(str(e)) from None
        value = rows[0][0] if rows and rows[0] else None
        try:
            holds = truth(value)
        except ValueError:  # a date, a name...: a value is there, which the sensor documents as true
            holds = True
        return holds, f"first value: {value!r}"
    assert suite is not None
    results = run_suite(conn, suite, dialect, statement_timeout=statement_timeout, now=now)
    errors = [f"{r.name}: {r.message}" for r in results if r.status == "error"]
    if errors:
        raise ConditionError("; ".join(errors))
    waiting = [f"{r.name}: {r.message or r.expected}" for r in results if r.status != "pass"]
    return not waiting, "; ".join(waiting) or "all conditions hold"
