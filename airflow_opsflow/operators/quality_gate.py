"""QualityGateOperator: let a downstream DAG go on only when the data it reads was checked and is good.

A check task with Asset ``outlets`` attaches its verdict to each asset event (``extra["opsflow_quality"]``:
worst status, counts per status, score, the checks that did not pass). The gate, first task of the
downstream DAG, reads the verdict of the event that triggered the run (or, for a run not triggered by the
asset, the asset's newest event) and skips the rest of the run when it is not good enough: a sync or a CFO
report never runs on data its checks refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from airflow_opsflow.operators.naming import where_am_i

if TYPE_CHECKING:
    from airflow.sdk import Asset, Context

    from airflow_opsflow.core.results import CheckResult

EXTRA_KEY = "opsflow_quality"
_ORDER = ("pass", "skipped", "warn", "fail", "error")
_LISTED = 20  # failing checks named in the event (the results themselves stay in XCom and the history)


def quality_extra(results: Sequence[CheckResult], run: dict[str, Any]) -> dict[str, Any]:
    """The verdict a check task puts on its asset events."""
    from airflow_opsflow.core.results import worst

    counts = dict.fromkeys(_ORDER, 0)
    for r in results:
        counts[r.status] += 1
    judged = counts["pass"] + counts["warn"] + counts["fail"]
    return {EXTRA_KEY: {
        "status": worst(list(results)) if results else "pass",
        "score": round(counts["pass"] / judged, 4) if judged else None,
        "counts": counts,
        "not_passing": [f"{r.name} ({r.status})" for r in results if r.status != "pass"][:_LISTED],
        **run,
    }}


class QualityGateOperator(BaseOperator):
    """Skip the rest of the DAG run unless the checks behind ``asset`` passed.

    .. code-block:: python

        PAYMENTS = Asset("postgres://ops-db/public/payments")
        # producer: DataCheckOperator(..., outlets=[PAYMENTS], fail_on=("error",))
        with DAG("finance_report", schedule=[PAYMENTS]):
            QualityGateOperator(task_id="payments_are_good", asset=PAYMENTS) >> ReportOperator(...)

    :param asset: the Asset a check task lists in its ``outlets``.
    :param require: the worst status accepted: ``pass`` (default) or ``warn``.
    :param min_score: also require at least this share of the judged checks to have passed (0..1).
    :param max_age: a run not triggered by the asset reads its newest event, and skips if that is older
        than this before the run's time (a verdict from last week says nothing about today's data).

    The producer must let its task succeed on data failures (``fail_on=("error",)``) for a bad verdict to
    reach the asset: a failed task emits no asset event, so an asset-scheduled DAG would simply not run,
    and a gate reading the newest event would see the previous, good one. The verdict is returned (XCom).
    """

    ui_color = "#e6f4ea"

    def __init__(self, *, asset: Asset, require: str = "pass", min_score: float | None = None,
                 max_age: timedelta | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("inlets", [asset])
        super().__init__(**kwargs)
        where = where_am_i(self)
        if type(asset).__name__ != "Asset":
            raise ValueError(f"{where}: asset must be an airflow.sdk.Asset, got {type(asset).__name__}")
        if require not in ("pass", "warn"):
            raise ValueError(f"{where}: require must be 'pass' or 'warn', got {require!r}")
        if min_score is not None and not 0 <= min_score <= 1:
            raise ValueError(f"{where}: min_score must be between 0 and 1, got {min_score!r}")
        self.asset, self.require, self.min_score, self.max_age = asset, require, min_score, max_age

    def execute(self, context: Context) -> dict[str, Any]:
        where = where_am_i(self)
        event, how = self._event(context)
        if event is None:
            raise AirflowSkipException(f"{where}: {self.asset.uri} has no event yet: no check verdict to go on")
        verdict = (getattr(event, "extra", None) or {}).get(EXTRA_KEY)
        if not isinstance(verdict, dict):
            raise AirflowFailException(
                f"{where}: the {how} event of {self.asset.uri} carries no opsflow verdict (extra[{EXTRA_KEY!r}]): "
                "list the asset in the outlets of the DataCheckOperator or DbtResultsOperator that checks it")
        source = f"{event.source_dag_id}/{event.source_task_id} run {event.source_run_id}"
        at = getattr(event, "timestamp", None)
        now = context.get("data_interval_end") or context.get("logical_date")
        if how == "newest" and self.max_age is not None and at is not None and now is not None \
                and now - at > self.max_age:
            raise AirflowSkipException(f"{where}: the newest verdict on {self.asset.uri} ({source}, "
                                       f"{at:%Y-%m-%d %H:%M} UTC) is older than max_age {self.max_age}")
        status, score = verdict.get("status"), verdict.get("score")
        problems = []
        if status not in _ORDER or _ORDER.index(status) > _ORDER.index(self.require):
            problems.append(f"its checks' worst status is {status!r} (require={self.require!r}): "
                            + ", ".join(verdict.get("not_passing") or []))
        if self.min_score is not None and (score is None or score < self.min_score):
            problems.append(f"its score {score} is under min_score {self.min_score}")
        if problems:
            raise AirflowSkipException(f"{where}: the data behind {self.asset.uri} did not pass ({source}): "
                                       + "; ".join(problems) + ". The rest of this run is skipped.")
        self.log.info("%s: %s passed its checks (%s, score %s)", where, self.asset.uri, source, score)
        return verdict

    def _event(self, context: Context) -> tuple[Any, str]:
        """The event that triggered the run, else the asset's newest."""
        triggering = context.get("triggering_asset_events") or {}
        try:
            events = list(triggering[self.asset]) if triggering else []
        except KeyError:
            events = []
        if events:
            return events[-1], "triggering"
        try:
            newest = context["inlet_events"][self.asset][-1]
        except (KeyError, IndexError):
            return None, "newest"
        return newest, "newest"
