"""EmailAlert: one email per incident transition, HTML and plain text, through the SMTP provider."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import TYPE_CHECKING, Any

from airflow_opsflow.incidents import email_render
from airflow_opsflow.incidents.route import AlertRoute

if TYPE_CHECKING:
    from airflow_opsflow.incidents.alert import Alert
    from airflow_opsflow.incidents.repo import Delivery


class EmailAlert(AlertRoute):
    """Send incident alerts by email.

    :param to: recipients (a list or a comma-separated string). (templated: an item may render to several
        comma-separated addresses, e.g. ``"{{ var.value.oncall_emails }}"``)
    :param cc: copy recipients. (templated)
    :param conn_id: an ``smtp`` connection (host, port, credentials, TLS, sender). (templated)
    :param from_email: the sender (default: the connection's ``from_email`` extra). (templated)

    Other parameters: see :class:`~airflow_opsflow.incidents.route.AlertRoute`.
    """

    kind = "email"
    template_fields: tuple[str, ...] = ("to", "cc", "conn_id", "from_email")

    def __init__(self, *, to: list[str] | str, cc: list[str] | str | None = None, conn_id: str = "smtp_default",
                 from_email: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.to = _addresses(to)
        self.cc = _addresses(cc or [])
        if not self.to:
            raise ValueError("EmailAlert needs at least one recipient in to=")
        self.conn_id = conn_id
        self.from_email = from_email

    def where(self) -> str:
        return ",".join(_addresses(self.to))

    def deliver(self, alert: Alert, delivery: Delivery, refs: dict[str, Any]) -> dict[str, Any]:
        from airflow.providers.smtp.hooks.smtp import SmtpHook

        to, cc = _addresses(self.to), _addresses(self.cc or [])  # rendered items may hold several addresses
        if not to:
            raise ValueError(f"EmailAlert({self.name!r}): to= rendered to no recipient")
        subject, html, text = email_render.render(alert, self.sample_columns, self.mask_columns, self.sample_rows)
        with SmtpHook(smtp_conn_id=self.conn_id) as hook:
            sender = self.from_email or hook.from_email or "opsflow@localhost"
            msg = EmailMessage()
            msg["Subject"], msg["From"], msg["To"] = subject, sender, ", ".join(to)
            if cc:
                msg["Cc"] = ", ".join(cc)
            msg["Date"] = formatdate(localtime=False)
            msg["Message-ID"] = make_msgid("opsflow")
            # Follow-ups thread under the incident's first email in mail clients.
            if refs.get("message_id"):
                msg["In-Reply-To"] = msg["References"] = refs["message_id"]
            msg.set_content(text)
            msg.add_alternative(html, subtype="html")
            # The hook's send_email_smtp builds HTML-only messages; we reuse its connection (TLS, auth,
            # retries configured on the connection) to send the multipart/alternative one.
            client = hook._smtp_client
            if not isinstance(client, smtplib.SMTP):  # SMTP_SSL is a subclass; aiosmtplib is async-only
                raise RuntimeError(f"SMTP connection {self.conn_id!r} did not open a synchronous client")
            client.send_message(msg, from_addr=sender, to_addrs=to + cc)
        return refs if refs.get("message_id") else {"message_id": msg["Message-ID"]}


def _addresses(value: list[str] | tuple[str, ...] | str) -> list[str]:
    """Addresses from a comma-separated string or a list whose items may each be one (a rendered template
    such as ``"{{ var.value.oncall_emails }}"`` gives one item holding several)."""
    items = [value] if isinstance(value, str) else list(value)
    return [a.strip() for item in items for a in str(item).split(",") if a.strip()]
