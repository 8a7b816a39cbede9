"""The lifecycle the testing kit's fake services share: an HTTP server on 127.0.0.1 in a daemon thread."""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Self

log = logging.getLogger(__name__)


class LocalHandler(BaseHTTPRequestHandler):
    """Request handling the fakes share: keep-alive, bodies plain or chunked, quiet logs."""

    protocol_version = "HTTP/1.1"  # keep-alive, as requests' and aiohttp's pooled sessions expect
    timeout = 10  # an idle keep-alive connection gives its thread back
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall each

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        chunks = []
        while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # optional trailers
            pass
        return b"".join(chunks)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug(f"{self.server.fake.service_name}: " + format, *args)  # type: ignore[attr-defined]


@dataclass
class JsonReply:
    """What a fake answers: a status, a JSON-able body (None: no body) and headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class JsonHandler(LocalHandler):
    """Hands every request to ``server.fake._dispatch(method, path, headers, body)`` and writes its
    :class:`JsonReply`; a ``None`` reply closes the connection unanswered (a lost answer)."""

    content_type = "application/json"

    def do_GET(self) -> None:
        raw = self._read_body()
        assert isinstance(self.server, _Server)
        reply = self.server.fake._dispatch(self.command, self.path, self.headers, raw)
        if reply is None:
            self.close_connection = True  # applied, never answered: the client sees the connection drop
            return
        payload = b"" if reply.body is None else json.dumps(reply.body).encode()
        try:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if reply.status not in (204, 304):
                self.send_header("Content-Type", self.content_type)
                self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
        except OSError:  # the client gave up (a timeout) while we answered
            self.close_connection = True

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], fake: Any, handler: type[BaseHTTPRequestHandler]) -> None:
        self.fake = fake  # handlers reach their fake as ``self.server.fake``
        super().__init__(address, handler)


class LocalHTTPService:
    """Start/stop (or ``with``) a fake service on ``http://<host>:<port>``; port 0 takes a free one.

    Subclasses set ``handler_class`` and call ``_init_http(host, port)`` in their ``__init__``.
    """

    handler_class: ClassVar[type[BaseHTTPRequestHandler]]
    service_name: ClassVar[str] = "fake"

    def _init_http(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        if self._server is not None:
            return self
        self._server = _Server((self.host, self.port), self, self.handler_class)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"{self.service_name}-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return f"http://{self.host}:{self.port}"
