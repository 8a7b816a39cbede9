"""Alert rendering for Slack and email (pure functions)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from airflow_opsflow.incidents.alert import MASK, Alert
from airflow_opsflow.incidents.email_render import render as render_email
from airflow_opsflow.incidents.lifecycle import Incident
from airflow_opsflow.incidents.slack_render import MAX_BLOCKS, MAX_TEXT, fit, render

RESULT = {
    "name": "amount_positive", "kind": "between", "table": "payments", "status": "fail", "severity": "error",
    "observed": {"min": -120, "max": 899.65}, "expected": "> 0", "violating_count": 2, "violating_share": 0.001,
    "threshold": "at most 0 rows", "message": "2 violating rows", "owner": "payments-ops",
    "description": "A zero or negative amount is a booking error",
    "samples": [{"id": 100, "customer_id": 191, "amount": -120.0, "email": "a@x.com"},
                {"id": 500, "customer_id": 22, "amount": -15.5, "email": "b@x.com"}],
}
INCIDENT = Incident("fp", status="open", cycle=1, severity="error", occurrences=3,
                    first_seen=datetime(2026, 11, 21, 9, 0, tzinfo=UTC))


def alert(kind: str = "new", **result: object) -> Alert:
    return Alert(kind, INCIDENT, "ops_payments", "check_payments", "amount_positive",  # type: ignore[arg-type]
                 {**RESULT, **result}, links={"Task log": "http://airflow/log?x=1"})


def test_slack_message_says_what_where_and_shows_evidence() -> None:
    text, blocks = render(alert(), masked=("email",))
    assert text == (":rotating_light: ERROR: amount_positive (ops_payments / check_payments / payments): "
                    "2 violating row(s) (0.10%)")
    dumped = json.dumps(blocks, ensure_ascii=False)
    for fact in ("*Expected*\\n&gt; 0", "*Observed*\\nmin -120, max 899.65", "*Owner*\\npayments-ops",
                 "Sample (2 of 2)", "<http://airflow/log?x=1|Task log>", "booking error"):
        assert fact in dumped, fact
    assert "a@x.com" not in dumped and MASK in dumped


def test_slack_limits() -> None:
    samples = [{"id": i, "note": "x" * 40} for i in range(200)]
    _, blocks = render(alert(samples=samples, description="d" * 5000), sample_rows=200)
    assert all(len(b.get("text", {}).get("text", "")) <= MAX_TEXT for b in blocks)
    assert "(truncated)" in json.dumps(blocks)
    many = fit([{"type": "divider"}] * 80)
    assert len(many) == MAX_BLOCKS and "31 more blocks not shown" in json.dumps(many[-1])


def test_resolved_and_reminder_headlines() -> None:
    assert render(alert("resolved"))[0].startswith(":white_check_mark: Resolved: amount_positive")
    assert render(alert("reminder"))[0].startswith(":hourglass: Still failing: amount_positive")


def test_email_has_the_same_content_in_html_and_text() -> None:
    subject, html, text = render_email(alert(), sample_columns=["id", "amount"])
    assert subject == "[opsflow] ERROR: amount_positive (ops_payments / check_payments / payments): " \
                      "2 violating row(s) (0.10%)"
    for needle in ("Expected", "&gt; 0", "payments-ops", "-120.0", "http://airflow/log?x=1"):
        assert needle in html, needle
    for needle in ("Expected: > 0", "payments-ops", "-120.0", "Task log: http://airflow/log?x=1"):
        assert needle in text, needle
    assert "customer_id" not in html and "customer_id" not in text  # only the chosen columns
    assert "<script>" not in render_email(alert(description="<script>x</script>"))[1]


def test_data_cannot_ping_or_link_in_slack_and_masks_ignore_case() -> None:
    samples = [{"id": 1, "note": "<!channel> call <http://evil|me>", "EMAIL": "a@x.com"}]
    _, blocks = render(alert(samples=samples), masked=("email",))
    dumped = json.dumps(blocks, ensure_ascii=False)
    assert "<!channel>" not in dumped and "&lt;!channel&gt;" in dumped and "a@x.com" not in dumped


def test_multi_line_errors_make_one_line_subjects() -> None:
    subject, _, _ = render_email(alert(violating_count=None, message="ProgrammingError: x\nLINE 1: SELECT"))
    assert "\n" not in subject and "x LINE 1: SELECT" in subject


def test_sample_cells_cannot_end_a_code_block_and_are_escaped_everywhere() -> None:
    from airflow_opsflow.incidents import jira_render

    samples = [{"id": 1, "note": "a ``` <b>x</b> {noformat} ``", "email": "a@x.com"}]
    _, blocks = render(alert(samples=samples), masked=("email",))
    table = next(b["text"]["text"] for b in blocks if "Sample" in b.get("text", {}).get("text", ""))
    assert table.count("```") == 2 and table.endswith("```") and "&lt;b&gt;x&lt;/b&gt;" in table
    assert MASK in table and "a@x.com" not in table
    _, html, text = render_email(alert(samples=samples), masked=("email",))
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "<b>" not in html and "a@x.com" not in html + text
    assert "a ``` <b>x</b> {noformat} ``" in text  # plain text shows the cell as it is
    description = jira_render.description(alert(samples=samples))
    assert description.count("{noformat}") == 2 and "<b>x</b>" in description


def test_escalated_first_message_says_escalated_its_age_and_keeps_the_evidence() -> None:
    from dataclasses import replace

    from airflow_opsflow.incidents.slack_render import escalated_original

    late = replace(INCIDENT, last_seen=datetime(2026, 11, 21, 12, 10, tzinfo=UTC))
    a = Alert("escalated", late, "ops_payments", "check_payments", "amount_positive", RESULT,
              links={"Task log": "http://airflow/log?x=1"})
    text, blocks = escalated_original(a, masked=("email",))
    assert text == (":rotating_light: ESCALATED to ERROR — amount_positive (ops_payments / check_payments / "
                    "payments): open for 3 h (3 failing runs)")
    assert blocks[0]["text"]["text"] == f"*{text}*"
    dumped = json.dumps(blocks, ensure_ascii=False)
    for fact in ("*Expected*\\n&gt; 0", "Sample (2 of 2)", "<http://airflow/log?x=1|Task log>"):
        assert fact in dumped, fact
    assert "a@x.com" not in dumped  # masks hold in the edit too
    # a reminder of the escalated incident renders the same first message (its age kept fresh)
    assert escalated_original(replace(a, kind="reminder"), masked=("email",))[0] == text


def test_escalated_first_message_of_entities_names_the_sla() -> None:
    from airflow_opsflow.incidents.slack_render import escalated_original

    entities = {"noun": "stuck delivery", "plural": "stuck deliveries", "key_name": "delivery_id", "open": 3,
                "new": 0, "still_open": 3, "oldest_age_s": 51 * 3600, "sla_s": 48 * 3600, "past_sla": 2,
                "escalation": "the oldest open stuck delivery is 51 h old (escalates at 48 h)",
                "listed": [{"key": "D-<1>", "state": "open", "age": "51 h", "past_sla": True}]}
    text, blocks = escalated_original(alert("escalated", entities=entities), masked=("email",))
    assert text.startswith(":rotating_light: ESCALATED to ERROR — amount_positive (")
    assert text.endswith("): oldest stuck delivery open for 51 h, past its SLA of 48 h (2 past it)")
    assert "D-&lt;1&gt;" in json.dumps(blocks)  # keys are data: escaped
    money = {**entities, "oldest_age_s": 5 * 3600, "past_sla": 0, "escalation": "4,210.50 at stake (escalates "
                                                                                "above 1,000.00)"}
    text, _ = escalated_original(alert("escalated", entities=money))
    assert text.endswith("): oldest stuck delivery open for 5 h; 4,210.50 at stake (escalates above 1,000.00)")
    pinged = Alert("escalated", INCIDENT, "ops_payments", "check_payments", "<!channel>", RESULT)
    assert "<!channel>" not in escalated_original(pinged)[0]
