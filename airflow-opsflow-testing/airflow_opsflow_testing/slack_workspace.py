"""The state behind :class:`~airflow_opsflow_testing.slack_server.FakeSlack`: channels, messages, threads, files.

Kept apart from the HTTP layer so the Slack semantics read on their own. Each Web API method takes the
arguments as Slack receives them (JSON values, or strings from a form body) and returns the response
body; a refused call raises ``SlackError`` (see ``slack_validation``), answered as ``{"ok": false, ...}``.
The rules follow Slack's documented behaviour (api.slack.com/methods/...): ``chat.postMessage`` takes a
channel name or ID while ``chat.update`` and ``conversations.*`` take IDs only, history is newest first
with only top-level messages, block limits are enforced with Slack's error codes, and so on.
"""

from __future__ import annotations

import copy
import mimetypes
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from airflow_opsflow_testing.slack_validation import (
    MAX_TEXT,
    JsonDict,
    SlackError,
    arg_flag,
    arg_int,
    arg_json,
    arg_str,
    make_cursor,
    read_cursor,
    ts_value,
    validate_attachments,
    validate_blocks,
    validate_metadata,
)

TEAM_ID = "T0OPSFLOW"
BOT_USER_ID = "U0OPSBOT"
BOT_ID = "B0OPSBOT"
APP_ID = "A0OPSFLOW"
DEFAULT_CHANNELS = {
    "general": "C0GENERAL",
    "alerts": "C0ALERTS",
    "data-quality": "C0DATAQUALITY",
    "ops": "C0OPS",
    "finance-ops": "C0FINANCEOPS",
    "customer-success": "C0CUSTOMERSUCCESS",
    "sales": "C0SALES",
    "random": "C0RANDOM",
}


@dataclass(frozen=True)
class MessageVersion:
    """An earlier state of a message that ``chat.update`` changed."""

    text: str | None
    blocks: list[JsonDict] | None
    attachments: list[JsonDict] | None
    metadata: JsonDict | None


@dataclass
class SlackMessage:
    """One message as the fake workspace holds it (top-level or a thread reply)."""

    channel: str
    channel_name: str
    ts: str
    text: str | None = None
    blocks: list[JsonDict] | None = None
    attachments: list[JsonDict] | None = None
    metadata: JsonDict | None = None
    thread_ts: str | None = None  # the parent's ts for a reply, None for a top-level message
    via: Literal["api", "webhook"] = "api"
    username: str | None = None
    files: list[str] = field(default_factory=list)
    reply_broadcast: bool = False
    history: list[MessageVersion] = field(default_factory=list)  # earlier versions, oldest first
    edited_ts: str | None = None

    @property
    def is_reply(self) -> bool:
        return self.thread_ts is not None

    @property
    def updated(self) -> bool:
        return bool(self.history)


@dataclass
class SlackFile:
    """A file announced by ``files.getUploadURLExternal``; ``content`` is set by the upload POST."""

    id: str
    filename: str
    length: int
    title: str | None = None
    alt_txt: str | None = None
    snippet_type: str | None = None
    content: bytes | None = None
    completed: bool = False
    channels: list[str] = field(default_factory=list)
    thread_ts: str | None = None
    initial_comment: str | None = None
    message_ts: str | None = None


