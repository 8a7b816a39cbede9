"""Property-based fuzzing of the spec loader: every input either loads, and then makes sense, or raises
the named :class:`CheckSpecError`; never another exception, never nonsense accepted silently.

Run as a script (``.venv/bin/python tests/checks/test_spec_fuzz.py``) to print the tally: inputs, named
errors, crashes and accepted nonsense (the last two must be 0).
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import date, datetime, time, timedelta
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_opsflow.checks.loader import CheckSpecError, load_suite

TALLY: Counter[str] = Counter()
# As a test, the first crash or nonsense fails (and hypothesis shrinks it); as a script, all are counted.
RAISE = [True]
FOUND: dict[str, str] = {}
SETTINGS = settings(max_examples=500, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))
CTX = "dag 'fuzz', task 'chk'"

KINDS = ["row_count", "not_null", "unique", "accepted_values", "between", "regex", "freshness", "distinct_count",
         "expression", "foreign_key", "sql", "metric", "reconcile", "not_a_kind"]
# What the fuzzing found, and their kin.
NASTY_TEXT = [
    "", " ", "25:00", "24:00", "6:00", "06:00", "23:59:60", "0.0001s", "99999999999999999999d", "1e400", "nan", "inf",
    "-inf", "a..b", ".a", "a.", "a.b.c.d", "1=1; DROP TABLE t", "DELETE FROM t", "(((", "{{ a", "{{ ds }}",
    "{% if x %}", "}}", "SELECT 1", "SELECT * FROM t FOR UPDATE", "SELECT a INTO b FROM t",
    "SELECT a FROM t INTO OUTFILE '/tmp/x'", "SELECT pg_terminate_backend(1)", "amount > 0",
    "SELECT set_config('statement_timeout', '0', true)", "status = 'x' OR dblink_exec('c', 'delete from t') = 'a'",
    "SUM(amount)", "COUNT(*) + nextval('s')", "x' OR '1'='1", "amount; drop table x", "5%", "120%", "0.1%",
    "2h", "PT2H", "1d 6h", "-5", "10**40", "2024-01-01", "2024-13-01", "yes", "\x00", "é", "9" * 5000,
    "(" * 3000 + "1" + ")" * 3000, "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
]
NASTY_NUMBERS = [0, 1, -1, 7, 1439, 1440, 1500, 10**40, -(10**40), 2**63, 0.0, 0.5, -0.5, 1e308,
                 float("nan"), float("inf"), float("-inf"), True, False]
FIELDS = ["name", "column", "columns", "to_table", "to_column", "values", "min", "max", "min_exclusive", "pattern",
          "max_age", "deadline", "expect", "timezone", "calendar", "expression", "sql", "metric", "where",
          "fail_above", "warn_above", "severity", "on_empty", "sample_columns", "sample_limit", "entity", "left",
          "right", "key", "compare", "group_by", "group_tolerance", "time_column", "bucket", "sensitivity",
          "training", "min_training", "backfill", "owner", "colour"]


# Built, not sampled: hypothesis prints sampled values, and this one has too many digits to print.
HUGE = st.builds(lambda: 10**5000)


LEAVES = st.one_of(
    st.sampled_from(NASTY_TEXT), st.sampled_from(NASTY_NUMBERS), HUGE, st.none(), st.text(max_size=12),
    st.integers(), st.floats(), st.dates(), st.datetimes(), st.times(), st.booleans(),
    st.sampled_from(["amount", "status", "payments", "public.payments", "id", "created_at"]),
)
VALUES = st.recursive(LEAVES, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(FIELDS), inner, max_size=4)), max_leaves=8)


# A valid check of each kind: most fuzzed checks start from one and break a field or two, so validation
# goes past "field required" and the invariants of loaded suites get exercised.
BASES: dict[str, dict[str, Any]] = {
    "row_count": {}, "not_null": {"column": "a"}, "unique": {"columns": ["id"]},
    "accepted_values": {"column": "s", "values": ["paid"]}, "between": {"column": "a", "min": 0},
    "regex": {"column": "a", "pattern": "^a"}, "freshness": {"column": "t", "max_age": "2h"},
    "distinct_count": {"column": "a", "max": 7}, "expression": {"expression": "a > 0"},
    "foreign_key": {"column": "a", "to_table": "t", "to_column": "id"}, "sql": {"sql": "SELECT 1"},
    "metric": {"metric": "SUM(a)"}, "reconcile": {"left": {"table": "a"}, "right": {"table": "b"}, "key": "id"},
}


OWN_FIELDS: dict[str, tuple[str, ...]] = {
    "row_count": ("min", "max"), "distinct_count": ("min", "max"), "accepted_values": ("values",),
    "between": ("min", "max", "min_exclusive", "max_exclusive"), "freshness": ("max_age", "deadline", "timezone"),
    "metric": ("sql", "time_column", "sensitivity", "training", "min_training", "backfill"),
    "reconcile": ("compare", "group_by", "group_tolerance"), "sql": ("entity",), "expression": ("entity",),
}


@st.composite
def _check(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(KINDS))
    check: dict[str, Any] = {"kind": kind}
    if draw(st.integers(0, 3)):
        check.update(BASES.get(kind, {}))
    own = [*OWN_FIELDS.get(kind, ()), *BASES.get(kind, {}), "where", "fail_above", "warn_above", "name"]
    for field in draw(st.lists(st.sampled_from(own) if draw(st.integers(0, 4)) else st.sampled_from(FIELDS),
                               max_size=2)):
        check[field] = draw(VALUES if draw(st.booleans()) else st.sampled_from(NASTY_TEXT + NASTY_NUMBERS))
    return check


@st.composite
def _spec(draw: st.DrawFn) -> Any:
    checks = draw(st.lists(_check(), min_size=0 if draw(st.integers(0, 9)) == 0 else 1, max_size=3))
    shape = draw(st.integers(0, 5))
    if shape == 0:
        return checks
    table = "payments" if draw(st.integers(0, 3)) else draw(st.one_of(st.sampled_from(["a..b", "s.t", ""]), LEAVES))
    group: dict[str, Any] = {"table": table, "checks": checks}
    if draw(st.integers(0, 3)) == 0:
        group["where"] = draw(st.one_of(st.sampled_from(NASTY_TEXT), LEAVES))
    if draw(st.integers(0, 3)) == 0:
        group[draw(st.sampled_from(["sample_limit", "on_empty", "sample_columns", "tables"]))] = draw(VALUES)
    return {"tables": [group]} if shape == 1 else group


def _deep(depth: int) -> Any:
    node: Any = 1
    for _ in range(depth):
        node = {"x": [node]}
    return node


# -- what "loads" must mean ------------------------------------------------------------------------


def _nonsense(suite: Any) -> list[str]:
    """Invariants of a loaded suite; each violation is nonsense accepted silently."""
    from airflow_opsflow.core import sqlparts

    found = []
    for group, check in suite.all_checks():
        kind = check.kind
        if group.table is not None:
            try:
                sqlparts.table_ref(group.table, "postgres")
            except ValueError:
                found.append(f"table {group.table!r}")
        for field in ("min", "max"):
            value = getattr(check, field, None)
            if isinstance(value, bool) or (isinstance(value, float) and not math.isfinite(value)) or value == "":
                found.append(f"{kind}.{field} = {value!r}")
        lo, hi = getattr(check, "min", None), getattr(check, "max", None)
        if _comparable(lo, hi) and lo > hi:
            found.append(f"{kind}: min {lo!r} > max {hi!r}")
        for value in getattr(check, "values", None) or []:
            if isinstance(value, bool) or (isinstance(value, float) and not math.isfinite(value)):
                found.append(f"accepted value {value!r}")
        for field in ("max_age",):
            age = getattr(check, field, None)
            if age is not None and not (timedelta(0) < age <= timedelta(days=3660)):
                found.append(f"{field} = {age!r}")
        deadline = getattr(check, "deadline", None)
        if deadline is not None and (not isinstance(deadline, time) or deadline.tzinfo is not None):
            found.append(f"deadline = {deadline!r}")
        fail, warn = check.fail_above, check.warn_above
        if fail and warn and ((fail.count is not None and warn.count is not None and warn.count > fail.count)
                              or (fail.share is not None and warn.share is not None and warn.share > fail.share)):
            found.append(f"warn_above {warn} > fail_above {fail}")
        for field, parse in (("where", "condition"), ("expression", "condition"), ("sql", "query")):
            text = getattr(check, field, None)
            if isinstance(text, str) and not _parses(text, parse):
                found.append(f"{kind}.{field} = {text!r}")
    return found


def _comparable(lo: Any, hi: Any) -> bool:
    numbers = (int, float)
    return (lo is not None and hi is not None and not isinstance(lo, bool) and not isinstance(hi, bool) and (
        (isinstance(lo, numbers) and isinstance(hi, numbers))
        or (type(lo) is type(hi) and isinstance(lo, (date, datetime)) and (
            not isinstance(lo, datetime) or (lo.tzinfo is None) == (hi.tzinfo is None)))))


def _parses(text: str, how: str) -> bool:
    from airflow_opsflow.core import sqlparts

    for dialect in ("", "postgres", "mysql", "sqlite"):
        try:
            (sqlparts.condition if how == "condition" else sqlparts.query)(text, dialect, "x")
            return True
        except (ValueError, RecursionError):
            continue
    return False


def _classify(spec: Any, **kw: Any) -> str:
    TALLY["inputs"] += 1
    try:
        suite = load_suite(spec, context=CTX, **kw)
    except CheckSpecError as e:
        assert str(e).startswith(f"invalid check spec in {CTX}:"), str(e)[:300]
        # The loader's last-resort net names the place, but each known case has its own message.
        if "cannot validate the spec" in str(e):
            return _bad("crashes", f"an unexpected exception reached the last-resort net: {e}")
        TALLY["named errors"] += 1
        return "error"
    except Exception as e:
        return _bad("crashes", f"raw {type(e).__name__} for {_short(spec)}: {_short(e)}")
    bad = _nonsense(suite)
    if bad:
        return _bad("accepted nonsense", f"accepted nonsense {bad} from {_short(spec)}")
    TALLY["loaded"] += 1
    return "loaded"


def _bad(what: str, message: str) -> str:
    TALLY[what] += 1
    FOUND.setdefault(message[:160], message)
    if RAISE[0]:
        raise AssertionError(message)
    return what


def _short(value: Any) -> str:
    try:
        text = repr(value) if not isinstance(value, BaseException) else f"{value}"
    except ValueError:
        text = f"<{type(value).__name__}>"
    return text[:300]


# -- the properties ------------------------------------------------------------------------------------


@SETTINGS
@given(_spec())
def test_structured_specs_load_or_raise_the_named_error(spec: Any) -> None:
    _classify(spec)


@settings(SETTINGS, max_examples=250)
@given(_spec(), st.sampled_from(["", "dup", "sexagesimal", "deep", "anchor", "bigint", "garbage"]))
def test_yaml_text_loads_or_raises_the_named_error(spec: Any, twist: str) -> None:
    try:
        text = yaml.safe_dump(spec, sort_keys=False) if not isinstance(spec, list) else yaml.safe_dump(
            {"table": "payments", "checks": spec}, sort_keys=False)
    except (yaml.YAMLError, ValueError, RecursionError):
        text = "table: payments\nchecks: []\n"
    text = {
        "": text,
        "dup": text + "table: other\n",
        "sexagesimal": "table: p\nchecks:\n  - kind: freshness\n    column: a\n    deadline: 25:00\n",
        # Kept small for speed: test_spec.py has the 5,000-level and billion-laughs cases.
        "deep": "table: p\nchecks: " + "[" * 100 + "]" * 100 + "\n",
        "anchor": "a: &a [1, 2]\nb: &b [*a, *a, *a, *a]\nc: &c [*b, *b, *b, *b]\nd: [*c, *c, *c]\n"
                  "table: p\nchecks: [{kind: row_count}]\n",
        "bigint": "table: p\nchecks:\n  - kind: row_count\n    min: " + "9" * 5000 + "\n",
        "garbage": text.replace(":", "::", 1).replace("-", "{", 1),
    }[twist]
    _classify(text)


def test_deeply_nested_python_values_are_named() -> None:
    _classify({"table": "p", "checks": [{"kind": "row_count", "min": _deep(5000)}]})
    _classify([_deep(3000)])


@settings(SETTINGS, max_examples=150)
@given(st.one_of(st.sampled_from(NASTY_TEXT), st.sampled_from(NASTY_NUMBERS), HUGE, st.text(max_size=10),
                 st.timedeltas(), st.floats()),
       st.sampled_from(["max_age", "statement_timeout"]))
def test_durations_load_or_raise_the_named_error(value: Any, field: str) -> None:
    """``max_age`` through the loader, ``statement_timeout`` through the operator (the issue's crashes)."""
    if field == "max_age":
        _classify({"table": "p", "checks": [{"kind": "freshness", "column": "a", "max_age": value}]})
        return
    from airflow_opsflow.operators.data_check import DataCheckOperator

    TALLY["inputs"] += 1
    try:
        op = DataCheckOperator(task_id="chk", conn_id="db", table="p", checks=[{"kind": "row_count"}],
                               statement_timeout=value)
    except CheckSpecError as e:
        assert "field 'statement_timeout'" in str(e)
        TALLY["named errors"] += 1
        return
    except Exception as e:
        _bad("crashes", f"raw {type(e).__name__} for statement_timeout={_short(value)}: {_short(e)}")
        return
    timeout = op.statement_timeout
    if value and not (timeout is not None and timedelta(milliseconds=1) <= timeout <= timedelta(days=25)):
        _bad("accepted nonsense", f"statement_timeout={_short(value)} accepted as {timeout!r}")
        return
    TALLY["loaded"] += 1


@pytest.fixture(scope="module", autouse=True)
def _report_tally() -> Any:
    yield
    print(f"\nspec fuzz tally: {dict(TALLY)}")


def main() -> None:
    RAISE[0] = False
    for test in (test_structured_specs_load_or_raise_the_named_error, test_yaml_text_loads_or_raises_the_named_error,
                 test_deeply_nested_python_values_are_named, test_durations_load_or_raise_the_named_error):
        try:
            test()
        except AssertionError as e:  # keep counting: the tally is the point of running it as a script
            print(f"{test.__name__}: FAILED: {str(e)[:500]}")
    total = TALLY["inputs"]
    print(f"inputs: {total}, loaded: {TALLY['loaded']}, named errors: {TALLY['named errors']}, "
          f"crashes: {TALLY['crashes']}, accepted nonsense: {TALLY['accepted nonsense']}")
    for message in FOUND.values():
        print(" -", message[:400])


if __name__ == "__main__":
    main()
