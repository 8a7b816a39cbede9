"""FakeSlack: a local server speaking Slack's Web API and incoming-webhook wire protocol, for tests.

The real ``slack_sdk`` clients, and through them Airflow's ``SlackHook``, ``SlackWebhookHook`` and
``SlackNotifier``, work against it unchanged: the Slack connection's ``base_url`` extra points at
``server.api_url`` and a webhook connection's password is ``server.webhook_url(channel=...)``::

    with FakeSlack() as slack:
        os.environ.update(slack.slack_connection("slack_api_default"))
        SlackHook(slack_conn_id="slack_api_default").client.chat_postMessage(channel="#alerts", text="hi")
        assert [m.text for m in slack.messages("#alerts")] == ["hi"]

Faults for resilience tests: :meth:`FakeSlack.fail_next` (429 with ``Retry-After``, a 5xx, or an
``{"ok": false}`` body) and :meth:`FakeSlack.drop_response_next` (the request is processed, then the
connection closes unanswered: the lost answer that makes retrying clients post twice).

Beware: ``slack_sdk`` sends every request through ``HTTPS_PROXY``/``HTTP_PROXY`` when set and ignores
``NO_PROXY``; unset them in tests (the ``fake_slack`` pytest fixture does).
"""

from __future__ import annotations

import copy
import json
import secrets
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from email.message import Message
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from airflow_opsflow_testing.local_http import LocalHandler, LocalHTTPService, _Server
from airflow_opsflow_testing.slack_validation import SlackError
from airflow_opsflow_testing.slack_workspace import (
    DEFAULT_CHANNELS,
    TEAM_ID,
    MessageVersion,
    SlackFile,
    SlackMessage,
    Workspace,
)

__all__ = ["DEFAULT_CHANNELS", "FakeSlack", "MessageVersion", "RecordedRequest", "SlackFile", "SlackMessage"]

DEFAULT_TOKEN = "xoxb-opsflow-fake-token"
WEBHOOK = "webhook"  # the "method" of incoming-webhook posts, for fail_next() and RecordedRequest
UPLOAD = "upload"  # the "method" of the file bytes POSTed to an upload URL (files upload v2, step 2)



