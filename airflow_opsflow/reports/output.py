"""A built report rendered once for every destination: the frame, its files and chart, sizes known before
anything is sent (so a report too large for a channel fails whole, not half-sent)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from airflow_opsflow.reports import render

if TYPE_CHECKING:
    import pandas as pd

    from airflow_opsflow.reports.spec import Chart

FileFormat = Literal["csv", "xlsx"]
FORMATS = ("csv", "xlsx")


class ReportTooLarge(ValueError):
    """A destination cannot take the report; nothing was sent."""


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
    """Render the ``output`` frame. XLSX gets the report as its first sheet, then ``sheets`` frames."""
    df = frames[output]
    base = filename or slug(title)
    attachments: list[Attachment] = []
    if not df.empty:
        for kind in files:
            if kind == "csv":
                attachments.append(Attachment(f"{base}.csv", render.csv_bytes(df), "text/csv"))
            else:
                book = {"report": df, **{s: frames[s] for s in sheets or [] if s != output}}
                attachments.append(Attachment(f"{base}.xlsx", render.xlsx_bytes(book),
                                              "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"))
        if chart is not None:
            attachments.append(Attachment(f"{base}.png", render.png_bytes(df, chart, title), "image/png"))
    return RenderedReport(title, description, df, attachments)
