"""SlackAlert: incident alerts in Slack, through the Slack provider's hooks.

With a Web API connection (``slack``) an incident is one conversation: the first alert is a message,
follow-ups (escalation, reminders, resolution) are replies in its thread, and the first message is
updated when the incident resolves. Every message carries metadata naming its delivery, so when an
earlier try may have posted it (the answer was lost, the worker died), the channel history is checked
before posting again: no duplicate. With a webhook connection (``slackwebhook``) alerts are plain
messages (webhooks can neither thread nor read history).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from airflow_opsflow.incidents import slack_render
from airflow_opsflow.incidents.route import AlertRoute

if TYPE_CHECKING:
    from airflow.providers.slack.hooks.slack import SlackHook
    from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

    from airflow_opsflow.incidents.alert import Alert
    from airflow_opsflow.incidents.repo import Delivery

EVENT_TYPE = "opsflow_alert"
log = logging.getLogger(__name__)


class SlackAlert(AlertRoute):
    """Send incident alerts to Slack.

    :param conn_id: a ``slack`` (Web API token) or ``slackwebhook`` connection.
    :param channel: channel name or id (Web API connections; a webhook posts to its own channel).
    :param rate_limit_retries: how many times a rate-limited call (HTTP 429) is retried after its
        ``Retry-After``.
    :param timeout: seconds per Slack API call.

    Other parameters: see :class:`~airflow_opsflow.incidents.route.AlertRoute`.
    """

    kind = "slack"

    def __init__(self, *, conn_id: str = "slack_api_default", channel: str | None = None,
                 rate_limit_retries: int = 5, timeout: int = 30, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.channel = channel
        self.rate_limit_retries = rate_limit_retries
        self.timeout = timeout

    def where(self) -> str:
        return f"{self.conn_id}/{self.channel or 'webhook'}"

    # Hooks are made per delivery, not cached on the route: a route object lives as long as its DAG
    # (across runs in one process, e.g. dag.test), a hook should not outlive its connection's settings.
    def _conn_type(self) -> str:
        from airflow.sdk import BaseHook

        return str(BaseHook.get_connection(self.conn_id).conn_type)

    def _web_hook(self) -> SlackHook:
        from airflow.providers.slack.hooks.slack import SlackHook
        from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

        # Only rate limits are retried by the client: a connection-error retry would re-post a message
        # whose answer was lost. Lost answers are handled by the history check in deliver().
        return SlackHook(slack_conn_id=self.conn_id, timeout=self.timeout,
                         retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=self.rate_limit_retries)])

    def _webhook(self) -> SlackWebhookHook:
        from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook
        from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

        return SlackWebhookHook(slack_webhook_conn_id=self.conn_id, timeout=self.timeout,
                                retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=self.rate_limit_retries)])

    def deliver(self, alert: Alert, delivery: Delivery, refs: dict[str, Any]) -> dict[str, Any]:
        text, blocks = slack_render.render(alert, self.sample_columns, self.mask_columns, self.sample_rows)
        if self._conn_type() == "slackwebhook":
            self._webhook().send(text=text, blocks=blocks)
            return refs
        if not self.channel:
            raise ValueError(f"SlackAlert({self.conn_id!r}) needs channel= with a Web API connection")
        hook = self._web_hook()
        client = hook.client
        thread = refs.get("ts") if alert.kind != "new" else None
        channel = refs.get("channel") or self.channel
        found = None
        if delivery.attempts:  # an earlier try may have posted it (answer lost, worker died): look first
            try:
                channel = _channel_id(hook, channel)
                found = _already_posted(client, channel, delivery, thread)
            except Exception as e:  # no history scope, not in the channel...: rather a repeat than nothing
                log.warning("cannot check %s for an earlier post of %s (%s); posting", channel,
                            delivery.delivery_id, e)
        if found is None:
            metadata = {"event_type": EVENT_TYPE,
                        "event_payload": {"delivery_id": delivery.delivery_id, "incident_id": delivery.incident_id}}
            response = client.chat_postMessage(channel=channel, text=text, blocks=blocks, thread_ts=thread,
                                               metadata=metadata, unfurl_links=False)
            channel, found = response["channel"], response["ts"]
        if alert.kind == "resolved" and refs.get("ts"):
            # Idempotent, so a retry redoes it safely: the first message now says it is resolved.
            done_text, done_blocks = slack_render.resolved_original(alert)
            client.chat_update(channel=refs["channel"], ts=refs["ts"], text=done_text, blocks=done_blocks)
        return refs if thread else {"channel": channel, "ts": found}


def _channel_id(hook: SlackHook, channel: str) -> str:
    """History and updates want a channel id (C0123...), not a name."""
    if channel[:1] in ("C", "G", "D") and channel.isupper():
        return channel
    return hook.get_channel_id(channel.lstrip("#"))


def _already_posted(client: Any, channel: str, delivery: Delivery, thread: str | None) -> str | None:
    """The ts of the message ``delivery`` already posted (top level or in ``thread``), if any."""
    oldest = f"{delivery.created_at.timestamp() - 60:.6f}" if delivery.created_at else "0"
    if thread:
        messages = client.conversations_replies(channel=channel, ts=thread, include_all_metadata=True,
                                                limit=200)["messages"]
    else:
        messages = client.conversations_history(channel=channel, include_all_metadata=True, oldest=oldest,
                                                limit=200)["messages"]
    for m in messages:
        payload = (m.get("metadata") or {}).get("event_payload") or {}
        if payload.get("delivery_id") == delivery.delivery_id:
            return str(m["ts"])
    return None
