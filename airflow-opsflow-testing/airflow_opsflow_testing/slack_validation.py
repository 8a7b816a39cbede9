"""Slack's argument handling and Block Kit / metadata validation, for the fake workspace.

Values arrive as JSON types (JSON bodies) or strings (form bodies); structured arguments may be JSON-encoded
strings in either, as Slack accepts (SlackNotifier sends ``blocks`` that way). Refusals raise
:class:`SlackError` with Slack's error codes and, for ``invalid_blocks``, its pointer to the culprit.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

# Slack's documented limits (Block Kit reference, chat.postMessage).
MAX_BLOCKS = 50
MAX_TEXT = 40_000
MAX_ATTACHMENTS = 100
_SECTION_TEXT, _SECTION_FIELDS, _FIELD_TEXT = 3000, 10, 2000
_HEADER_TEXT, _CONTEXT_ELEMENTS, _ACTIONS_ELEMENTS, _MARKDOWN_TEXT, _BLOCK_ID = 150, 10, 25, 12_000, 255
_BLOCK_TYPES = frozenset(
    {"section", "divider", "header", "context", "actions", "image", "rich_text", "input", "file", "video",
     "markdown", "table"}
)

JsonDict = dict[str, Any]


class SlackError(Exception):
    """A call Slack refuses: ``error`` is Slack's code; ``status`` matters for webhooks only (API: 200)."""

    def __init__(self, error: str, *, messages: list[str] | None = None, status: int = 400) -> None:
        super().__init__(error)
        self.error = error
        self.messages = messages or []
        self.status = status

    def body(self) -> JsonDict:
        body: JsonDict = {"ok": False, "error": self.error}
        if self.messages:
            body["response_metadata"] = {"messages": [f"[ERROR] {m}" for m in self.messages]}
        return body


# --- arguments: values arrive as JSON types or as form strings -------------------------------


def arg_str(args: Mapping[str, Any], key: str) -> str | None:
    value = args.get(key)
    return None if value is None else str(value)


def arg_flag(args: Mapping[str, Any], key: str) -> bool:
    return args.get(key) in (True, 1, "1", "true", "True")


def arg_int(args: Mapping[str, Any], key: str, default: int) -> int:
    value = args.get(key)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise SlackError("invalid_arguments", messages=[f"{key} must be an integer"]) from None


def arg_json(args: Mapping[str, Any], key: str, error: str) -> Any:
    """A structured argument: a JSON value, or a JSON-encoded string (form bodies, SlackNotifier)."""
    value = args.get(key)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            raise SlackError(error) from None
    return value


def ts_value(ts: str, error: str) -> Decimal:
    try:
        return Decimal(ts)
    except InvalidOperation:
        raise SlackError(error) from None


def make_cursor(prefix: str, value: str) -> str:
    return base64.b64encode(f"{prefix}:{value}".encode()).decode()  # Slack's cursors: base64("next_ts:...")


def read_cursor(cursor: str, prefix: str) -> str:
    try:
        kind, _, value = base64.b64decode(cursor.encode(), validate=True).decode().partition(":")
    except ValueError:
        raise SlackError("invalid_cursor") from None
    if kind != prefix or not value:
        raise SlackError("invalid_cursor")
    return value


# --- validation -----------------------------------------------------------------------------------


def _text_object(obj: Any, pointer: str, limit: int, problems: list[str], *, plain_only: bool = False) -> None:
    allowed = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
    if not isinstance(obj, dict) or obj.get("type") not in allowed:
        problems.append(f"must be a valid text object of type {'|'.join(allowed)} [json-pointer:{pointer}]")
        return
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        problems.append(f"must be more than 0 characters [json-pointer:{pointer}/text]")
    elif len(text) > limit:
        problems.append(f"must be less than {limit + 1} characters [json-pointer:{pointer}/text]")


def _check_block(block: JsonDict, pointer: str, problems: list[str]) -> None:
    kind = block.get("type")
    if kind not in _BLOCK_TYPES:
        problems.append(f"unsupported type: {kind} [json-pointer:{pointer}/type]")
        return
    if len(str(block.get("block_id", ""))) > _BLOCK_ID:
        problems.append(f"must be less than {_BLOCK_ID + 1} characters [json-pointer:{pointer}/block_id]")
    if kind == "section":
        fields = block.get("fields")
        if "text" not in block and not fields:
            problems.append(f"must provide either text or fields [json-pointer:{pointer}]")
        if "text" in block:
            _text_object(block["text"], f"{pointer}/text", _SECTION_TEXT, problems)
        if fields is not None:
            if not isinstance(fields, list) or len(fields) > _SECTION_FIELDS:
                problems.append(f"no more than {_SECTION_FIELDS} items allowed [json-pointer:{pointer}/fields]")
            else:
                for i, f in enumerate(fields):
                    _text_object(f, f"{pointer}/fields/{i}", _FIELD_TEXT, problems)
    elif kind == "header":
        _text_object(block.get("text"), f"{pointer}/text", _HEADER_TEXT, problems, plain_only=True)
    elif kind in ("context", "actions"):
        limit = _CONTEXT_ELEMENTS if kind == "context" else _ACTIONS_ELEMENTS
        elements = block.get("elements")
        if not isinstance(elements, list) or not elements:
            problems.append(f"must provide at least 1 item [json-pointer:{pointer}/elements]")
        elif len(elements) > limit:
            problems.append(f"no more than {limit} items allowed [json-pointer:{pointer}/elements]")
    elif kind == "image":
        if not (block.get("image_url") or block.get("slack_file")) or not block.get("alt_text"):
            problems.append(f"must provide image_url and alt_text [json-pointer:{pointer}]")
    elif kind == "markdown":
        text = block.get("text")
        if not isinstance(text, str) or not text or len(text) > _MARKDOWN_TEXT:
            problems.append(f"must be 1 to {_MARKDOWN_TEXT} characters [json-pointer:{pointer}/text]")


def validate_blocks(blocks: Any, *, format_error: str = "invalid_blocks_format") -> list[JsonDict]:
    """Slack's Block Kit checks: ``invalid_blocks_format`` for a non-list, ``invalid_blocks`` for a bad block."""
    if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks):
        raise SlackError(format_error)
    problems: list[str] = []
    if len(blocks) > MAX_BLOCKS:
        problems.append(f"no more than {MAX_BLOCKS} items allowed [json-pointer:/blocks]")
    for i, block in enumerate(blocks):
        _check_block(block, f"/blocks/{i}", problems)
    if problems:
        raise SlackError("invalid_blocks", messages=problems)
    return copy.deepcopy(blocks)


def validate_metadata(value: Any) -> JsonDict:
    """``{"event_type": str, "event_payload": {...}}``; ``{}`` is allowed (``chat.update`` clears with it)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise SlackError("invalid_metadata_format") from None
    if not isinstance(value, dict):
        raise SlackError("invalid_metadata_format")
    if not value:
        return {}
    if not isinstance(value.get("event_type"), str) or not value["event_type"] or not isinstance(
        value.get("event_payload"), dict
    ):
        raise SlackError("invalid_metadata_schema")
    return {"event_type": value["event_type"], "event_payload": copy.deepcopy(value["event_payload"])}


def validate_attachments(args: Mapping[str, Any]) -> list[JsonDict] | None:
    value = arg_json(args, "attachments", "invalid_attachments")
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(a, dict) for a in value):
        raise SlackError("invalid_attachments")
    if len(value) > MAX_ATTACHMENTS:
        raise SlackError("too_many_attachments")
    return copy.deepcopy(value)
