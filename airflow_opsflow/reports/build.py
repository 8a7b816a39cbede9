"""Run a report's steps over the frames its queries returned (pandas, imported when a report runs)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_opsflow.reports.spec import (
    Compute,
    Concat,
    Filter,
    Group,
    Head,
    Merge,
    Pivot,
    Rename,
    ReportSpec,
    Round,
    Select,
    Sort,
    Total,
)

if TYPE_CHECKING:
    import pandas as pd


TOTAL_ROW = "opsflow_total_row"
NUMERIC_AGGS = ("sum", "mean", "median")

# A column's kind from the driver's type code (cursor.description), for columns whose values cannot tell
# it (an empty result, all NULL): without it an empty week is all `object` and `revenue - settled` fails.
# PostgreSQL: the built-in type OIDs (psycopg 2 and 3); MySQL/MariaDB: FIELD_TYPE (MySQLdb, PyMySQL).
# SQLite's driver gives no types: see _untyped.
_KINDS: dict[str, dict[int, str]] = {
    "postgres": {16: "bool", 20: "int", 21: "int", 23: "int", 26: "int", 700: "float", 701: "float",
                 1700: "float", 1114: "datetime", 1184: "datetime_tz"},
    "mysql": {0: "float", 4: "float", 5: "float", 246: "float", 1: "int", 2: "int", 3: "int", 8: "int", 9: "int",
              13: "int", 7: "datetime", 12: "datetime"},
}


class ReportBuildError(ValueError):
    """A step failed on the data (a missing column, a bad expression); the message names the step."""


def build(spec: ReportSpec, frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Apply the steps in order; returns every frame (queries' and steps'), the report's under
    ``spec.result_frame``."""
    frames = dict(frames)
    current = spec.queries[0].name
    for i, step in enumerate(spec.steps):
        source = step.frame or current
        try:
            out = _apply(step, frames[source], frames)
        except ReportBuildError:
            raise
        except Exception as e:  # pandas raises KeyError, ValueError, TypeError, UndefinedVariableError...
            text = f"{type(e).__name__}: {e}" if not isinstance(e, KeyError) else f"no column {e}"
            raise ReportBuildError(f"step #{i + 1} ({step.op}) on frame {source!r} failed: {text} "
                                   f"(columns: {', '.join(map(str, frames[source].columns))})") from None
        current = step.into or source
        frames[current] = out
    return frames


def column_kinds(dialect: str, description: Sequence[Sequence[Any]] | None) -> list[str | None]:
    """Each result column's kind (``int``, ``float``, ``bool``, ``datetime``, ``datetime_tz``) from a
    cursor description, ``None`` where the driver does not say."""
    codes = _KINDS.get(dialect, {})
    return [codes.get(d[1]) if isinstance(d[1], int) else None for d in description or []]


def frame_of(names: list[str], rows: list[tuple[Any, ...]], kinds: Sequence[str | None] = ()) -> pd.DataFrame:
    """A query's rows as a frame: decimals as numbers, and the columns no value types (no rows, all
    NULL) typed from the driver's ``kinds``, so an empty result keeps its numbers and times."""
    import pandas as pd

    df = to_numbers(pd.DataFrame.from_records(rows, columns=names))
    for i, kind in enumerate(kinds):
        col = df.iloc[:, i]
        if kind is None or col.dtype != object or col.notna().any():
            continue
        if kind == "int":
            dtype = "int64" if df.empty else "float64"  # NULLs: pandas' integers with NaN are floats
        elif kind == "bool":
            dtype = "bool" if df.empty else "object"
        else:
            dtype = {"float": "float64", "datetime": "datetime64[us]", "datetime_tz": "datetime64[us, UTC]"}[kind]
        df.isetitem(i, col.astype(dtype))
    return df


def _untyped(df: pd.DataFrame) -> list[Any]:
    """Columns without a value to tell their type (no rows, or all NULL, from a driver that gives no
    types): arithmetic and numeric aggregates read them as numbers (NaN), not as Python objects."""
    return [c for c in df.columns if df[c].dtype == object and not df[c].notna().any()]


def _apply(step: Any, df: pd.DataFrame, frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    import pandas as pd

    if isinstance(step, Merge):
        return df.merge(frames[step.right], how=step.how, on=step.on, left_on=step.left_on,
                        right_on=step.right_on, suffixes=step.suffixes)
    if isinstance(step, Concat):
        return pd.concat([frames[f] for f in step.frames], ignore_index=True)
    if isinstance(step, Filter):
        return df.query(step.query).reset_index(drop=True)
    if isinstance(step, Compute):
        out = df.copy()
        typed = out.astype(dict.fromkeys(_untyped(out), "float64"))  # what the expressions read
        for column, expression in step.columns.items():
            out[column] = typed[column] = typed.eval(expression)
        return out
    if isinstance(step, Group):
        named = {out: (how, out) if isinstance(how, str) else (how[1], how[0]) for out, how in step.agg.items()}
        summed = {col for func, col in named.values() if func in NUMERIC_AGGS} - set(step.by)
        df = df.astype({c: "float64" for c in _untyped(df) if c in summed})
        return df.groupby(step.by, dropna=False).agg(**{out: (col, func) for out, (func, col) in named.items()}
                                                     ).reset_index()
    if isinstance(step, Pivot):
        if step.aggfunc in NUMERIC_AGGS and step.values in _untyped(df):
            df = df.astype({step.values: "float64"})
        out = df.pivot_table(index=step.index, columns=step.columns, values=step.values, aggfunc=step.aggfunc,
                             fill_value=step.fill_value, observed=True)
        out.columns = [str(c) for c in out.columns]
        return out.reset_index()
    if isinstance(step, Sort):
        return df.sort_values(step.by, ascending=step.ascending, kind="stable").reset_index(drop=True)
    if isinstance(step, Head):
        return df.head(step.n)
    if isinstance(step, Rename):
        missing = [c for c in step.columns if c not in df.columns]
        if missing:
            raise KeyError(", ".join(map(repr, missing)))
        return df.rename(columns=step.columns)
    if isinstance(step, Select):
        return df[list(step.columns)]
    if isinstance(step, Total):
        return _with_total(df, step.label)
    if isinstance(step, Round):
        return df.round(step.decimals)
    raise AssertionError(f"unhandled step {step!r}")


def _with_total(df: pd.DataFrame, label: str) -> pd.DataFrame:
    import pandas as pd

    if df.empty or not len(df.columns):  # no rows: no total (an empty report stays empty)
        return df
    first = df.columns[0]
    numeric = [c for c in df.select_dtypes("number").columns if c != first]
    total: dict[str, Any] = {c: df[c].sum() for c in numeric}
    total[first] = label  # the label column holds text, even when it was a number (a year)
    body = df.astype({first: object})
    out = pd.concat([body, pd.DataFrame([total], columns=df.columns)], ignore_index=True)
    out.attrs[TOTAL_ROW] = label  # charts leave it out (pandas carries attrs through later steps)
    return out


def to_numbers(df: pd.DataFrame) -> pd.DataFrame:
    """Database decimals arrive as objects: make numeric columns numeric so sums and charts work."""
    import pandas as pd

    out = df.copy()
    for c in out.columns:
        if out[c].dtype == object:
            sample = out[c].dropna().head(50)
            if len(sample) and all(type(v).__name__ == "Decimal" for v in sample):
                out[c] = pd.to_numeric(out[c])
    return out
