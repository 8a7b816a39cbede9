"""Tables for messages: monospace text (Slack code blocks, plain-text email, Jira ``{noformat}``) and HTML
(email), laid out by tabulate. Cells become one line of text, cut to a width; a table meant to sit inside a
fence (```` ``` ````, ``{noformat}``) cannot close it, whatever its cells hold.

tabulate is imported inside the functions: alert and report modules are imported when DAG files are parsed."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime, time
from html import escape
from typing import Literal

from airflow_opsflow.core.text import cut

Align = Literal["left", "right", "center"]

_ZWSP = "\u200b"  # zero width: a fence broken by it reads the same and keeps the columns lined up


def cell_text(value: object, width: int | None = None, *, null: str = "", ellipsis: str = "…") -> str:
    """One value as a cell shows it, on one line and at most ``width`` characters: ``null`` for None,
    dates in ISO form (``2026-11-01 09:30:00``), dicts and lists as JSON, anything else as ``str()`` gives it
    (``Decimal('1.50')`` is ``1.50``)."""
    if value is None:
        text = null
    elif isinstance(value, str):
        text = value
    elif isinstance(value, datetime):  # before date: a datetime is a date
        text = value.isoformat(sep=" ")
    elif isinstance(value, date | time):
        text = value.isoformat()
    elif isinstance(value, dict | list | tuple):
        text = json.dumps(value, default=str, ensure_ascii=False)
    else:
        text = str(value)
    # A line break or tab would break the row (and its alignment) in a monospace table.
    text = " ".join(text.replace("\t", " ").splitlines()) if not text.isprintable() else text
    return cut(text, width, ellipsis) if width is not None else text


def text_table(headers: Sequence[object], rows: Iterable[Sequence[object]], *, align: Sequence[Align] | None = None,
               max_width: int | None = None, null: str = "", rule: bool = False, fence: str | None = None) -> str:
    """A monospace table: columns two spaces apart, no trailing spaces.

    :param align: per column (default left); a header is aligned with its column.
    :param max_width: cut longer cells (headers too) to this many characters.
    :param null: what None shows as.
    :param rule: a line of dashes under the header.
    :param fence: the delimiter the caller puts around the table (```` ``` ```` for Slack, ``{noformat}`` for
        Jira): wherever a cell contains it, a zero-width space breaks it, so data cannot end the block.
    """
    from tabulate import tabulate

    head, body = _texts(headers, rows, max_width, null)
    colalign = list(align) if align else None
    if rule:
        table = tabulate(body, head, tablefmt="simple", disable_numparse=True, colalign=colalign)
    else:  # the header as a row: as headers tabulate widens each column by two spaces, wasting a Slack text
        table = tabulate([head, *body], tablefmt="plain", disable_numparse=True, colalign=colalign)
    table = "\n".join(line.rstrip() for line in table.splitlines())
    return _break_fence(table, fence) if fence else table


def html_table(headers: Sequence[object], rows: Iterable[Sequence[object]], *,
               align: Sequence[Align] | None = None, max_width: int | None = None, null: str = "",
               table_style: str = "", th_style: str = "", td_style: str = "") -> str:
    """An HTML table with every header and cell escaped; the styles are inline (email clients drop
    ``<style>``), each cell's own ``text-align`` added to ``th_style``/``td_style``."""
    from tabulate import tabulate

    head, body = _texts(headers, rows, max_width, null)
    html = tabulate(body, head, tablefmt="html", disable_numparse=True, colalign=list(align) if align else None)

    # tabulate escapes the cells ("html", not "unsafehtml"), so every "<" left is its own markup; it pads
    # cells with spaces and marks alignment as style="text-align: right;": restyle and trim each cell.
    def styled(m: re.Match[str]) -> str:
        tag, side, content = m[1], m[2] or "left", m[3].strip()
        style = ";".join(s for s in ((th_style if tag == "th" else td_style).rstrip("; "), f"text-align:{side}") if s)
        return f'<{tag} style="{escape(style)}">{content}</{tag}>'

    html = re.sub(r'<(t[hd])(?: style="text-align: (\w+);")?>([^<]*)</\1>', styled, html)
    if table_style:
        html = html.replace("<table>", f'<table style="{escape(table_style)}">', 1)
    return html


def _texts(headers: Sequence[object], rows: Iterable[Sequence[object]], width: int | None,
           null: str) -> tuple[list[str], list[list[str]]]:
    # Text only, and numbers never parsed: tabulate would turn "007" into 7 and reformat "1,234.50".
    return ([cell_text(h, width, null=null) for h in headers],
            [[cell_text(v, width, null=null) for v in row] for row in rows])


def _break_fence(text: str, fence: str) -> str:
    """``text`` with a zero-width space after the first character of each ``fence`` (in any case: Jira reads
    ``{NOFORMAT}`` too), repeated until none is left (four backticks hold a second run of three), and at an
    end that would run into the fence around it (a last cell ending in "``" then "```")."""
    pattern = re.compile(re.escape(fence), re.IGNORECASE)
    while pattern.search(text):
        text = pattern.sub(lambda m: m[0][0] + _ZWSP + m[0][1:], text)
    if text.startswith(fence[-1]):
        text = _ZWSP + text
    if text.endswith(fence[0]):
        text += _ZWSP
    return text
