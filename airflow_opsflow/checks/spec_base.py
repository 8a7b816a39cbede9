"""What every check spec shares: identifiers, tolerances and the fields of :class:`CheckBase`.

Split from :mod:`airflow_opsflow.checks.spec` so that the monitor kinds (:mod:`.monitor_spec`) can build
on it while the spec module gathers every kind into one union.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from airflow_opsflow.checks.entity_spec import EntitySpec
from airflow_opsflow.checks.values import MAX_COUNT, Int
from airflow_opsflow.core.identifiers import check_identifier

Severity = Literal["warn", "error"]
OnEmpty = Literal["fail", "warn", "pass"]
Scalar = int | float | str | date | datetime

_SHARE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


class Tolerance(BaseModel):
    """A number of violating rows, or a share of the checked rows (``"0.1%"``)."""

    model_config = ConfigDict(frozen=True)
    count: int | None = None
    share: float | None = None  # a fraction, 0.001 for "0.1%"

    @classmethod
    def parse(cls, value: Any) -> Tolerance:
        if isinstance(value, Tolerance):
            return value
        if isinstance(value, dict):  # a dumped Tolerance (e.g. a spec sent to the triggerer)
            return cls.model_validate(value)
        if isinstance(value, bool):
            raise ValueError("expected a row count (e.g. 0) or a share (e.g. '0.1%'), got a boolean")
        if isinstance(value, int):
            if value < 0:
                raise ValueError("a row count must be >= 0")
            if value > MAX_COUNT:
                raise ValueError(f"a row count must be at most {MAX_COUNT}")
            return cls(count=value)
        if isinstance(value, str) and len(value) <= 40:
            m = _SHARE.match(value)
            if m:
                share = float(m.group(1)) / 100
                if share > 1:
                    raise ValueError(f"share {value!r} is above 100%")
                return cls(share=share)
            if value.strip().isascii() and value.strip().isdigit():
                return cls.parse(int(value))
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        raise ValueError(f"expected a row count (e.g. 0) or a share (e.g. '0.1%'), got {shown}")

    def exceeded(self, violations: int, rows: int) -> bool:
        if self.count is not None:
            return violations > self.count
        assert self.share is not None
        return rows > 0 and violations / rows > self.share

    def __str__(self) -> str:
        return f"{self.count} rows" if self.count is not None else f"{self.share * 100:g}%"  # type: ignore[operator]


class CheckBase(BaseModel):
    """Fields every check kind has.

    :param name: unique within the suite; defaults to ``<kind>_<column>``.
    :param description: what the check protects, shown in reports and alerts.
    :param owner: who acts on a failure (a team or person).
    :param severity: ``error`` (the task fails) or ``warn`` (reported, task succeeds).
    :param where: a SQL condition restricting the rows this check looks at (added to the table's filter).
    :param fail_above: violations tolerated before the check fails: a count or a share ``"0.5%"``
        (default 0 for ``error`` checks; not allowed on ``warn`` checks).
    :param warn_above: violations tolerated before the check warns (default 0 for ``warn`` checks).
    :param on_empty: status when there are no rows to check: ``fail`` (the severity's status), ``warn``
        or ``pass``. Empty data never passes silently unless you say so.
    :param sample_columns: columns shown in violating-row samples (default: the check's own columns and
        the table's ``sample_columns``); keep PII out of it.
    :param sample_limit: violating rows fetched for a failed check (0 disables samples).
    :param entity: track the violating rows as entities across runs (new, still open, resolved, age,
        SLA, money at stake): see :class:`~airflow_opsflow.checks.entity_spec.EntitySpec`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = ""
    description: str | None = None
    owner: str | None = None
    severity: Severity = "error"
    where: str | None = None
    fail_above: Tolerance | None = None
    warn_above: Tolerance | None = None
    on_empty: OnEmpty | None = None
    sample_columns: list[str] | None = None
    sample_limit: Int | None = Field(default=None, ge=0, le=1000)
    entity: EntitySpec | None = None

    @field_validator("fail_above", "warn_above", mode="before")
    @classmethod
    def _tolerance(cls, v: Any) -> Any:
        return None if v is None else Tolerance.parse(v)

    @field_validator("sample_columns")
    @classmethod
    def _sample_columns(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else [check_identifier(c, "sample column") for c in v]

    @model_validator(mode="after")
    def _severity_and_thresholds(self) -> CheckBase:
        if self.severity == "warn" and self.fail_above is not None:
            raise ValueError("fail_above is set on a check with severity 'warn': use severity 'error'")
        if not self.row_level and (self.fail_above or self.warn_above):
            raise ValueError(f"fail_above/warn_above do not apply to {self.kind} checks "  # type: ignore[attr-defined]
                             "(they count violating rows); use min/max")
        fail, warn = self.fail_above, self.warn_above
        if fail is not None and warn is not None and (
                (fail.count is not None and warn.count is not None and warn.count > fail.count)
                or (fail.share is not None and warn.share is not None and warn.share > fail.share)):
            raise ValueError(f"warn_above ({warn}) is above fail_above ({fail}): the check would fail before it "
                             "ever warns")
        if self.entity is not None and not self.tracks_rows:
            raise ValueError(f"'entity' needs violating rows to track, and {self.kind} checks "  # type: ignore[attr-defined]
                             "have none (use it on a row-level check such as 'sql' or 'expression')")
        return self

    @property
    def row_level(self) -> bool:
        """True when the check counts violating rows (thresholds and samples apply)."""
        return True

    @property
    def tracks_rows(self) -> bool:
        """True when the violating rows themselves can be fetched (and tracked as entities)."""
        return self.row_level

    def columns(self) -> list[str]:
        """Columns of the checked table the check needs (for validation and default samples)."""
        return []

    def default_name(self) -> str:
        return self.kind  # type: ignore[attr-defined]

    def fail_tolerance(self) -> Tolerance | None:
        if self.severity == "warn":
            return None
        return self.fail_above or Tolerance(count=0)

    def warn_tolerance(self) -> Tolerance | None:
        if self.severity == "warn":
            return self.warn_above or Tolerance(count=0)
        return self.warn_above

    def judge_violations(self, violations: int, total: int) -> tuple[Literal["pass", "warn", "fail"], str | None]:
        """The status for ``violations`` out of ``total`` rows (or keys), and the threshold text that
        decided it (or the one that applied, when it passed)."""
        fail_tol, warn_tol = self.fail_tolerance(), self.warn_tolerance()
        if fail_tol is not None and fail_tol.exceeded(violations, total):
            return "fail", f"at most {fail_tol}"
        if warn_tol is not None and warn_tol.exceeded(violations, total):
            return "warn", f"at most {warn_tol}"
        applied = fail_tol or warn_tol
        return "pass", f"at most {applied}" if applied else None