class Workspace:
    """One fake Slack workspace. All public methods are thread-safe (the HTTP server is threaded)."""

    def __init__(self, channels: Mapping[str, str], public_url: Callable[[], str]) -> None:
        self.channels = {name.lstrip("#"): cid for name, cid in channels.items()}  # name -> ID
        self._names = {cid: name for name, cid in self.channels.items()}
        self._public_url = public_url  # the server's base URL, known once it is bound
        self.lock = threading.RLock()
        self.reset()
        self.methods: dict[str, Callable[[Mapping[str, Any]], JsonDict]] = {
            "auth.test": self.auth_test,
            "chat.postMessage": self.chat_post_message,
            "chat.update": self.chat_update,
            "conversations.history": self.conversations_history,
            "conversations.replies": self.conversations_replies,
            "conversations.list": self.conversations_list,
            "files.getUploadURLExternal": self.files_get_upload_url_external,
            "files.completeUploadExternal": self.files_complete_upload_external,
        }

    def reset(self) -> None:
        with self.lock:
            self.messages: list[SlackMessage] = []  # in ts order: ts are issued increasing under the lock
            self._index: dict[tuple[str, str], SlackMessage] = {}
            self._replies: dict[tuple[str, str], list[SlackMessage]] = {}
            self.files: dict[str, SlackFile] = {}
            self._uploads: dict[str, str] = {}  # upload URL key -> file id
            self._last_us = 0

    # --- helpers ---------------------------------------------------------------------------------

    def _next_ts(self) -> str:
        # Unique and increasing, in Slack's "seconds.microseconds" form, even within one microsecond.
        self._last_us = max(time.time_ns() // 1000, self._last_us + 1)
        return f"{self._last_us // 1_000_000}.{self._last_us % 1_000_000:06d}"

    def resolve_channel(self, value: Any, *, by_name: bool) -> tuple[str, str]:
        """(ID, name) for a channel ID, or, when ``by_name``, ``#name`` / ``name``; else ``channel_not_found``."""
        text = "" if value is None else str(value)
        if text in self._names:
            return text, self._names[text]
        name = text.removeprefix("#")
        if by_name and name in self.channels:
            return self.channels[name], name
        raise SlackError("channel_not_found")

    def _add(self, msg: SlackMessage) -> SlackMessage:
        msg.ts = self._next_ts()
        self.messages.append(msg)
        self._index[msg.channel, msg.ts] = msg
        if msg.thread_ts is not None:
            self._replies.setdefault((msg.channel, msg.thread_ts), []).append(msg)
        return msg

    def _thread_parent(self, channel: str, thread_ts: str | None) -> str | None:
        """The parent ts a reply attaches to: replying to a reply joins its thread; an unknown ts is ignored."""
        if not thread_ts:
            return None
        target = self._index.get((channel, thread_ts))
        if target is None:
            return None  # as Slack does: the message is posted to the channel, not into a thread
        return target.thread_ts or target.ts

    def _content(self, args: Mapping[str, Any]) -> JsonDict:
        """The message fields present in ``args``, validated; empty lists/objects mean "clear" for updates."""
        found: JsonDict = {}
        text = arg_str(args, "text")
        if text is None:
            text = arg_str(args, "markdown_text")
        if text is not None:
            if len(text) > MAX_TEXT:
                raise SlackError("msg_too_long")
            found["text"] = text
        if args.get("blocks") is not None:
            found["blocks"] = validate_blocks(arg_json(args, "blocks", "invalid_blocks_format"))
        if args.get("attachments") is not None:
            found["attachments"] = validate_attachments(args)
        if args.get("metadata") is not None:
            found["metadata"] = validate_metadata(args["metadata"])
        return found

    def file_object(self, f: SlackFile) -> JsonDict:
        mimetype = mimetypes.guess_type(f.filename)[0] or "text/plain"
        filetype = f.filename.rpartition(".")[2].lower() if "." in f.filename else "text"
        base = self._public_url()
        obj: JsonDict = {
            "id": f.id, "created": int(time.time()), "timestamp": int(time.time()), "name": f.filename,
            "title": f.title or f.filename, "mimetype": mimetype, "filetype": filetype, "pretty_type": filetype,
            "user": BOT_USER_ID, "user_team": TEAM_ID, "editable": False, "size": len(f.content or b""),
            "mode": "hosted", "is_external": False, "external_type": "", "is_public": True,
            "public_url_shared": False, "display_as_bot": False, "username": "",
            "url_private": f"{base}/files-pri/{TEAM_ID}-{f.id}/{f.filename}",
            "url_private_download": f"{base}/files-pri/{TEAM_ID}-{f.id}/download/{f.filename}",
            "permalink": f"{base}/files/{BOT_USER_ID}/{f.id}/{f.filename}",
            "channels": list(f.channels), "groups": [], "ims": [], "has_rich_preview": False,
        }
        if f.alt_txt:
            obj["alt_txt"] = f.alt_txt
        if f.message_ts:
            share: JsonDict = {"ts": f.message_ts, "channel_name": self._names.get(f.channels[0], ""),
                               "team_id": TEAM_ID, "share_user_id": BOT_USER_ID, "reply_count": 0}
            if f.thread_ts:
                share["thread_ts"] = f.thread_ts
            obj["shares"] = {"public": {cid: [share] for cid in f.channels}}
        return obj

    def render(self, msg: SlackMessage, *, metadata: bool) -> JsonDict:
        """The message as Slack's API returns it (history, replies, post/update responses)."""
        out: JsonDict = {"type": "message", "text": msg.text or "", "ts": msg.ts, "bot_id": BOT_ID,
                         "app_id": APP_ID, "team": TEAM_ID}
        if msg.via == "webhook":
            out["subtype"] = "bot_message"
        else:
            out["user"] = BOT_USER_ID
        if msg.username:
            out["username"] = msg.username
        if msg.blocks:
            out["blocks"] = copy.deepcopy(msg.blocks)
        if msg.attachments:
            out["attachments"] = copy.deepcopy(msg.attachments)
        if metadata and msg.metadata:
            out["metadata"] = copy.deepcopy(msg.metadata)
        if msg.files:
            out["files"] = [self.file_object(self.files[fid]) for fid in msg.files]
            out["upload"] = True
        if msg.edited_ts:
            out["edited"] = {"user": BOT_USER_ID, "ts": msg.edited_ts}
        if msg.thread_ts is not None:
            out["thread_ts"] = msg.thread_ts
            out["parent_user_id"] = BOT_USER_ID
            if msg.reply_broadcast:
                out["subtype"] = "thread_broadcast"
        elif replies := self._replies.get((msg.channel, msg.ts)):
            out.update(thread_ts=msg.ts, reply_count=len(replies), reply_users_count=1,
                       reply_users=[BOT_USER_ID], latest_reply=replies[-1].ts, is_locked=False, subscribed=False)
        return out

    # --- Web API methods -----------------------------------------------------------------------------

    def auth_test(self, args: Mapping[str, Any]) -> JsonDict:
        return {"ok": True, "url": f"{self._public_url()}/", "team": "opsflow fake workspace",
                "user": "opsflow-bot", "team_id": TEAM_ID, "user_id": BOT_USER_ID, "bot_id": BOT_ID,
                "is_enterprise_install": False}

    def chat_post_message(self, args: Mapping[str, Any]) -> JsonDict:
        with self.lock:
            cid, name = self.resolve_channel(args.get("channel"), by_name=True)
            content = self._content(args)
            if not (content.get("text") or content.get("blocks") or content.get("attachments")):
                raise SlackError("no_text")
            thread_ts = self._thread_parent(cid, arg_str(args, "thread_ts"))
            msg = self._add(SlackMessage(
                channel=cid, channel_name=name, ts="", text=content.get("text"), blocks=content.get("blocks") or None,
                attachments=content.get("attachments") or None, metadata=content.get("metadata") or None,
                thread_ts=thread_ts, username=arg_str(args, "username"),
                reply_broadcast=thread_ts is not None and arg_flag(args, "reply_broadcast"),
            ))
            return {"ok": True, "channel": cid, "ts": msg.ts, "message": self.render(msg, metadata=True)}

    def chat_update(self, args: Mapping[str, Any]) -> JsonDict:
        with self.lock:
            cid, _ = self.resolve_channel(args.get("channel"), by_name=False)  # IDs only, like Slack
            msg = self._index.get((cid, arg_str(args, "ts") or ""))
            if msg is None:
                raise SlackError("message_not_found")
            if msg.via == "webhook":
                raise SlackError("cant_update_message")
            content = self._content(args)
            if not content:
                raise SlackError("no_text")
            msg.history.append(MessageVersion(msg.text, copy.deepcopy(msg.blocks), copy.deepcopy(msg.attachments),
                                              copy.deepcopy(msg.metadata)))
            # Fields left out keep their value; an empty list / object clears them (Slack's documented rule).
            if "text" in content:
                msg.text = content["text"]
            for key in ("blocks", "attachments", "metadata"):
                if key in content:
                    setattr(msg, key, content[key] or None)
            msg.edited_ts = self._next_ts()
            return {"ok": True, "channel": cid, "ts": msg.ts, "text": msg.text or "",
                    "message": self.render(msg, metadata=True)}

    def _window(self, msgs: list[SlackMessage], args: Mapping[str, Any]) -> list[SlackMessage]:
        inclusive = arg_flag(args, "inclusive")
        oldest = arg_str(args, "oldest")
        latest = arg_str(args, "latest")
        low = ts_value(oldest, "invalid_ts_oldest") if oldest else None
        high = ts_value(latest, "invalid_ts_latest") if latest else None

        def inside(m: SlackMessage) -> bool:
            ts = Decimal(m.ts)
            if low is not None and (ts < low or (ts == low and not inclusive)):
                return False
            return high is None or ts < high or (ts == high and inclusive)

        return [m for m in msgs if inside(m)]

    def _page(self, msgs: list[SlackMessage], args: Mapping[str, Any], default_limit: int,
              *, newest_first: bool, metadata: bool) -> JsonDict:
        if cursor := arg_str(args, "cursor"):
            start = Decimal(read_cursor(cursor, "next_ts"))
            msgs = [m for m in msgs if (Decimal(m.ts) <= start if newest_first else Decimal(m.ts) >= start)]
        limit = min(arg_int(args, "limit", default_limit) or default_limit, 999 if newest_first else 1000)
        page, rest = msgs[:limit], msgs[limit:]
        body: JsonDict = {"ok": True, "messages": [self.render(m, metadata=metadata) for m in page],
                          "has_more": bool(rest)}
        if rest:
            body["response_metadata"] = {"next_cursor": make_cursor("next_ts", rest[0].ts)}
        return body

    def conversations_history(self, args: Mapping[str, Any]) -> JsonDict:
        with self.lock:
            cid, _ = self.resolve_channel(args.get("channel"), by_name=False)
            top = [m for m in self.messages if m.channel == cid and (m.thread_ts is None or m.reply_broadcast)]
            msgs = list(reversed(self._window(top, args)))
            body = self._page(msgs, args, 100, newest_first=True, metadata=arg_flag(args, "include_all_metadata"))
            body.update(pin_count=0, channel_actions_ts=None, channel_actions_count=0)
            return body

    def conversations_replies(self, args: Mapping[str, Any]) -> JsonDict:
        with self.lock:
            cid, _ = self.resolve_channel(args.get("channel"), by_name=False)
            msg = self._index.get((cid, arg_str(args, "ts") or ""))
            if msg is None:
                raise SlackError("thread_not_found")
            parent = self._index[cid, msg.thread_ts] if msg.thread_ts else msg
            replies = self._window(self._replies.get((cid, parent.ts), []), args)
            body = self._page([parent, *replies], args, 1000, newest_first=False,
                              metadata=arg_flag(args, "include_all_metadata"))
            return body

    def conversations_list(self, args: Mapping[str, Any]) -> JsonDict:
        types = (arg_str(args, "types") or "public_channel").split(",")
        names = sorted(self.channels) if "public_channel" in [t.strip() for t in types] else []
        offset = int(read_cursor(c, "offset")) if (c := arg_str(args, "cursor")) else 0
        limit = min(arg_int(args, "limit", 100) or 100, 1000)
        page = names[offset:offset + limit]
        channels = [
            {"id": self.channels[n], "name": n, "name_normalized": n, "is_channel": True, "is_group": False,
             "is_im": False, "is_mpim": False, "is_private": False, "is_archived": False,
             "is_general": n == "general", "is_shared": False, "is_ext_shared": False, "is_org_shared": False,
             "is_member": True, "created": 1_700_000_000, "creator": BOT_USER_ID, "num_members": 1,
             "topic": {"value": "", "creator": "", "last_set": 0},
             "purpose": {"value": "", "creator": "", "last_set": 0}}
            for n in page
        ]
        more = offset + limit < len(names)
        return {"ok": True, "channels": channels,
                "response_metadata": {"next_cursor": make_cursor("offset", str(offset + limit)) if more else ""}}

    def files_get_upload_url_external(self, args: Mapping[str, Any]) -> JsonDict:
        filename = arg_str(args, "filename")
        if not filename or args.get("length") in (None, ""):
            raise SlackError("invalid_arguments")
        length = arg_int(args, "length", 0)
        with self.lock:
            f = SlackFile(id=f"F0{len(self.files) + 1:09d}", filename=filename, length=length,
                          alt_txt=arg_str(args, "alt_txt"), snippet_type=arg_str(args, "snippet_type"))
            key = secrets.token_hex(12)
            self.files[f.id] = f
            self._uploads[key] = f.id
            return {"ok": True, "upload_url": f"{self._public_url()}/upload/v1/{key}", "file_id": f.id}

    def upload(self, key: str, data: bytes) -> bool:
        """The POST to an upload URL; False for an unknown URL."""
        with self.lock:
            fid = self._uploads.get(key)
            if fid is None:
                return False
            self.files[fid].content = bytes(data)
            return True

    def files_complete_upload_external(self, args: Mapping[str, Any]) -> JsonDict:
        items = arg_json(args, "files", "invalid_arguments")
        if not isinstance(items, list) or not items or not all(isinstance(i, dict) and "id" in i for i in items):
            raise SlackError("invalid_arguments")
        with self.lock:
            files = [self.files.get(str(i["id"])) for i in items]
            if any(f is None or f.content is None for f in files):
                raise SlackError("file_not_found")  # unknown id, or never uploaded to its URL
            targets = [self.resolve_channel(c, by_name=False) for c in
                       ([arg_str(args, "channel_id")] if args.get("channel_id") else [])
                       + [c.strip() for c in (arg_str(args, "channels") or "").split(",") if c.strip()]]
            thread_ts = arg_str(args, "thread_ts")
            if thread_ts and len(targets) != 1:
                raise SlackError("invalid_arguments")
            comment = arg_str(args, "initial_comment")
            shared = [f for f in files if f is not None]
            for item, f in zip(items, shared, strict=True):
                f.title = str(item.get("title") or f.title or f.filename)
                f.completed, f.initial_comment = True, comment
            for cid, name in targets:
                parent = self._thread_parent(cid, thread_ts)
                msg = self._add(SlackMessage(channel=cid, channel_name=name, ts="", text=comment or "",
                                             thread_ts=parent, files=[f.id for f in shared]))
                for f in shared:
                    f.channels.append(cid)
                    f.message_ts, f.thread_ts = msg.ts, parent
            return {"ok": True, "files": [self.file_object(f) for f in shared]}

    # --- incoming webhooks -------------------------------------------------------------------------------

    def webhook_post(self, channel: str, body: Any) -> SlackMessage:
        """A JSON payload posted to a hook bound to ``channel`` (an ID); errors carry HTTP 400 as Slack's do."""
        if not isinstance(body, dict):
            raise SlackError("invalid_payload")
        text = body.get("text")
        if text is not None and not isinstance(text, str):
            raise SlackError("invalid_payload")
        blocks = validate_blocks(body["blocks"], format_error="invalid_blocks") if body.get("blocks") else None
        attachments = validate_attachments(body)
        if not (text or blocks or attachments):
            raise SlackError("no_text")
        metadata = validate_metadata(body["metadata"]) if body.get("metadata") else None
        with self.lock:
            return self._add(SlackMessage(channel=channel, channel_name=self._names[channel], ts="", text=text,
                                          blocks=blocks, attachments=attachments, metadata=metadata or None,
                                          via="webhook"))
