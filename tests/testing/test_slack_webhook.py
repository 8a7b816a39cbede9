"""FakeSlack's incoming webhooks driven by the real slack_sdk WebhookClient through SlackWebhookHook."""

from __future__ import annotations

from urllib.error import HTTPError
from urllib.request import Request, urlopen

import pytest
from airflow.providers.common.compat.sdk import AirflowException
from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook
from airflow_opsflow_testing.slack_server import FakeSlack
from slack_sdk import WebhookClient

BLOCKS = [{"type": "section", "text": {"type": "mrkdwn", "text": "*payments*: 3 checks failed"}}]


def test_webhook_posts_into_its_channel(fake_slack: FakeSlack, slack_webhook_conn: str) -> None:
    hook = SlackWebhookHook(slack_webhook_conn_id=slack_webhook_conn)
    resp = hook.send(text="3 checks failed", blocks=BLOCKS)
    assert (resp.status_code, resp.body) == (200, "ok")
    hook.send_dict({"blocks": BLOCKS})  # blocks alone are enough
    first, second = fake_slack.messages("#alerts")
    assert (first.text, first.blocks, first.via, first.channel) == ("3 checks failed", BLOCKS, "webhook", "C0ALERTS")
    assert second.text is None and second.blocks == BLOCKS
    [request, _] = fake_slack.requests
    assert request.method == "webhook" and request.body == {"text": "3 checks failed", "blocks": BLOCKS}


def test_one_hook_per_channel(fake_slack: FakeSlack) -> None:
    ops = fake_slack.webhook_url(channel="ops")
    assert ops == fake_slack.webhook_url(channel="#ops") != fake_slack.webhook_url(channel="#alerts")
    WebhookClient(ops).send(text="to ops")
    assert [m.channel_name for m in fake_slack.messages()] == ["ops"]
    with pytest.raises(ValueError, match="no channel"):
        fake_slack.webhook_url(channel="#nope")


def test_webhook_errors_as_slack_answers_them(fake_slack: FakeSlack, slack_webhook_conn: str) -> None:
    hook = SlackWebhookHook(slack_webhook_conn_id=slack_webhook_conn)
    with pytest.raises(AirflowException, match=r"no_text.*400"):
        hook.send(blocks=[])
    with pytest.raises(AirflowException, match=r"invalid_blocks.*400"):
        hook.send(text="x", blocks=BLOCKS * 51)
    url = fake_slack.webhook_url(channel="#alerts")
    raw = WebhookClient(url.rsplit("/", 1)[0] + "/not-the-secret").send(text="x")
    assert (raw.status_code, raw.body) == (404, "no_service")
    with pytest.raises(HTTPError) as caught:  # not JSON at all: below what the clients can send
        urlopen(Request(url, data=b"{not json", headers={"Content-Type": "application/json"}), timeout=5)
    assert (caught.value.code, caught.value.read()) == (400, b"invalid_payload")
    assert fake_slack.messages() == []


def test_webhook_rate_limited(fake_slack: FakeSlack, slack_webhook_conn: str) -> None:
    """SlackWebhookHook does not retry a 429 unless given a RateLimitErrorRetryHandler: the caller gets it."""
    fake_slack.fail_next("webhook", retry_after=1)
    with pytest.raises(AirflowException, match=r"rate_limited.*429"):
        SlackWebhookHook(slack_webhook_conn_id=slack_webhook_conn).send(text="x")
    assert fake_slack.messages() == [] and fake_slack.requests[0].status == 429
