"""SlackAlert: incident alerts in Slack, through the Slack provider's hooks.

With a Web API connection (``slack``) an incident is one conversation: the first alert is a message,
follow-ups (escalation, reminders, resolution) are replies in its thread, and the first message is
updated in place when the incident escalates (severity, age, SLA; refreshed by its later reminders and
updates) and when it resolves. Every message carries metadata naming its delivery, so when an earlier try
may have posted it (the answer was lost, the worker died), the channel history is checked before posting
again: no duplicate; an edit is redone only if the first message does not show it yet (and redoing it is
harmless). With a webhook connection (``slackwebhook``) alerts are plain messages (webhooks can neither
thread, edit nor read history).
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
_UNEDITABLE = ("message_not_found", "cant_update_message", "edit_window_closed")  # chat.update's final refusals
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
    template_fields: tuple[str, ...] = ("conn_id", "channel")

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
        found, parent = None, None
        if delivery.attempts:  # an earlier try may have posted it (answer lost, worker died): look first
            try:
                channel = _channel_id(hook, channel)
                found, parent = _earlier_try(client, channel, delivery, thread)
            except Exception as e:  # no history scope, not in the channel...: rather a repeat than nothing
                log.warning("cannot check %s for an earlier post of %s (%s); posting", channel,
                            delivery.delivery_id, e)
        if found is None:
            metadata = {"event_type": EVENT_TYPE,
                        "event_payload": {"delivery_id": delivery.delivery_id, "incident_id": delivery.incident_id}}
            response = client.chat_postMessage(channel=channel, text=text, blocks=blocks, thread_ts=thread,
                                               metadata=metadata, unfurl_links=False)
            channel, found = response["channel"], response["ts"]
        if not thread:
            return {"channel": channel, "ts": found}
        edit = self._original(alert, refs)
        if edit is not None:
            # After the reply, so the thread tells the news first. Idempotent, so a retry may redo it; it is
            # skipped when an earlier try's edit is already what the first message shows.
            new_text, new_blocks = edit
            if parent is None or not _shows(parent, new_text, new_blocks):
                _update(client, refs, new_text, new_blocks, delivery)
            if alert.kind != "resolved":
                return {**refs, "escalated": True}
        return refs

    def _original(self, alert: Alert, refs: dict[str, Any]) -> tuple[str, list[dict[str, Any]]] | None:
        """What the incident's first message becomes with this alert, if it changes: resolved; escalated
        (and, once escalated, refreshed by reminders and updates: its age and evidence stay current)."""
        if alert.kind == "resolved":
            return slack_render.resolved_original(alert)
        if alert.kind == "escalated" or (alert.kind in ("reminder", "updated") and refs.get("escalated")):
            return slack_render.escalated_original(alert, self.sample_columns, self.mask_columns, self.sample_rows)
        return None


def _update(client: Any, refs: dict[str, Any], text: str, blocks: list[dict[str, Any]], delivery: Delivery) -> None:
    """Edit the incident's first message. One that cannot be edited any more (a person deleted it, the
    workspace closes edits) is logged, not retried: the thread reply, the alert itself, went out."""
    from slack_sdk.errors import SlackApiError

    try:
        client.chat_update(channel=refs["channel"], ts=refs["ts"], text=text, blocks=blocks)
    except SlackApiError as e:
        if e.response.get("error") not in _UNEDITABLE:
            raise
        log.warning("cannot edit the first message %s of %s in %s (%s); its thread has the alert",
                    refs["ts"], delivery.incident_id, refs["channel"], e.response.get("error"))


def _channel_id(hook: SlackHook, channel: str) -> str:
    """History and updates want a channel id (C0123...), not a name."""
    if channel[:1] in ("C", "G", "D") and channel.isupper():
        return channel
    return hook.get_channel_id(channel.lstrip("#"))


def _earlier_try(client: Any, channel: str, delivery: Delivery,
                 thread: str | None) -> tuple[str | None, dict[str, Any] | None]:
    """The ts of the message ``delivery`` already posted (top level or in ``thread``), if any, and the
    thread's first message as Slack has it now (None at top level)."""
    oldest = f"{delivery.created_at.timestamp() - 60:.6f}" if delivery.created_at else "0"
    parent = None
    if thread:
        messages = client.conversations_replies(channel=channel, ts=thread, include_all_metadata=True,
                                                limit=200)["messages"]
        parent = next((m for m in messages if m.get("ts") == thread), None)
    else:
        messages = client.conversations_history(channel=channel, include_all_metadata=True, oldest=oldest,
                                                limit=200)["messages"]
    for m in messages:
        payload = (m.get("metadata") or {}).get("event_payload") or {}
        if payload.get("delivery_id") == delivery.delivery_id:
            return str(m["ts"]), parent
    return None, parent


def _shows(message: dict[str, Any], text: str, blocks: list[dict[str, Any]]) -> bool:
    """Whether ``message`` (as Slack returns it) already has this text and these blocks, but for the links
    (the task log of the try that sent it: an earlier try's is as good). Slack adds a ``block_id`` to each
    block; anything else it changes only makes the edit be redone, which is harmless."""
    def plain(bs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in b.items() if k != "block_id"} for b in bs
                if b.get("block_id") != slack_render.LINKS_BLOCK]

    return message.get("text") == text and plain(message.get("blocks") or []) == plain(blocks)
