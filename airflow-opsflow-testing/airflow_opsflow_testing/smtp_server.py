"""FakeSmtp: a local SMTP server (aiosmtpd) that records what it receives, for tests.

Airflow's ``SmtpHook`` (apache-airflow-providers-smtp) talks to it unchanged through the connection from
:meth:`FakeSmtp.smtp_connection`, which turns off implicit SSL and STARTTLS (``disable_ssl``,
``disable_tls``: the hook's defaults expect a TLS server)::

    with FakeSmtp() as smtp:
        os.environ.update(smtp.smtp_connection("smtp_default"))
        with SmtpHook(smtp_conn_id="smtp_default") as hook:
            hook.send_email_smtp(to="ops@example.com", subject="Alert", html_content="<b>3 failed</b>")
        assert smtp.mails[0].message["Subject"] == "Alert"

Note that ``SmtpHook.send_email_smtp`` retries a refused delivery up to the connection's ``retry_limit``
extra (default 5) times, immediately: a single temporary error never reaches the caller unless the
connection sets ``retry_limit=0``.
"""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
from dataclasses import dataclass
from email.message import EmailMessage
from types import TracebackType
from typing import Any


@dataclass(frozen=True)
class ReceivedMail:
    """One delivery: the SMTP envelope, the parsed message and the raw bytes."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes

    @property
    def subject(self) -> str:
        return str(self.message["Subject"] or "")

    def body(self, subtype: str = "html") -> str | None:
        """The text of the ``text/<subtype>`` body part (``"html"`` or ``"plain"``), or None."""
        part = self.message.get_body(preferencelist=(subtype,))
        return None if part is None else str(part.get_content())

    @property
    def attachments(self) -> dict[str, bytes]:
        """Attachments by file name, decoded."""
        found: dict[str, bytes] = {}
        for part in self.message.iter_attachments():
            payload = part.get_payload(decode=True)
            found[part.get_filename() or ""] = payload if isinstance(payload, bytes) else b""
        return found


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class _Handler:
    """aiosmtpd handler: runs in the controller's event-loop thread."""

    def __init__(self, fake: FakeSmtp) -> None:
        self.fake = fake

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content or b""
        # SMTP carries CRLF line ends; the email package works with "\n" (else bodies end in "\r\n").
        message = email.message_from_bytes(raw.replace(b"\r\n", b"\n"), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        mail = ReceivedMail(str(envelope.mail_from), list(envelope.rcpt_tos), message, bytes(raw))
        return self.fake._deliver(mail)


class FakeSmtp:
    """An SMTP server on 127.0.0.1 (a free port); a context manager, or ``start()``/``stop()``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self._lock = threading.Lock()
        self._mails: list[ReceivedMail] = []
        self._rejected: list[ReceivedMail] = []
        self._failures: list[tuple[int, str]] = []  # one (code, text) per delivery to refuse
        self._controller: Any = None

    def start(self) -> FakeSmtp:
        from aiosmtpd.controller import Controller  # asyncio and aiosmtpd only when a server is wanted

        if self._controller is not None:
            return self
        attempts = 1 if self.port else 5  # aiosmtpd cannot bind port 0: pick a free one, retry if taken meanwhile
        for attempt in range(attempts):
            port = self.port or _free_port(self.host)
            controller = Controller(_Handler(self), hostname=self.host, port=port, ready_timeout=10)
            try:
                controller.start()
            except OSError:
                if attempt == attempts - 1:
                    raise
                continue
            self._controller, self.port = controller, port
            break
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> FakeSmtp:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def smtp_connection(self, conn_id: str = "smtp_default", *, from_email: str = "airflow@example.com",
                        retry_limit: int | None = None, timeout: int = 10) -> dict[str, str]:
        """``{"AIRFLOW_CONN_<ID>": json}`` for an ``smtp`` connection (SmtpHook, SmtpNotifier) to this server.

        Plain SMTP (``disable_ssl`` and ``disable_tls``), no login; ``from_email`` is the hook's default
        sender; ``retry_limit`` (the hook's default is 5) is how often a refused delivery is retried.
        """
        extra: dict[str, Any] = {"disable_ssl": True, "disable_tls": True, "from_email": from_email,
                                 "timeout": timeout}
        if retry_limit is not None:
            extra["retry_limit"] = retry_limit
        conn = {"conn_type": "smtp", "host": self.host, "port": self.port, "extra": extra}
        return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn)}

    @property
    def mails(self) -> list[ReceivedMail]:
        """Accepted deliveries, in order."""
        with self._lock:
            return list(self._mails)

    @property
    def messages(self) -> list[EmailMessage]:
        """The accepted messages alone."""
        return [m.message for m in self.mails]

    @property
    def rejected(self) -> list[ReceivedMail]:
        """Deliveries refused by :meth:`fail_next`."""
        with self._lock:
            return list(self._rejected)

    def fail_next(self, code: int = 451, times: int = 1, text: str = "4.3.0 Temporary failure, try again") -> None:
        """Refuse the next ``times`` deliveries at the end of DATA with ``code`` (4xx: temporary, 5xx: permanent)."""
        with self._lock:
            self._failures.extend([(code, text)] * times)

    def reset(self) -> None:
        with self._lock:
            self._mails.clear()
            self._rejected.clear()
            self._failures.clear()

    def _deliver(self, mail: ReceivedMail) -> str:
        with self._lock:
            if self._failures:
                code, text = self._failures.pop(0)
                self._rejected.append(mail)
                return f"{code} {text}"
            self._mails.append(mail)
            return "250 OK"
