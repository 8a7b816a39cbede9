"""A report frame as what people read: a fixed-width table (Slack, plain text), an HTML table (email),
CSV, XLSX and a PNG chart. Numbers are formatted for people (thousands separators, 2 decimals)."""

from __future__ import annotations

import io
import numbers
from collections.abc import Callable
from datetime import date, datetime, time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from airflow_opsflow.core import tables
from airflow_opsflow.core.text import cut

if TYPE_CHECKING:
    import pandas as pd

    from airflow_opsflow.core.tables import Align
    from airflow_opsflow.reports.spec import Chart


def cell(value: Any) -> str:
    """One value as shown: ``12,345``, ``1,234.50``, ``2026-11-01``, empty for NULL/NaN/NaT."""
    if value is None or str(value) in ("NaT", "<NA>") or (isinstance(value, numbers.Real | Decimal)
                                                           and value != value):  # NaN, of any kind
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, numbers.Integral):  # numpy's integers too
        return f"{int(value):,}"
    if isinstance(value, numbers.Real | Decimal):
        return f"{float(value):,.2f}"
    if isinstance(value, datetime):  # pandas' Timestamp too
        return value.isoformat(sep=" ").removesuffix(" 00:00:00")
    if isinstance(value, date | time):
        return value.isoformat()
    return str(value)


def rows_of(df: pd.DataFrame, limit: int) -> tuple[list[str], list[list[str]]]:
    header = [str(c) for c in df.columns]
    return header, [[cell(v) for v in row] for row in df.head(limit).itertuples(index=False)]


def _aligns(df: pd.DataFrame) -> list[Align]:
    """Numbers right-aligned, so digits line up."""
    return ["right" if df[c].dtype.kind in "iuf" else "left" for c in df.columns]


