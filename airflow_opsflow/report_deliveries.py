"""Where ReportOperator sends a report: a Slack channel (message, or files with the message as their comment)
or an email (HTML table, inline chart, attachments). Each destination checks the report against its
limits before anything is sent."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import TYPE_CHECKING, Any

from airflow_opsflow.core.text import cut

if TYPE_CHECKING:
    from airflow_opsflow.reports.output import RenderedReport

SLACK_SECTION = 3000  # characters of a section block's text, and of what we put in a file's comment
SLACK_MAX_FILE = 1_000_000_000  # Slack's own per-file limit


class ReportDelivery:
    """Base of the report deliveries (where a report is sent).

    :param max_rows: rows shown inline (the rest is in the attached file).
    :param name: the destination's id in the state store (default derived from where it sends); keep it
        stable, since a retried task skips the destinations already reached by name.
    """

    kind = "destination"
    # Rendered with Jinja when ReportOperator runs (``deliver`` is a templated field); see each subclass.
    template_fields: tuple[str, ...] = ()

    def __init__(self, *, max_rows: int = 20, name: str | None = None) -> None:
        if max_rows < 0:
            raise ValueError("max_rows must be >= 0")
        self.max_rows = max_rows
        self._name = name

    @property
    def name(self) -> str:
        return (self._name or f"{self.kind}:{self.where()}")[:250]

    def where(self) -> str:
        raise NotImplementedError

    def check(self, report: RenderedReport) -> None:
        """Raise :class:`~airflow_opsflow.reports.output.ReportTooLarge` when this destination cannot take
        ``report``. Called for every destination before any sends."""

    def deliver(self, report: RenderedReport) -> dict[str, Any]:
        """Send ``report``; return what identifies the delivery (message ts, Message-ID). Raise on failure."""
        raise NotImplementedError


class SlackReport(ReportDelivery):
    """Post a report to a Slack channel (Web API connection). With files (CSV, XLSX, the chart) they are
    uploaded together (file upload v2) as one message whose comment is the title and the table; without,
    the report is a message with the table.

    :param channel: ``#name`` or a channel id. (templated)
    :param conn_id: a ``slack`` connection (bot token with ``chat:write``, ``files:write``, ``channels:read``).
        (templated)
    :param max_file_bytes: refuse files larger than this (default Slack's 1 GB).
    """

    kind = "slack"
    template_fields: tuple[str, ...] = ("channel", "conn_id")

    def __init__(self, *, channel: str, conn_id: str = "slack_api_default", max_file_bytes: int = SLACK_MAX_FILE,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.channel = channel
        self.conn_id = conn_id
        self.max_file_bytes = max_file_bytes

    def where(self) -> str:
        return f"{self.conn_id}/{self.channel}"

    def check(self, report: RenderedReport) -> None:
        from airflow_opsflow.reports.output import ReportTooLarge

        if len(self.text(report)) > SLACK_SECTION:  # cannot happen by construction; never let Slack refuse it
            raise ReportTooLarge(f"the message for {self.name} is over Slack's {SLACK_SECTION:,} characters")
        for a in report.attachments:
            if len(a.content) > self.max_file_bytes:
                raise ReportTooLarge(f"{a.filename} is {len(a.content):,} bytes, over the {self.max_file_bytes:,} "
                                     f"bytes {self.name} takes")

    def text(self, report: RenderedReport) -> str:
        """Title, description and as much of the table as fits in one Slack text."""
        from airflow_opsflow.incidents.slack_render import escape
        from airflow_opsflow.reports.render import text_table

        head = f"*{escape(cut(report.title, 300))}*"
        if report.description:
            head += f"\n{escape(cut(report.description, 700))}"
        if report.empty:
            return head + "\n_No rows for this report._"
        budget = SLACK_SECTION - len(head) - 150  # the code fences and the "more rows" note
        rows = self.max_rows
        while True:  # escaping (&, <, >) lengthens the table: measure what is sent
            table, shown = text_table(report.frame, rows, budget, fence="```")  # no cell ends the code block
            body = escape(table)
            if len(body) <= budget or shown == 0:
                break
            rows = shown - max(1, shown // 4)
        note = report.more_rows_note(shown)
        return head + (f"\n```{body}```" if shown else "") + (f"\n_{escape(note)}_" if note else "")

    def deliver(self, report: RenderedReport) -> dict[str, Any]:
        from airflow.providers.slack.hooks.slack import SlackHook

        hook = SlackHook(slack_conn_id=self.conn_id)
        text = self.text(report)
        if report.attachments:
            channel = hook.get_channel_id(self.channel.lstrip("#")) if self.channel.startswith("#") else self.channel
            response = hook.send_file_v2(channel_id=channel, initial_comment=text, file_uploads=[
                {"file": a.content, "filename": a.filename, "title": a.filename}  # type: ignore[typeddict-item]
                for a in report.attachments])
            return {"channel": channel, "files": [f.get("id") for f in response.get("files") or []]}
        response = hook.client.chat_postMessage(channel=self.channel, text=report.title, unfurl_links=False,
                                                blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": text}}])
        return {"channel": response["channel"], "ts": response["ts"]}


def _addresses(value: list[str] | str) -> list[str]:
    """Addresses from a list or a comma-separated string (``"Doe, J" <j@x>`` stays one address)."""
    from email.utils import getaddresses

    return [addr for _, addr in getaddresses([value] if isinstance(value, str) else list(value)) if addr]


class EmailReport(ReportDelivery):
    """Email a report: an HTML table (and its plain-text twin), the chart inline, the files attached.

    :param to: recipients (a list or a comma-separated string). (templated: an item may render to several
        comma-separated addresses)
    :param cc: copy recipients. (templated)
    :param conn_id: an ``smtp`` connection. (templated)
    :param from_email: the sender (default: the connection's ``from_email`` extra). (templated)
    :param max_bytes: refuse a message larger than this, encoded (default 20 MB: most servers take 25 MB).
    """

    kind = "email"
    template_fields: tuple[str, ...] = ("to", "cc", "conn_id", "from_email")

    def __init__(self, *, to: list[str] | str, cc: list[str] | str | None = None, conn_id: str = "smtp_default",
                 from_email: str | None = None, max_bytes: int = 20_000_000, max_rows: int = 50,
                 **kwargs: Any) -> None:
        super().__init__(max_rows=max_rows, **kwargs)
        self.to, self.cc = _addresses(to), _addresses(cc or [])
        if not self.to:
            raise ValueError("EmailReport needs at least one recipient in to=")
        self.conn_id = conn_id
        self.from_email = from_email
        self.max_bytes = max_bytes

    def where(self) -> str:
        return ",".join(_addresses(self.to))

    def message(self, report: RenderedReport, sender: str = "opsflow@localhost") -> EmailMessage:
        from html import escape

        from airflow_opsflow.reports.render import html_table, text_table

        msg = EmailMessage()
        # as rendered: an item of a templated to= may hold several addresses
        msg["Subject"], msg["From"], msg["To"] = report.title, sender, ", ".join(_addresses(self.to))
        if self.cc:
            msg["Cc"] = ", ".join(_addresses(self.cc))
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid("opsflow")
        lines, html = [report.title, ""], [f"<h2>{escape(report.title)}</h2>"]
        if report.description:
            lines += [report.description, ""]
            html.append(f"<p>{escape(report.description)}</p>")
        if report.empty:
            lines.append("No rows for this report.")
            html.append("<p><em>No rows for this report.</em></p>")
        else:
            table, shown = text_table(report.frame, self.max_rows, 100_000)
            lines.append(table)
            html.append(html_table(report.frame, shown))
            note = report.more_rows_note(shown)
            if note:
                lines.append(note)
                html.append(f"<p><em>{escape(note)}</em></p>")
        chart = report.chart
        cid = make_msgid("chart")
        if chart:
            html.append(f'<p><img src="cid:{cid[1:-1]}" alt="{escape(report.title)}" style="max-width:100%"></p>')
        msg.set_content("\n".join(lines))
        msg.add_alternative("\n".join(html), subtype="html")
        if chart:  # inline, referenced by the HTML part's cid
            html_part = msg.get_payload()[1]  # type: ignore[index]
            assert isinstance(html_part, EmailMessage)
            html_part.add_related(chart.content, maintype="image", subtype="png", cid=cid, filename=chart.filename,
                                  disposition="inline")
        for a in report.attachments:
            if a is not chart:
                maintype, subtype = a.mime.split("/", 1)
                msg.add_attachment(a.content, maintype=maintype, subtype=subtype, filename=a.filename)
        return msg

    def check(self, report: RenderedReport) -> None:
        from airflow_opsflow.reports.output import ReportTooLarge

        size = len(self.message(report).as_bytes())
        if size > self.max_bytes:
            raise ReportTooLarge(f"the email is {size:,} bytes encoded, over the {self.max_bytes:,} bytes "
                                 f"{self.name} takes (attach fewer formats, or filter the report)")

    def deliver(self, report: RenderedReport) -> dict[str, Any]:
        from airflow.providers.smtp.hooks.smtp import SmtpHook

        with SmtpHook(smtp_conn_id=self.conn_id) as hook:
            sender = self.from_email or hook.from_email or "opsflow@localhost"
            msg = self.message(report, sender)
            client = hook._smtp_client
            if not isinstance(client, smtplib.SMTP):
                raise RuntimeError(f"SMTP connection {self.conn_id!r} did not open a synchronous client")
            refused = client.send_message(msg, from_addr=sender, to_addrs=_addresses(self.to) + _addresses(self.cc))
        if refused:  # the others have it: a retry would send it to them twice
            self.log_refused(refused)
        return {"message_id": msg["Message-ID"], "refused": sorted(refused)}

    def log_refused(self, refused: dict[str, Any]) -> None:
        import logging

        logging.getLogger(__name__).warning("%s: the server refused %s; the other recipients got the report",
                                            self.name, ", ".join(f"{a} ({c})" for a, c in refused.items()))
