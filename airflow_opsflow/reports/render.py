"""A report frame as what people read: a fixed-width table (Slack, plain text), an HTML table (email),
CSV, XLSX and a PNG chart. Numbers are formatted for people (thousands separators, 2 decimals)."""

from __future__ import annotations

import io
import numbers
from datetime import date, datetime, time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

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


def aligned(df: pd.DataFrame, header: list[str], rows: list[list[str]]) -> str:
    """A monospace table with numeric columns right-aligned, so digits line up."""
    numeric = [df[c].dtype.kind in "iuf" for c in df.columns]
    widths = [max(len(x) for x in col) for col in zip(header, *rows, strict=True)]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if n else v.ljust(w)
                         for v, w, n in zip(values, widths, numeric, strict=True)).rstrip()

    return "\n".join([line(header), *(line(r) for r in rows)])


def text_table(df: pd.DataFrame, max_rows: int, max_chars: int) -> tuple[str, int]:
    """A fixed-width table of at most ``max_rows`` rows and ``max_chars`` characters; returns it and the
    number of rows shown (fewer rows when the width would not fit)."""
    header, rows = rows_of(df, max_rows)
    while rows:
        text = aligned(df, header, rows)
        if len(text) <= max_chars:
            return text, len(rows)
        rows = rows[: max(len(rows) // 2, len(rows) - 5) if len(rows) > 5 else len(rows) - 1]
    text = aligned(df, header, [])
    return (text if len(text) <= max_chars else text[: max_chars - 1] + "…"), 0


def html_table(df: pd.DataFrame, max_rows: int) -> str:
    from html import escape

    header, rows = rows_of(df, max_rows)
    th = 'style="padding:4px 10px;border-bottom:2px solid #444;text-align:left"'
    td = 'style="padding:4px 10px;border-bottom:1px solid #ddd;text-align:{}"'
    numeric = [df[c].dtype.kind in "iuf" for c in df.columns]
    body = "".join("<tr>" + "".join(f"<td {td.format('right' if n else 'left')}>{escape(v)}</td>"
                                    for v, n in zip(r, numeric, strict=True)) + "</tr>" for r in rows)
    return ('<table style="border-collapse:collapse;font-family:sans-serif;font-size:13px"><tr>'
            + "".join(f"<th {th}>{escape(h)}</th>" for h in header) + f"</tr>{body}</table>")


def csv_bytes(df: pd.DataFrame) -> bytes:
    return df.to_csv(index=False).encode("utf-8")


def xlsx_bytes(sheets: dict[str, pd.DataFrame]) -> bytes:
    """One sheet per frame (Excel caps sheet names at 31 characters), header row bold and frozen."""
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
            _naive(frame).to_excel(writer, sheet_name=sheet, index=False)
            ws = writer.sheets[sheet]
            ws.freeze_panes = "A2"
            for column in ws.columns:
                width = max(len(str(c.value)) if c.value is not None else 0 for c in column)
                ws.column_dimensions[column[0].column_letter].width = min(max(width + 2, 8), 60)
    return buffer.getvalue()


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
