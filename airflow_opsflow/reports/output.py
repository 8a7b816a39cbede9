"""A built report rendered once for every destination: the frame, its files and chart, sizes known before
anything is sent (so a report too large for a channel fails whole, not half-sent)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

from airflow_opsflow.reports import render

if TYPE_CHECKING:
    import pandas as pd

    from airflow_opsflow.reports.spec import Chart

FileFormat = Literal["csv", "xlsx"]
FORMATS = ("csv", "xlsx")


class ReportTooLarge(ValueError):
    """A destination cannot take the report; nothing was sent."""


class ReportRenderError(ValueError):
    """A file or the chart could not be made from the report; the message names the file (and the sheet
    and column when one is at fault)."""


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    mime: str


@dataclass
class RenderedReport:
    """What every destination sends: title, description, the report frame (for inline tables) and its
    attachments (files, then the chart)."""

    title: str
    description: str | None
    frame: pd.DataFrame
    attachments: list[Attachment] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the files could not carry as it is (also in description)

    @property
    def rows(self) -> int:
        return len(self.frame)

    @property
    def empty(self) -> bool:
        return self.frame.empty

    @property
    def chart(self) -> Attachment | None:
        return next((a for a in self.attachments if a.mime == "image/png"), None)

    @property
    def data_file(self) -> Attachment | None:
        return next((a for a in self.attachments if a.mime != "image/png"), None)

    def more_rows_note(self, shown: int) -> str:
        """``"… 120 more rows in report.csv"`` when the inline table was cut."""
        if shown >= self.rows:
            return ""
        where = f" in {self.data_file.filename}" if self.data_file else " (attach a file: files=['csv'])"
        return f"… {self.rows - shown:,} more row(s){where}"


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()[:80] or "report"


def render_report(frames: dict[str, pd.DataFrame], output: str, title: str, description: str | None,
                  files: tuple[FileFormat, ...], chart: Chart | None, filename: str | None = None,
                  sheets: list[str] | None = None) -> RenderedReport:
    """Render the ``output`` frame. XLSX gets the report as its first sheet, then ``sheets`` frames.
    What a file had to change (text Excel cannot hold) is in the report's ``notes`` and, for the people
    reading it, under the description."""
    df = frames[output]
    base = filename or slug(title)
    attachments: list[Attachment] = []
    notes: list[str] = []
    if not df.empty:
        for kind in files:
            name = f"{base}.{kind}"
            if kind == "csv":
                attachments.append(Attachment(name, _rendered(name, render.csv_bytes, df), "text/csv"))
            else:
                book = {"report": df, **{s: frames[s] for s in sheets or [] if s != output}}
                changed: list[tuple[str, str]] = []
                content = _rendered(name, partial(render.xlsx_bytes, notes=changed), book)
                whole = f"; {base}.csv has them as they are" if "csv" in files else ""
                notes += [f"{name}: {what}{whole if sheet == 'report' else ''}" for sheet, what in changed]
                attachments.append(Attachment(name, content,
                                              "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"))
        if chart is not None:
            name = f"{base}.png"
            attachments.append(Attachment(name, _rendered(name, lambda d: render.png_bytes(d, chart, title), df),
                                          "image/png"))
    shown = "\n".join(x for x in [description, *notes] if x) or None
    return RenderedReport(title, shown, df, attachments, notes)


def _rendered(name: str, make: Callable[[Any], bytes], data: Any) -> bytes:
    try:
        return make(data)
    except Exception as e:  # a value a format cannot take, a library's own error: name the file
        text = str(e) if isinstance(e, ValueError | RuntimeError) else f"{type(e).__name__}: {e}"
        raise ReportRenderError(f"{name}: {text}") from e
