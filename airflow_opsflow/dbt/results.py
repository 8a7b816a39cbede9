"""dbt results as :class:`~airflow_opsflow.core.results.CheckResult`: tests and unit tests by name, with
their model, column, failures, severity and compiled SQL; nodes that errored (a model that did not build)
as ``error`` results, so the report says why their tests were skipped."""

from __future__ import annotations

from typing import Any

from airflow_opsflow.core.results import CheckResult
from airflow_opsflow.core.text import cut
from airflow_opsflow.dbt.artifacts import DbtRun

_TEST_STATUS = {"pass": "pass", "fail": "fail", "warn": "warn", "error": "error", "skipped": "skipped"}
TEST_TYPES = ("test", "unit_test")


def to_check_results(run: DbtRun, include_errors: bool = True) -> list[CheckResult]:
    """One result per test (and unit test) in the run, in run order, then one per other node that errored
    (``include_errors``). Tests the run did not execute (``--select``) are not reported."""
    out: list[tuple[str, CheckResult]] = []
    for uid, entry in run.results.items():
        kind = uid.split(".", 1)[0]
        if kind in TEST_TYPES:
            out.append((uid, _test(uid, entry, run)))
        elif include_errors and entry.get("status") in ("error", "runtime error"):
            node = run.nodes.get(uid) or {}
            out.append((uid, CheckResult(
                name=f"dbt {kind} {node.get('name') or uid.split('.')[-1]}", kind=f"dbt_{kind}",
                table=node.get("relation_name") or node.get("name"), status="error",
                message=_one_line(entry.get("message")) or f"the dbt {kind} failed",
                expected=f"the {kind} builds", sql=[entry["compiled_code"]] if entry.get("compiled_code") else [],
                duration_s=round(float(entry.get("execution_time") or 0), 4),
                description=node.get("description") or None, owner=_owner(node))))
    names: dict[str, int] = {}
    for _, r in out:  # test names are unique in a project, not across packages: then the package tells them apart
        names[r.name] = names.get(r.name, 0) + 1
    for uid, r in out:
        if names[r.name] > 1:
            r.name = ".".join(uid.split(".")[1:3])
    return [r for _, r in out]


def _test(uid: str, entry: dict[str, Any], run: DbtRun) -> CheckResult:
    node = run.nodes.get(uid) or {}
    config = node.get("config") or {}
    meta = node.get("test_metadata") or {}
    status = _TEST_STATUS.get(str(entry.get("status")), "error")
    failures = entry.get("failures")
    severity = "warn" if str(config.get("severity", "error")).lower() == "warn" else "error"
    model = _model(node, run)
    column = node.get("column_name") or (meta.get("kwargs") or {}).get("column_name")
    message = _one_line(entry.get("message"))
    if status == "skipped":
        message = message or "skipped: an upstream node did not build (see its error), so this test did not run"
    elif status == "pass":
        message = ""
    return CheckResult(
        name=str(node.get("name") or (uid.split(".")[2] if uid.count(".") >= 2 else uid)),
        kind="dbt_unit_test" if uid.startswith("unit_test.") else "dbt_test",
        table=model,
        status=status,  # type: ignore[arg-type]
        severity=severity,
        observed=failures,
        expected=_expected(node, meta, model, column, config, uid),
        violating_count=failures if isinstance(failures, int) and status != "error" else None,
        threshold=_threshold(config, status) if status in ("fail", "warn") else None,
        message=message,
        sql=[entry["compiled_code"]] if entry.get("compiled_code") else [],
        duration_s=round(float(entry.get("execution_time") or 0), 4),
        description=node.get("description") or None,
        owner=_owner(node),
        where=config.get("where"),
        column=str(column) if column else None,
    )


def _model(node: dict[str, Any], run: DbtRun) -> str | None:
    """The tested model (``orders``) or source (``raw.orders``)."""
    attached = node.get("attached_node") or node.get("model")
    if isinstance(attached, str) and attached.count(".") >= 2:
        return attached.split(".")[-1] if attached.startswith("model.") else attached
    if isinstance(attached, str):
        return attached
    for dep in (node.get("depends_on") or {}).get("nodes") or []:
        if dep.startswith("source."):
            source = run.sources.get(dep) or {}
            return f"{source.get('source_name', dep.split('.')[-2])}.{source.get('name', dep.split('.')[-1])}"
        if dep.startswith("model."):
            return dep.split(".")[-1]
    return None


def _expected(node: dict[str, Any], meta: dict[str, Any], model: str | None, column: str | None,
              config: dict[str, Any], uid: str) -> str:
    where = f" on {model}" + (f".{column}" if column else "") if model else ""
    if uid.startswith("unit_test."):
        return f"unit test{where}: the model's output equals the expected rows"
    if meta.get("name"):
        namespace = f"{meta['namespace']}." if meta.get("namespace") else ""
        args = {k: v for k, v in (meta.get("kwargs") or {}).items() if k not in ("model", "column_name")}
        shown = ", ".join(f"{k}={cut(str(v), 60)}" for k, v in args.items())
        return f"{namespace}{meta['name']}{f'({shown})' if shown else ''}{where}"
    path = node.get("original_file_path")
    return f"singular test {path or node.get('name') or uid}{where}: the query returns no rows"


def _threshold(config: dict[str, Any], status: str) -> str:
    """The rule that gave this status: dbt fails when ``error_if`` holds, else warns when ``warn_if`` does."""
    which = "error" if status == "fail" else "warn"
    return f"{which} if failures {config.get(f'{which}_if') or '!= 0'}"


def _owner(node: dict[str, Any]) -> str | None:
    meta = node.get("meta") or (node.get("config") or {}).get("meta") or {}
    owner = meta.get("owner")
    return str(owner) if owner else None


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())[:2000] if text else ""


def sample_query(result: CheckResult, dialect: str, limit: int) -> str | None:
    """``SELECT * FROM (<the test's compiled SQL>) LIMIT n``: the failing rows, for tests whose query selects
    them (generic and singular data tests; not unit tests). None when the SQL does not parse as one query."""
    from sqlglot import exp

    from airflow_opsflow.core.sqlparts import SqlFragmentError, query

    if result.kind != "dbt_test" or not result.sql or limit <= 0:
        return None
    try:
        inner = query(result.sql[0], dialect, f"the compiled SQL of {result.name}")
    except SqlFragmentError:
        return None
    return exp.select("*").from_(inner.subquery("opsflow_dbt_failures")).limit(limit).sql(dialect, comments=False)
