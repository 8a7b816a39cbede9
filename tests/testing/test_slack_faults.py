"""Fault injection: rate limits, server errors, error bodies and lost answers, seen through the real clients.

The lost-answer tests document a hazard for alerting: slack_sdk's default retry handler
(``ConnectionErrorRetryHandler``, on by default in both WebClient and WebhookClient, hence in SlackHook and
SlackWebhookHook when no ``retry_handlers`` are given) resends a ``chat.postMessage`` whose answer was lost,
and Slack has no idempotency key, so the channel gets the alert twice.
"""

from __future__ import annotations

import time
from http.client import RemoteDisconnected

import pytest
from airflow.providers.slack.hooks.slack import SlackHook
from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook
from airflow_opsflow_testing.slack_server import FakeSlack
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import (
    ConnectionErrorRetryHandler,
    FixedValueRetryIntervalCalculator,
    RateLimitErrorRetryHandler,
    RetryHandler,
)


def test_rate_limit_retried_after_retry_after(fake_slack: FakeSlack, slack_conn: str) -> None:
    fake_slack.fail_next("chat.postMessage", retry_after=1)
    hook = SlackHook(slack_conn_id=slack_conn, retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=2)])
    started = time.monotonic()
    assert hook.client.chat_postMessage(channel="#alerts", text="after a 429")["ok"]
    assert time.monotonic() - started >= 1  # slept Retry-After (plus up to 1 s of jitter)
    assert [(r.status, r.error) for r in fake_slack.requests] == [(429, "ratelimited"), (200, None)]
    assert [m.text for m in fake_slack.messages()] == ["after a 429"]


def test_rate_limit_reaches_the_caller_without_a_handler(fake_slack: FakeSlack, slack_conn: str) -> None:
    fake_slack.fail_next("chat.postMessage", retry_after=7)
    with pytest.raises(SlackApiError) as caught:
        SlackHook(slack_conn_id=slack_conn).client.chat_postMessage(channel="#alerts", text="x")
    response = caught.value.response
    assert (response.status_code, response["error"], response.headers["Retry-After"]) == (429, "ratelimited", "7")
    assert fake_slack.messages() == []


def test_server_errors_and_error_bodies(fake_slack: FakeSlack, slack_conn: str) -> None:
    c = SlackHook(slack_conn_id=slack_conn).client
    fake_slack.fail_next("chat.postMessage", status=503)
    fake_slack.fail_next("chat.postMessage", error="fatal_error", times=2)
    with pytest.raises(SlackApiError) as caught:
        c.chat_postMessage(channel="#alerts", text="x")
    assert caught.value.response.status_code == 503
    for _ in range(2):
        with pytest.raises(SlackApiError) as caught:
            c.chat_postMessage(channel="#alerts", text="x")
        assert (caught.value.response.status_code, caught.value.response["error"]) == (200, "fatal_error")
    assert c.chat_postMessage(channel="#alerts", text="finally")["ok"]  # the faults are used up
    assert [m.text for m in fake_slack.messages()] == ["finally"]
    with pytest.raises(ValueError, match="unknown method"):
        fake_slack.fail_next("chat.postMesage")


@pytest.mark.parametrize(
    "retry_handlers",
    [None, [ConnectionErrorRetryHandler(interval_calculator=FixedValueRetryIntervalCalculator(0.1))]],
    ids=["provider-default", "explicit-handler"],
)
def test_lost_answer_makes_slack_sdk_post_twice(
    fake_slack: FakeSlack, slack_conn: str, retry_handlers: list[RetryHandler] | None
) -> None:
    fake_slack.drop_response_next("chat.postMessage")
    hook = SlackHook(slack_conn_id=slack_conn, retry_handlers=retry_handlers)
    response = hook.client.chat_postMessage(channel="#alerts", text="payments: 3 checks failed")
    assert response["ok"]  # the caller sees one success...
    first, second = fake_slack.messages("#alerts")  # ...the channel got the alert twice
    assert first.text == second.text == "payments: 3 checks failed" and first.ts != second.ts
    assert response["ts"] == second.ts
    assert [r.status for r in fake_slack.requests] == [None, 200]


def test_lost_answer_without_retries_looks_like_a_failure(fake_slack: FakeSlack, slack_conn: str) -> None:
    """With retries off the caller gets an error, yet the message was posted: a retry by Airflow duplicates it."""
    fake_slack.drop_response_next("chat.postMessage")
    with pytest.raises(RemoteDisconnected):
        SlackHook(slack_conn_id=slack_conn, retry_handlers=[]).client.chat_postMessage(channel="#alerts", text="x")
    assert [m.text for m in fake_slack.messages()] == ["x"]


def test_lost_webhook_answer_posts_twice(fake_slack: FakeSlack, slack_webhook_conn: str) -> None:
    fake_slack.drop_response_next("webhook")
    assert SlackWebhookHook(slack_webhook_conn_id=slack_webhook_conn).send(text="alert").body == "ok"
    assert [m.text for m in fake_slack.messages("#alerts")] == ["alert", "alert"]
