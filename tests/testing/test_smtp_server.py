"""FakeSmtp driven by Airflow's SmtpHook (smtplib) and by smtplib directly."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from pathlib import Path

import pytest
from airflow.providers.smtp.hooks.smtp import SmtpHook
from airflow_opsflow_testing.smtp_server import FakeSmtp

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))


def test_plugin_is_registered(pytestconfig: pytest.Config) -> None:
    assert pytestconfig.pluginmanager.has_plugin("opsflow")  # loaded through the pytest11 entry point


def test_send_email_smtp_html_and_attachment(fake_smtp: FakeSmtp, smtp_conn: str, tmp_path: Path) -> None:
    report = tmp_path / "violations.csv"
    report.write_bytes(b"id,amount\n7,-120.00\n")
    chart = tmp_path / "chart.png"
    chart.write_bytes(PNG)
    with SmtpHook(smtp_conn_id=smtp_conn) as hook:
        hook.send_email_smtp(to="ops@example.com; oncall@example.com", cc="lead@example.com", bcc="audit@example.com",
                             subject="[opsflow] payments: 3 checks failed",
                             html_content="<h1>3 checks failed</h1><p>Ümlauts survive</p>",
                             files=[str(report), str(chart)])
    [mail] = fake_smtp.mails
    assert mail.mail_from == "airflow@example.com"  # the connection's from_email
    assert mail.rcpt_tos == ["ops@example.com", "oncall@example.com", "lead@example.com", "audit@example.com"]
    assert mail.subject == "[opsflow] payments: 3 checks failed"
    assert mail.message["Cc"] == "lead@example.com" and mail.message["Bcc"] is None  # Bcc: envelope only
    assert mail.body("html") == "<h1>3 checks failed</h1><p>Ümlauts survive</p>"
    assert mail.body("plain") is None  # send_email_smtp sends an HTML part only
    assert mail.attachments == {"violations.csv": b"id,amount\n7,-120.00\n", "chart.png": PNG}


def test_plain_and_html_alternatives(fake_smtp: FakeSmtp) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "opsflow@example.com", "ops@example.com", "Daily checks"
    msg.set_content("3 checks failed")
    msg.add_alternative("<p><b>3</b> checks failed</p>", subtype="html")
    msg.add_attachment(PNG, maintype="image", subtype="png", filename="chart.png")
    with smtplib.SMTP(fake_smtp.host, fake_smtp.port, timeout=10) as client:
        client.send_message(msg)
    [mail] = fake_smtp.mails
    assert mail.body("plain") == "3 checks failed\n" and mail.body("html") == "<p><b>3</b> checks failed</p>\n"
    assert mail.attachments == {"chart.png": PNG} and fake_smtp.messages[0]["Subject"] == "Daily checks"


def test_temporary_failure_reaches_the_caller_without_retries(
    fake_smtp: FakeSmtp, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in fake_smtp.smtp_connection("smtp_no_retry", retry_limit=0).items():
        monkeypatch.setenv(name, value)
    fake_smtp.fail_next(451)
    with pytest.raises(smtplib.SMTPDataError) as caught, SmtpHook(smtp_conn_id="smtp_no_retry") as hook:
        hook.send_email_smtp(to="ops@example.com", subject="s", html_content="<p>x</p>")
    assert caught.value.smtp_code == 451
    assert fake_smtp.mails == [] and len(fake_smtp.rejected) == 1


def test_hook_retries_a_temporary_failure_on_its_own(fake_smtp: FakeSmtp, smtp_conn: str) -> None:
    """SmtpHook retries a refused delivery (default retry_limit 5), immediately and on the same connection."""
    fake_smtp.fail_next(451, times=2)
    with SmtpHook(smtp_conn_id=smtp_conn) as hook:
        hook.send_email_smtp(to="ops@example.com", subject="s", html_content="<p>x</p>")
    assert len(fake_smtp.rejected) == 2 and len(fake_smtp.mails) == 1
    fake_smtp.reset()
    assert fake_smtp.mails == [] and fake_smtp.rejected == []