@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received, as it arrived (the token removed) and how it was answered."""

    method: str  # Slack API method ("chat.postMessage"), "webhook" or "upload"
    http_method: str
    path: str
    headers: dict[str, str]  # without Authorization
    body: Any  # API arguments (dict, JSON-string fields left as sent), webhook JSON, or uploaded bytes
    status: int | None  # the HTTP status answered; None when the answer was dropped
    error: str | None  # Slack's error code; None on success


@dataclass
class _Fault:
    drop: bool
    remaining: int
    status: int | None = None
    retry_after: int = 1
    error: str | None = None


@dataclass
class _Reply:
    status: int
    body: bytes
    content_type: str
    error: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


def _json_reply(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> _Reply:
    error = None if body.get("ok") else str(body.get("error"))
    return _Reply(status, json.dumps(body).encode(), "application/json; charset=utf-8", error, headers or {})


def _text_reply(status: int, text: str, headers: dict[str, str] | None = None) -> _Reply:
    return _Reply(status, text.encode(), "text/plain; charset=utf-8", None if status == 200 else text, headers or {})


def _parse_args(headers: Message, query: str, raw: bytes) -> tuple[dict[str, Any], SlackError | None]:
    """API arguments from the query string and the body: JSON, or a form as slack_sdk sends ``params``."""
    args: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
    if not raw:
        return args, None
    ctype = headers.get_content_type()
    if ctype == "application/json":
        try:
            body = json.loads(raw)
        except ValueError:
            return args, SlackError("invalid_json")
        if not isinstance(body, dict):
            return args, SlackError("invalid_json")
        args.update(body)
    elif ctype == "application/x-www-form-urlencoded":
        args.update(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    else:  # multipart only served the retired files.upload (v1)
        return args, SlackError("invalid_form_data")
    return args, None


class _Handler(LocalHandler):
    def do_POST(self) -> None:
        raw = self._read_body()
        split = urlsplit(self.path)
        assert isinstance(self.server, _Server)
        reply = self.server.fake._dispatch(self.command, split.path, split.query, self.headers, raw)
        if reply is None:
            self.close_connection = True  # processed, never answered: the client sees the connection drop
            return
        self.send_response(reply.status)
        for name, value in {**reply.headers, "Content-Type": reply.content_type,
                            "Content-Length": str(len(reply.body))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)

    do_GET = do_POST


class FakeSlack(LocalHTTPService):
    """A fake Slack workspace on ``http://127.0.0.1:<free port>``; a context manager, or ``start()``/``stop()``.

    :param token: the accepted bot token(s); anything else gets ``invalid_auth``.
    :param channels: ``{"name": "C...ID"}``; default :data:`DEFAULT_CHANNELS` (general, alerts, data-quality,
        ops, finance-ops, customer-success, sales, random).
    """

    service_name = "fake-slack"
    handler_class = _Handler

    def __init__(
        self,
        *,
        token: str | Iterable[str] = DEFAULT_TOKEN,
        channels: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.tokens = [token] if isinstance(token, str) else list(token)
        if not self.tokens:
            raise ValueError("FakeSlack needs at least one token")
        self._init_http(host, port)
        self.workspace = Workspace(DEFAULT_CHANNELS if channels is None else channels, lambda: self.url)
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._faults: dict[str, deque[_Fault]] = {}
        self._hooks: dict[str, str] = {}  # webhook path -> channel ID

    # --- addresses and Airflow wiring -------------------------------------------------------------------

    @property
    def token(self) -> str:
        return self.tokens[0]

    @property
    def api_url(self) -> str:
        """The Web API base URL, with the trailing slash slack_sdk needs to join method names onto it."""
        return f"{self.url}/api/"

    def channel_id(self, channel: str) -> str:
        """The ID of a channel given as ID, ``#name`` or ``name``."""
        try:
            return self.workspace.resolve_channel(channel, by_name=True)[0]
        except SlackError:
            raise ValueError(f"no channel {channel!r} in the fake workspace: {self.workspace.channels}") from None

    def webhook_url(self, channel: str = "#alerts") -> str:
        """The incoming-webhook URL posting into ``channel`` (one hook per channel, created on first use)."""
        cid = self.channel_id(channel)
        with self._lock:
            path = next((p for p, c in self._hooks.items() if c == cid), None)
            if path is None:
                path = f"/services/{TEAM_ID}/B0HOOK{len(self._hooks) + 1:04d}/{secrets.token_hex(12)}"
                self._hooks[path] = cid
        return self.url + path

    def slack_connection(self, conn_id: str = "slack_api_default", *, token: str | None = None,
                         timeout: int = 10) -> dict[str, str]:
        """``{"AIRFLOW_CONN_<ID>": json}`` for a ``slack`` connection (SlackHook, SlackNotifier) to this server.

        The provider reads the token from the password and ``base_url``/``timeout`` from the extra.
        """
        conn = {"conn_type": "slack", "password": token or self.token,
                "extra": {"base_url": self.api_url, "timeout": timeout}}
        return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn)}

    def webhook_connection(self, conn_id: str = "slack_default", *, channel: str = "#alerts",
                           timeout: int = 10) -> dict[str, str]:
        """``{"AIRFLOW_CONN_<ID>": json}`` for a ``slackwebhook`` connection (SlackWebhookHook) into ``channel``.

        The provider takes a password containing ``://`` as the whole webhook URL.
        """
        conn = {"conn_type": "slackwebhook", "password": self.webhook_url(channel), "extra": {"timeout": timeout}}
        return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn)}

    # --- what happened --------------------------------------------------------------------------------

    def messages(self, channel: str | None = None) -> list[SlackMessage]:
        """Every message (top-level and replies) in posting order, optionally of one channel; copies."""
        cid = self.channel_id(channel) if channel is not None else None
        with self.workspace.lock:
            return [copy.deepcopy(m) for m in self.workspace.messages if cid is None or m.channel == cid]

    def thread(self, channel: str, ts: str) -> list[SlackMessage]:
        """The thread of the message ``ts``: its parent first, then the replies in order."""
        cid = self.channel_id(channel)
        with self.workspace.lock:
            msgs = [m for m in self.workspace.messages if m.channel == cid]
            target = next((m for m in msgs if m.ts == ts), None)
            if target is None:
                raise LookupError(f"no message {ts} in {channel}")
            parent = target.thread_ts or target.ts
            return [copy.deepcopy(m) for m in msgs if parent in (m.ts, m.thread_ts)]

    @property
    def files(self) -> list[SlackFile]:
        """Files announced through ``files.getUploadURLExternal``, uploaded and (once completed) shared."""
        with self.workspace.lock:
            return [copy.deepcopy(f) for f in self.workspace.files.values()]

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def reset(self) -> None:
        """Forget messages, files, requests and pending faults (channels, tokens and webhook URLs stay)."""
        self.workspace.reset()
        with self._lock:
            self._requests.clear()
            self._faults.clear()

    # --- faults ---------------------------------------------------------------------------------------

    def _check_method(self, method: str) -> None:
        if method not in self.workspace.methods and method not in (WEBHOOK, UPLOAD):
            raise ValueError(f"unknown method {method!r}: one of {[*self.workspace.methods, WEBHOOK, UPLOAD]}")

    def fail_next(self, method: str, *, status: int | None = None, retry_after: int = 1, error: str | None = None,
                  times: int = 1) -> None:
        """Refuse the next ``times`` calls of ``method`` (an API method, ``"webhook"`` or ``"upload"``) unprocessed.

        Default: HTTP 429 with ``Retry-After: retry_after`` (body ``ratelimited``, as Slack). ``status=503``
        answers that status; ``error="..."`` alone answers ``{"ok": false, "error": ...}`` with HTTP 200 (a
        webhook: HTTP 400 with the code as text). Faults queue per method, in the order they were added.
        """
        self._check_method(method)
        with self._lock:
            self._faults.setdefault(method, deque()).append(_Fault(False, times, status, retry_after, error))

    def drop_response_next(self, method: str, times: int = 1) -> None:
        """Process the next ``times`` calls of ``method`` (the message IS stored), then close without answering."""
        self._check_method(method)
        with self._lock:
            self._faults.setdefault(method, deque()).append(_Fault(True, times))

    def _take_fault(self, method: str) -> _Fault | None:
        with self._lock:
            queue = self._faults.get(method)
            if not queue:
                return None
            fault = queue[0]
            fault.remaining -= 1
            if fault.remaining <= 0:
                queue.popleft()
            return fault

    @staticmethod
    def _fault_reply(fault: _Fault, *, api: bool) -> _Reply:
        status = fault.status or ((200 if api else 400) if fault.error else 429)
        default = "ratelimited" if status == 429 else "internal_error" if status >= 500 else "request_failed"
        if not api and status == 429:
            default = "rate_limited"
        headers = {"Retry-After": str(fault.retry_after)} if status == 429 else {}
        if api:
            return _json_reply({"ok": False, "error": fault.error or default}, status, headers)
        return _text_reply(status, fault.error or default, headers)

    # --- request handling (called from the server's threads) ---------------------------------------------

    def _record(self, method: str, verb: str, path: str, headers: Message, body: Any, reply: _Reply,
                dropped: bool) -> _Reply | None:
        kept = {k: v for k, v in headers.items() if k.lower() not in ("authorization", "cookie")}
        with self._lock:
            self._requests.append(RecordedRequest(method, verb, path, kept, body, None if dropped else reply.status,
                                                  reply.error))
        return None if dropped else reply

    def _dispatch(self, verb: str, path: str, query: str, headers: Message, raw: bytes) -> _Reply | None:
        if path.startswith("/api/"):
            return self._api(verb, path, query, headers, raw)
        if path.startswith("/services/"):
            return self._webhook(verb, path, headers, raw)
        if path.startswith("/upload/v1/"):
            return self._upload(verb, path, headers, raw)
        return _text_reply(404, "not_found")

    def _api(self, verb: str, path: str, query: str, headers: Message, raw: bytes) -> _Reply | None:
        method = path.removeprefix("/api/")
        args, parse_error = _parse_args(headers, query, raw)
        auth = headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else str(args.pop("token", ""))
        args.pop("token", None)
        fault = self._take_fault(method) if method in self.workspace.methods else None
        if method not in self.workspace.methods:
            reply = _json_reply({"ok": False, "error": "unknown_method", "req_method": method})
        elif fault is not None and not fault.drop:
            reply = self._fault_reply(fault, api=True)
        elif not token:
            reply = _json_reply({"ok": False, "error": "not_authed"})
        elif token not in self.tokens:
            reply = _json_reply({"ok": False, "error": "invalid_auth"})
        elif parse_error is not None:
            reply = _json_reply(parse_error.body())
        else:
            try:
                reply = _json_reply(self.workspace.methods[method](args))
            except SlackError as e:
                reply = _json_reply(e.body())
        return self._record(method, verb, path, headers, args, reply, dropped=fault is not None and fault.drop)

    def _webhook(self, verb: str, path: str, headers: Message, raw: bytes) -> _Reply | None:
        text = raw.decode("utf-8", "replace")
        if headers.get_content_type() == "application/x-www-form-urlencoded" and text.startswith("payload="):
            text = dict(parse_qsl(text)).get("payload", "")  # the legacy form-encoded variant
        try:
            body: Any = json.loads(text)
        except ValueError:
            body = None
        cid = self._hooks.get(path)
        fault = self._take_fault(WEBHOOK) if cid is not None else None
        if cid is None:
            reply = _text_reply(404, "no_service")
        elif fault is not None and not fault.drop:
            reply = self._fault_reply(fault, api=False)
        else:
            try:
                self.workspace.webhook_post(cid, body)
                reply = _text_reply(200, "ok")
            except SlackError as e:
                reply = _text_reply(e.status, e.error)
        recorded = body if body is not None else text
        return self._record(WEBHOOK, verb, path, headers, recorded, reply, dropped=fault is not None and fault.drop)

    def _upload(self, verb: str, path: str, headers: Message, raw: bytes) -> _Reply | None:
        fault = self._take_fault(UPLOAD)
        if fault is not None and not fault.drop:
            reply = self._fault_reply(fault, api=False)
        elif self.workspace.upload(path.removeprefix("/upload/v1/"), raw):
            reply = _text_reply(200, f"OK - {len(raw)}")
        else:
            reply = _text_reply(404, "not_found")
        return self._record(UPLOAD, verb, path, headers, raw, reply, dropped=fault is not None and fault.drop)
