"""Check results: what ran, what it saw, and the verdict. JSON-serialisable for XCom and alerts."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

Status = Literal["pass", "skipped", "warn", "fail", "error"]
STATUS_ORDER: dict[str, int] = {"pass": 0, "skipped": 1, "warn": 2, "fail": 3, "error": 4}


@dataclass
class CheckResult:
    """The outcome of one check.

    :param status: ``pass``; ``skipped`` (no verdict: e.g. a metric with too little history yet);
        ``warn`` (a warn-level violation); ``fail`` (an error-level violation); ``error`` (the check
        could not run: bad SQL, missing column, timeout...).
    :param observed: what was measured (a number, or a mapping such as ``{"min": 0, "max": 51}``).
    :param expected: the rule in words (``"no NULL values"``, ``"between 1 and 50"``).
    :param violating_count: violating rows (row-level checks), else None.
    :param violating_share: ``violating_count / rows_checked`` when both are known.
    :param threshold: the tolerance that was exceeded, or the one that applied.
    :param samples: up to ``sample_limit`` violating rows, only for failed/warned checks.
    :param sql: the statements that produced this result, in order.
    :param column: the column(s) the check is about (``"a, b"`` for several), None for table-level checks.
    :param entities: for a check tracking entities, what this run saw of them (new, still open,
        resolved, ages, money at stake: :class:`airflow_opsflow.incidents.entities.EntityReport`).
    """

    name: str
    kind: str
    table: str | None
    status: Status
    severity: str = "error"
    observed: Any = None
    expected: str = ""
    violating_count: int | None = None
    violating_share: float | None = None
    rows_checked: int | None = None
    threshold: str | None = None
    message: str = ""
    samples: list[dict[str, Any]] = field(default_factory=list)
    sql: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    description: str | None = None
    owner: str | None = None
    where: str | None = None
    entities: dict[str, Any] | None = None
    column: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return json_safe(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckResult:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    @property
    def failed(self) -> bool:
        return self.status != "pass"


def json_safe(value: Any) -> Any:
    """Database values -> JSON values: Decimals to int/float, dates to ISO strings, bytes to hex."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and abs(value) < 2**53 else float(value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [json_safe(v) for v in value]
    return str(value)


def worst(results: list[CheckResult]) -> Status:
    if not results:
        return "pass"
    return max((r.status for r in results), key=lambda s: STATUS_ORDER[s])