def text_table(df: pd.DataFrame, max_rows: int, max_chars: int, fence: str | None = None) -> tuple[str, int]:
    """A fixed-width table of at most ``max_rows`` rows and ``max_chars`` characters; returns it and the
    number of rows shown (fewer rows when the width would not fit). ``fence``: the code block's delimiter
    around it, which no cell may end (see :func:`airflow_opsflow.core.tables.text_table`)."""
    header, rows = rows_of(df, max_rows)
    align = _aligns(df)
    while rows:
        text = tables.text_table(header, rows, align=align, fence=fence)
        if len(text) <= max_chars:
            return text, len(rows)
        rows = rows[: max(len(rows) // 2, len(rows) - 5) if len(rows) > 5 else len(rows) - 1]
    return cut(tables.text_table(header, [], align=align, fence=fence), max_chars), 0


def html_table(df: pd.DataFrame, max_rows: int) -> str:
    header, rows = rows_of(df, max_rows)
    return tables.html_table(header, rows, align=_aligns(df),
                             table_style="border-collapse:collapse;font-family:sans-serif;font-size:13px",
                             th_style="padding:4px 10px;border-bottom:2px solid #444",
                             td_style="padding:4px 10px;border-bottom:1px solid #ddd")


EXCEL_CELL_MAX = 32_767  # characters Excel keeps in a cell (openpyxl would cut longer text silently)
EXCEL_ROWS, EXCEL_COLUMNS = 1_048_576, 16_384


class RenderError(ValueError):
    """A value a file format cannot take; the message names the sheet and column."""


def file_values(df: pd.DataFrame) -> pd.DataFrame:
    """The numbers files carry, as people read them: a float column of decimals (money summed or
    subtracted in floating point) at its decimals, ``3225.78`` and ``772.74`` as in the message, not
    ``3225.7799999999997`` and ``772.739999999998``; other floats to 15 significant digits (as Excel shows
    them)."""
    out = df
    for i in range(df.shape[1]):
        col = df.iloc[:, i]
        if col.dtype.kind != "f":
            continue
        out = out.copy() if out is df else out
        decimals = _decimals(col.to_numpy(dtype="float64", na_value=float("nan")))
        if decimals is not None:
            out.isetitem(i, col.round(decimals))
        else:
            fmt = f"{{:.{6 if col.dtype == 'float32' else 15}g}}"
            out.isetitem(i, col.map(lambda v, f=fmt: float(f.format(v)), na_action="ignore"))
    return out


def _decimals(values: Any) -> int | None:
    """The fewest decimals (up to 9) every value of a column has, but for floating-point noise: a
    difference from them below 1e-12 of the column's largest value (float arithmetic's error, far above
    what a real digit at that magnitude could be). None when the values have more."""
    import numpy as np

    finite = values[np.isfinite(values)]
    if not finite.size:
        return None
    noise = float(np.abs(finite).max()) * 1e-12
    for d in range(10):
        if noise * 100 >= 10.0**-d:  # digits this fine are noise at this magnitude: not a decimal column
            return None
        if np.all(np.abs(finite - np.round(finite, d)) <= noise):
            return d
    return None


def csv_bytes(df: pd.DataFrame) -> bytes:
    try:
        return file_values(df).to_csv(index=False).encode("utf-8")
    except Exception as e:  # a value pandas cannot write (an object whose text fails): say which column
        column = _failing_column(df, lambda part: part.to_csv(index=False).encode("utf-8"))
        raise RenderError(f"{_at(None, column)}{type(e).__name__}: {e}") from e


def xlsx_bytes(sheets: dict[str, pd.DataFrame], notes: list[tuple[str, str]] | None = None) -> bytes:
    """One sheet per frame (Excel caps sheet names at 31 characters), header row bold and frozen. Text
    Excel cannot hold is made to fit and said in ``notes`` (``(sheet, what)``): control characters (but
    tab and line breaks) are removed, cells over 32,767 characters cut (ending in "…")."""
    try:
        import openpyxl  # noqa: F401 - pandas' engine; fail here with the fix, not deep inside pandas
    except ImportError:
        raise RuntimeError("XLSX reports need openpyxl: pip install 'airflow-opsflow[reports]'") from None
    import pandas as pd

    buffer = io.BytesIO()
    with pd.ExcelWriter(buffer, engine="openpyxl") as writer:
        used: set[str] = set()
        for name, frame in sheets.items():
            sheet = name[:31]
            n = 2
            while sheet.lower() in used:  # Excel compares sheet names case-blind, cut at 31 characters
                sheet = f"{name[:27]}_{n}"
                n += 1
            used.add(sheet.lower())
            if len(frame) >= EXCEL_ROWS or frame.shape[1] > EXCEL_COLUMNS:
                raise RenderError(f"sheet {sheet!r} has {len(frame):,} rows and {frame.shape[1]:,} columns; Excel "
                                  f"holds {EXCEL_ROWS - 1:,} rows under the header and {EXCEL_COLUMNS:,} columns: "
                                  "send a CSV (files=['csv'])")
            ready = _excel_text(_naive(file_values(frame)), sheet, notes if notes is not None else [])
            try:
                ready.to_excel(writer, sheet_name=sheet, index=False)
            except Exception as e:
                column = _failing_column(ready, _scratch_xlsx)
                raise RenderError(f"{_at(sheet, column)}{type(e).__name__}: {e}") from e
            ws = writer.sheets[sheet]
            ws.freeze_panes = "A2"
            for column in ws.columns:
                for c in column:
                    if c.data_type == "f":  # data, never a formula: "=HYPERLINK(...)" from a database stays text
                        c.data_type = "s"
                width = max(len(str(c.value)) if c.value is not None else 0 for c in column)
                ws.column_dimensions[column[0].column_letter].width = min(max(width + 2, 8), 60)
    return buffer.getvalue()


def _excel_text(df: pd.DataFrame, sheet: str, notes: list[tuple[str, str]]) -> pd.DataFrame:
    import pandas as pd
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE, KNOWN_TYPES

    def fit(value: Any, counts: list[int]) -> Any:
        if not isinstance(value, KNOWN_TYPES):  # a PostgreSQL array or JSON, a UUID: its text, as in the CSV
            value = str(value)
        if not isinstance(value, str):
            return value
        if ILLEGAL_CHARACTERS_RE.search(value):
            value = ILLEGAL_CHARACTERS_RE.sub("", value)
            counts[0] += 1
        if len(value) > EXCEL_CELL_MAX:
            value = value[: EXCEL_CELL_MAX - 1] + "…"
            counts[1] += 1
        return value

    out = df
    header = [0, 0]
    names = [fit(c, header) for c in df.columns]
    if header != [0, 0]:
        out = df.set_axis(names, axis=1)
        notes.append((sheet, f"control characters removed from column names (sheet {sheet!r})"))
    for i in range(df.shape[1]):
        col = out.iloc[:, i]
        if col.dtype != object and not isinstance(col.dtype, pd.StringDtype):
            continue
        counts = [0, 0]
        fitted = col.map(lambda v, c=counts: fit(v, c), na_action="ignore")
        if counts == [0, 0]:
            continue
        out = out.copy() if out is df else out
        out.isetitem(i, fitted)
        where = f"column {str(out.columns[i])!r} (sheet {sheet!r})"
        if counts[0]:
            notes.append((sheet, f"control characters Excel cannot store removed from {counts[0]:,} cell(s) "
                                 f"of {where}"))
        if counts[1]:
            notes.append((sheet, f"{counts[1]:,} cell(s) of {where} longer than Excel's {EXCEL_CELL_MAX:,} "
                                 "characters cut"))
    return out


def _scratch_xlsx(df: pd.DataFrame) -> None:
    import pandas as pd

    with pd.ExcelWriter(io.BytesIO(), engine="openpyxl") as writer:
        df.to_excel(writer, index=False)


def _failing_column(df: pd.DataFrame, write: Callable[[pd.DataFrame], object]) -> str | None:
    """The first column that fails alone (to name it in the error); None when none or all do (then the
    cause is not a column's)."""
    failing = []
    for i in range(df.shape[1]):
        try:
            write(df.iloc[:, [i]])
        except Exception:
            failing.append(str(df.columns[i]))
    return failing[0] if len(failing) == 1 or 0 < len(failing) < df.shape[1] else None


def _at(sheet: str | None, column: str | None) -> str:
    where = ([f"sheet {sheet!r}"] if sheet else []) + ([f"column {column!r}"] if column else [])
    return f"{', '.join(where)}: " if where else ""


def _naive(df: pd.DataFrame) -> pd.DataFrame:
    """Excel has no time zones: aware timestamps become naive UTC (the header does not say so; ISO text
    would lose Excel's date handling)."""
    import pandas as pd

    out = df
    for c in df.columns:
        col = df[c]
        aware = isinstance(col.dtype, pd.DatetimeTZDtype) or (
            col.dtype == object and len(col.dropna()) and all(isinstance(v, datetime) and v.tzinfo is not None
                                                                for v in col.dropna().head(50)))
        if aware:
            out = out.copy() if out is df else out
            out[c] = pd.to_datetime(col, utc=True).dt.tz_convert(None)
    return out


def png_bytes(df: pd.DataFrame, chart: Chart, title: str) -> bytes:
    try:
        import matplotlib
    except ImportError:
        raise RuntimeError("charts need matplotlib: pip install 'airflow-opsflow[reports]'") from None
    matplotlib.use("Agg", force=True)  # no display on a worker
    import matplotlib.pyplot as plt

    from airflow_opsflow.reports.build import TOTAL_ROW

    label = df.attrs.get(TOTAL_ROW)
    if label is not None and len(df.columns):  # a total bar would dwarf the rest
        df = df[df[df.columns[0]] != label]
    y = chart.y or [c for c in df.columns if c != chart.x and df[c].dtype.kind in "iuf"]
    missing = [c for c in [chart.x, *y] if c not in df.columns]
    if missing:
        raise ValueError(f"the chart's columns {missing} are not in the report "
                         f"(columns: {', '.join(map(str, df.columns))})")
    if not y:
        raise ValueError("the chart has no numeric column to plot: give 'y'")
    fig, ax = plt.subplots(figsize=(9, 4.8), dpi=110)
    try:
        short = df[chart.x].astype(str).str.len().max() <= 12 if len(df) else True
        df.plot(x=chart.x, y=y, kind=chart.kind, ax=ax, stacked=chart.stacked, title=chart.title or title,
                rot=0 if short else 45)
        ax.grid(axis="y" if chart.kind != "barh" else "x", alpha=0.3)
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
    finally:
        plt.close(fig)
    return buffer.getvalue()
