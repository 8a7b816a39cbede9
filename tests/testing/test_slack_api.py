"""FakeSlack's Web API driven by the real slack_sdk WebClient through Airflow's SlackHook and SlackNotifier."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.slack.hooks.slack import SlackHook
from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook
from airflow.providers.slack.notifications.slack import SlackNotifier
from airflow_opsflow_testing.slack_server import FakeSlack
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError


def client(conn_id: str) -> WebClient:
    return SlackHook(slack_conn_id=conn_id).client


def slack_error(call: Any, *args: Any, **kwargs: Any) -> SlackApiError:
    with pytest.raises(SlackApiError) as caught:
        call(*args, **kwargs)
    return caught.value


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def test_thread_update_and_metadata_round_trip(fake_slack: FakeSlack, slack_conn: str) -> None:
    c = client(slack_conn)
    meta = {"event_type": "opsflow_alert", "event_payload": {"dag_id": "payments", "fingerprint": "abc123"}}
    first = c.chat_postMessage(channel="#alerts", text="3 checks failed", metadata=meta)
    assert first["ok"] and first["channel"] == "C0ALERTS" and first["message"]["metadata"] == meta
    reply = c.chat_postMessage(channel="C0ALERTS", text="details", thread_ts=first["ts"])
    c.chat_postMessage(channel="alerts", text="still failing", thread_ts=reply["ts"])  # a reply's ts joins its thread
    second = c.chat_postMessage(channel="#alerts", text="another alert")
    assert float(first["ts"]) < float(reply["ts"]) < float(second["ts"])

    updated = c.chat_update(channel=first["channel"], ts=first["ts"], text="3 checks failed (resolved)",
                            blocks=[section(":white_check_mark: resolved")])
    assert updated["message"]["edited"]["user"] and updated["message"]["metadata"] == meta  # metadata kept

    history = c.conversations_history(channel="C0ALERTS", include_all_metadata=True)
    top = history["messages"]
    assert [m["text"] for m in top] == ["another alert", "3 checks failed (resolved)"]  # newest first, no replies
    assert top[1]["metadata"] == meta and top[1]["reply_count"] == 2 and top[1]["thread_ts"] == first["ts"]
    assert "metadata" not in c.conversations_history(channel="C0ALERTS")["messages"][1]
    replies = c.conversations_replies(channel="C0ALERTS", ts=first["ts"])["messages"]
    assert [m["text"] for m in replies] == ["3 checks failed (resolved)", "details", "still failing"]

    thread = fake_slack.thread("#alerts", first["ts"])
    assert [m.text for m in thread] == ["3 checks failed (resolved)", "details", "still failing"]
    assert all(m.thread_ts == first["ts"] for m in thread[1:]) and thread[0].thread_ts is None
    parent = thread[0]
    assert parent.updated and parent.history[0].text == "3 checks failed" and parent.history[0].blocks is None
    assert parent.blocks == [section(":white_check_mark: resolved")] and parent.metadata == meta
    assert (parent.channel, parent.channel_name, parent.via) == ("C0ALERTS", "alerts", "api")
    assert len(fake_slack.messages("#alerts")) == 4 and fake_slack.messages("ops") == []


def test_history_window_limit_and_cursor(slack_conn: str) -> None:
    c = client(slack_conn)
    ts = [c.chat_postMessage(channel="#ops", text=f"m{i}")["ts"] for i in range(5)]
    page = c.conversations_history(channel="C0OPS", limit=2)
    assert [m["text"] for m in page["messages"]] == ["m4", "m3"] and page["has_more"]
    texts = [m["text"] for p in c.conversations_history(channel="C0OPS", limit=2) for m in p["messages"]]
    assert texts == ["m4", "m3", "m2", "m1", "m0"]  # slack_sdk follows response_metadata.next_cursor
    window = c.conversations_history(channel="C0OPS", oldest=ts[1], latest=ts[3])  # both ends exclusive
    assert [m["text"] for m in window["messages"]] == ["m2"]
    inclusive = c.conversations_history(channel="C0OPS", oldest=ts[1], latest=ts[3], inclusive=True)
    assert [m["text"] for m in inclusive["messages"]] == ["m3", "m2", "m1"]


def test_channels_by_id_and_name(slack_conn: str) -> None:
    hook = SlackHook(slack_conn_id=slack_conn)
    assert hook.get_channel_id("data-quality") == "C0DATAQUALITY"  # conversations.list
    posted = hook.client.chat_postMessage(channel="#alerts", text="x")
    assert slack_error(hook.client.chat_postMessage, channel="#nope", text="x").response["error"] == "channel_not_found"
    # chat.update and conversations.* take channel IDs only, as on Slack
    err = slack_error(hook.client.chat_update, channel="#alerts", ts=posted["ts"], text="y")
    assert err.response["error"] == "channel_not_found"
    assert slack_error(hook.client.conversations_history, channel="alerts").response["error"] == "channel_not_found"
    err = slack_error(hook.client.chat_update, channel="C0ALERTS", ts="1.000001", text="y")
    assert err.response["error"] == "message_not_found"


@pytest.mark.filterwarnings("ignore::UserWarning")  # slack_sdk warns client-side when `text` is missing
@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"text": "fallback", "blocks": [section("x")] * 51}, "invalid_blocks"),
        ({"text": "fallback", "blocks": [section("x" * 3001)]}, "invalid_blocks"),
        ({"blocks": [{"type": "header", "text": {"type": "mrkdwn", "text": "bold"}}]}, "invalid_blocks"),
        ({"text": "fallback", "blocks": "[not json"}, "invalid_blocks_format"),
        ({"text": ""}, "no_text"),
        ({"text": "x" * 40_001}, "msg_too_long"),
        ({"text": "x", "metadata": {"event_payload": {}}}, "invalid_metadata_schema"),
    ],
)
def test_limits_raise_slack_errors(fake_slack: FakeSlack, slack_conn: str, kwargs: dict[str, Any], error: str) -> None:
    err = slack_error(client(slack_conn).chat_postMessage, channel="#alerts", **kwargs)
    assert err.response.status_code == 200 and err.response["ok"] is False and err.response["error"] == error
    assert fake_slack.messages() == []


def test_limits_at_the_boundary_pass(slack_conn: str) -> None:
    r = client(slack_conn).chat_postMessage(channel="#alerts", text="ok", blocks=[section("x" * 3000)] * 50)
    assert len(r["message"]["blocks"]) == 50


def test_invalid_blocks_point_at_the_culprit(slack_conn: str) -> None:
    err = slack_error(client(slack_conn).chat_postMessage, channel="#alerts", text="t",
                      blocks=[section("ok"), section("x" * 3001)])
    assert err.response["response_metadata"]["messages"] == [
        "[ERROR] must be less than 3001 characters [json-pointer:/blocks/1/text/text]"
    ]


def test_auth_and_unknown_method(fake_slack: FakeSlack, slack_conn: str) -> None:
    assert client(slack_conn).auth_test()["user_id"]
    bad = WebClient(token="xoxb-wrong", base_url=fake_slack.api_url)
    assert slack_error(bad.chat_postMessage, channel="#alerts", text="x").response["error"] == "invalid_auth"
    anonymous = WebClient(base_url=fake_slack.api_url)
    assert slack_error(anonymous.auth_test).response["error"] == "not_authed"
    err = slack_error(client(slack_conn).api_call, "chat.delete", json={"channel": "C0ALERTS", "ts": "1.1"})
    assert err.response["error"] == "unknown_method"
    assert fake_slack.messages() == []
    # the token never lands in the recorded requests
    assert all("authorization" not in {h.lower() for h in r.headers} for r in fake_slack.requests)


def test_form_encoded_arguments(fake_slack: FakeSlack, slack_conn: str) -> None:
    """``params=`` sends a form body with JSON-encoded structures, which Slack decodes."""
    hook = SlackHook(slack_conn_id=slack_conn)
    r = hook.call("chat.postMessage", params={"channel": "#alerts", "text": "form", "blocks": '[{"type": "divider"}]',
                                              "metadata": '{"event_type": "e", "event_payload": {"n": 1}}'})
    assert r["ok"] and r["message"]["blocks"] == [{"type": "divider"}]
    assert fake_slack.requests[-1].headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert fake_slack.messages()[0].metadata == {"event_type": "e", "event_payload": {"n": 1}}


def test_files_upload_v2_into_a_thread(fake_slack: FakeSlack, slack_conn: str, tmp_path: Path) -> None:
    hook = SlackHook(slack_conn_id=slack_conn)
    parent = hook.client.chat_postMessage(channel="#data-quality", text="payments check failed")
    done = hook.client.files_upload_v2(channel="C0DATAQUALITY", content="id,amount\n7,-120.00\n",
                                       filename="violations.csv", title="Violating rows",
                                       initial_comment="sample attached", thread_ts=parent["ts"])
    assert done["file"]["name"] == "violations.csv" and done["file"]["title"] == "Violating rows"
    # the provider's v1-style helper resolves "#name" through conversations.list first
    dump = tmp_path / "dump.bin"
    dump.write_bytes(b"raw \x00\xff bytes")
    with pytest.warns(UserWarning, match="Channel Name"):
        hook.send_file_v1_to_v2(channels="#ops", file=dump)

    first, second = fake_slack.files
    assert (first.filename, first.title, first.content, first.length) == (
        "violations.csv", "Violating rows", b"id,amount\n7,-120.00\n", 20)
    assert first.completed and first.channels == ["C0DATAQUALITY"] and first.thread_ts == parent["ts"]
    assert (second.filename, second.content, second.channels) == ("dump.bin", b"raw \x00\xff bytes", ["C0OPS"])
    share = fake_slack.thread("#data-quality", parent["ts"])[1]
    assert share.text == "sample attached" and share.files == [first.id]
    assert [r.method for r in fake_slack.requests if r.method.startswith("files") or r.method == "upload"][:3] == [
        "files.getUploadURLExternal", "upload", "files.completeUploadExternal"]


def test_slack_notifier(fake_slack: FakeSlack, slack_conn: str) -> None:
    """SlackNotifier sends JSON with ``blocks`` as a JSON-encoded string; Slack (and the fake) decode it."""
    SlackNotifier(slack_conn_id=slack_conn, channel="#alerts", text="DAG payments failed",
                  blocks=[section("*payments* failed")]).notify({})
    [msg] = fake_slack.messages("#alerts")
    assert (msg.text, msg.blocks, msg.username) == ("DAG payments failed", [section("*payments* failed")], "Airflow")


def test_reset_and_custom_channels() -> None:
    with FakeSlack(channels={"incidents": "C0INC"}, token=["xoxb-a", "xoxb-b"]) as slack:
        WebClient(token="xoxb-b", base_url=slack.api_url).chat_postMessage(channel="#incidents", text="x")
        assert slack.channel_id("incidents") == "C0INC" and len(slack.messages()) == 1
        slack.reset()
        assert slack.messages() == [] and slack.requests == []
        with pytest.raises(ValueError, match="no channel"):
            slack.messages("#alerts")


def test_async_clients(fake_slack: FakeSlack, slack_conn: str, slack_webhook_conn: str) -> None:
    """AsyncWebClient / AsyncWebhookClient (aiohttp, keep-alive) behind SlackNotifier and SlackWebhookHook."""

    async def alert() -> None:
        await SlackNotifier(slack_conn_id=slack_conn, channel="#alerts", text="async alert").async_notify({})
        await SlackWebhookHook(slack_webhook_conn_id=slack_webhook_conn).async_send(text="async hook")

    asyncio.run(alert())
    got = [(m.text, m.via) for m in fake_slack.messages("#alerts")]
    assert got == [("async alert", "api"), ("async hook", "webhook")]
