"""HTTP for destinations: pooled keep-alive connections (libcurl through pycurl), answers classified.

pycurl rather than urllib3 or a ``requests.Session``: a sync sends a thousand small batches a second from
a few threads, and libcurl does the request, the wait and the answer's parsing in C without the GIL:
measured on 31 KB batches, about 50 µs of CPU a request against 340 µs for urllib3 (and 180 µs for
``http.client``), time the rest of the sync (reading, diffing, recording) gets back. Retries are the
engine's (it knows about rate limits and splitting), so nothing is retried here.

* 2xx: done. 429: rate limited (``Retry-After`` honoured). 408/425/5xx, timeouts, resets: transient; so is
  409 to a request with an ``Idempotency-Key`` (the same key still in progress).
* 401/403: the run stops (no batch can succeed). Other 4xx: the batch is refused (the engine splits it).

Headers (they carry credentials) never appear in errors or logs. Proxies come from the usual environment
variables (``https_proxy``, ``no_proxy``...), read as Python's ``urllib`` reads them; TLS certificates are
checked against the system's trust store (as Python's ``ssl`` finds it) unless ``verify`` says otherwise.
"""

from __future__ import annotations

import contextlib
import functools
import json
import queue
import threading
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from airflow_opsflow.core.retry_after import parse_retry_after
from airflow_opsflow.sync.destinations.base import BatchRejected, DestinationFailed, TransientError
from airflow_opsflow.sync.ratelimit import RateLimiter

TRANSIENT = frozenset({408, 425, 500, 502, 503, 504, 507, 509, 520, 521, 522, 523, 524})
# Only cuts absurd Retry-After values (they could not even be slept): the delivery policy's own limits
# (max_rate_limit_wait) give up far sooner.
RETRY_AFTER_MAX = 86_400.0


@dataclass
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def snippet(self) -> str:
        return " ".join(self.body[:300].decode("utf-8", "replace").split())


@dataclass
class HttpTarget:
    """Where and how to connect (resolved from an Airflow connection by the operator).

    :param base_url: ``https://host[:port][/prefix]``.
    :param headers: sent with every request (credentials included; never logged).
    :param timeout: seconds to connect (at most 10), and then to send a request and read its answer.
    :param verify: verify TLS certificates (or a CA bundle path).
    """

    base_url: str
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 30.0
    verify: bool | str = True


class HttpTransport:
    """Thread-safe JSON requests against one base URL.

    :param target: the base URL, headers and TLS settings.
    :param max_connections: pooled keep-alive connections (the sync's concurrency); a request waits for
        a free one.
    :param limiter: the request budget shared by every sender.
    :param what: names the destination in errors.
    """

    def __init__(self, target: HttpTarget, max_connections: int = 4, limiter: RateLimiter | None = None,
                 what: str = "destination") -> None:
        self.target = target
        self.limiter = limiter or RateLimiter()
        self.what = what
        parts = urlsplit(target.base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{what}: base URL must be http(s)://host[:port][/path], got {target.base_url!r}")
        self._prefix = parts.path.rstrip("/")
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._proxy = _proxy_for(self._origin) or ""  # "": no proxy (libcurl would read the environment itself)
        self._https = parts.scheme == "https"
        self._headers = {"Content-Type": "application/json", "Accept": "application/json",
                         "User-Agent": "airflow-opsflow", **_checked(target.headers, what)}
        self._idle: queue.LifoQueue[Any] = queue.LifoQueue()  # the most recent handle has a live connection
        self._slots = threading.BoundedSemaphore(max(1, max_connections))
        self._lock = threading.Lock()
        self._closed = False

    def url(self, path: str) -> str:
        """The request target for ``path``: spaces and non-ASCII characters percent-encoded (UTF-8), as
        urllib3 and requests send them (a key in a templated path may hold either)."""
        raw = f"{self._prefix}/{path.lstrip('/')}" if path else (self._prefix or "/")
        return quote(raw, safe=_PATH_SAFE)

    def request(self, method: str, path: str, body: Any = None, headers: Mapping[str, str] | None = None,
                raw: bytes | None = None, once: bool = False) -> Answer:
        """One request; raises TransientError/BatchRejected/DestinationFailed unless the answer is 2xx.

        ``once``: never sent twice. libcurl re-sends a request, silently and whatever its method, when a
        kept-alive connection closes before any answer; a sync's writes are idempotent (upserts, keys), a
        ticket's create is not, so it goes on a fresh connection, which libcurl does not retry.
        """
        import pycurl

        data = raw if raw is not None else (None if body is None else encode_json(body))
        sent = {**self._headers, **_checked(headers, self.what)} if headers else self._headers
        self.limiter.acquire()
        with self._handle() as curl:
            if once:
                curl.setopt(pycurl.FRESH_CONNECT, 1)
            try:
                status, answer_headers, chunks = self._perform(curl, method, path, data, sent, pycurl)
            finally:
                if once:
                    curl.setopt(pycurl.FRESH_CONNECT, 0)
        answer = Answer(status, answer_headers, b"".join(chunks))
        self.limiter.observe(answer.headers)
        if answer.status == 409 and "Idempotency-Key" in sent:
            # The same key is still being processed (a request of a killed run, say): try again later.
            raise TransientError(f"{self.what}: {method} {path} answered HTTP 409: a request with this "
                                 "Idempotency-Key is still in progress",
                                 _retry_after(answer))
        return self.check(method, path, answer)

    def _perform(self, curl: Any, method: str, path: str, data: bytes | None, sent: Mapping[str, str],
                 pycurl: Any) -> tuple[int, Headers, list[bytes]]:
        chunks: list[bytes] = []
        answer_headers = Headers()
        curl.setopt(pycurl.URL, self._origin + self.url(path))
        # "Expect:" stops libcurl from asking for a 100-continue before bodies over 1 KB (a round trip).
        # "Name;" is how libcurl sends a header with an empty value ("Name:" would remove the header).
        curl.setopt(pycurl.HTTPHEADER, [(f"{k}: {v}" if v != "" else f"{k};").encode("latin-1")
                                        for k, v in sent.items()] + [b"Expect:"])
        curl.setopt(pycurl.WRITEFUNCTION, chunks.append)
        curl.setopt(pycurl.HEADERFUNCTION, answer_headers.feed)
        if data is None and method in _BODY_METHODS:
            data = b""  # "Content-Length: 0", as http.client sends (some servers answer 411 without)
        if data is not None:
            curl.setopt(pycurl.POSTFIELDS, data)  # a POST with this body and its length...
            if method != "POST":
                curl.setopt(pycurl.CUSTOMREQUEST, method)  # ... under another verb
        elif method == "HEAD":
            curl.setopt(pycurl.NOBODY, 1)
        elif method != "GET":
            curl.setopt(pycurl.CUSTOMREQUEST, method)  # a DELETE, say: no body
        try:
            curl.perform()
        except pycurl.error as e:
            code, message = e.args[0], (e.args[1] if len(e.args) > 1 else "")
            where = f"{self.what}: {method} {path}: {_CURL_ERRORS.get(code, 'ConnectionError')}: {str(message)[:200]}"
            if code in _TLS_REFUSED:  # no retry can fix a certificate the trust store refuses
                raise DestinationFailed(f"{where} (check the connection's TLS settings)") from None
            raise TransientError(where) from None
        return int(curl.getinfo(pycurl.RESPONSE_CODE)), answer_headers, chunks

    @contextlib.contextmanager
    def _handle(self) -> Iterator[Any]:
        """A curl handle (its connection kept alive between requests) for this request alone."""
        import pycurl

        self._slots.acquire()
        try:
            try:
                curl = self._idle.get_nowait()
            except queue.Empty:
                curl = self._new_handle(pycurl)
            try:
                yield curl
            finally:
                curl.reset()  # per-request options go; the live connection stays
                self._configure(curl, pycurl)
                with self._lock:  # close() either finds the handle idle or sees it closed here
                    if self._closed:
                        curl.close()
                    else:
                        self._idle.put(curl)
        finally:
            self._slots.release()

    def _new_handle(self, pycurl: Any) -> Any:
        if self._closed:
            raise TransientError(f"{self.what}: the connection pool is closed")
        curl = pycurl.Curl()
        self._configure(curl, pycurl)
        return curl

    def _configure(self, curl: Any, pycurl: Any) -> None:
        """The options every request of this transport shares."""
        t = self.target
        curl.setopt(pycurl.NOSIGNAL, 1)  # threads: no SIGALRM for timeouts
        connect = min(10.0, t.timeout)
        curl.setopt(pycurl.CONNECTTIMEOUT_MS, int(connect * 1000))
        curl.setopt(pycurl.TIMEOUT_MS, int((connect + t.timeout) * 1000))  # connecting, then the exchange
        curl.setopt(pycurl.FOLLOWLOCATION, 0)
        curl.setopt(pycurl.PROXY, self._proxy)
        curl.setopt(pycurl.NOPROXY, "")
        if self._https:
            curl.setopt(pycurl.SSL_VERIFYPEER, 1 if t.verify else 0)
            curl.setopt(pycurl.SSL_VERIFYHOST, 2 if t.verify else 0)
            cafile, capath = (t.verify, None) if isinstance(t.verify, str) else _system_cas()
            if cafile:
                curl.setopt(pycurl.CAINFO, cafile)
            if capath:
                curl.setopt(pycurl.CAPATH, capath)

    def check(self, method: str, path: str, a: Answer) -> Answer:
        if 200 <= a.status < 300:
            return a
        where = f"{self.what}: {method} {path} answered HTTP {a.status}"
        # Classified, never retried here: Deliverer._send retries per batch by hand (hot path, bench/sync.py).
        if a.status == 429:
            raise TransientError(f"{where} (rate limited)", _retry_after(a), rate_limited=True)
        if a.status in TRANSIENT:
            raise TransientError(f"{where}: {a.snippet()}", _retry_after(a))
        if a.status in (401, 403):
            raise DestinationFailed(f"{where}: the credentials were refused ({a.snippet()})")
        raise BatchRejected(f"HTTP {a.status}: {a.snippet()}", a.status)

    def close(self) -> None:
        """Close every connection (handles in use close when their request ends)."""
        with self._lock:
            self._closed = True
            while True:
                try:
                    self._idle.get_nowait().close()
                except queue.Empty:
                    return


class Headers(dict[str, str]):
    """An answer's headers, looked up case-insensitively (the last value of a repeated header wins)."""

    def feed(self, line: bytes) -> None:
        """libcurl's header callback: one raw header line (status lines start a new header block)."""
        text = line.decode("iso-8859-1").strip()
        if text.startswith("HTTP/"):
            self.clear()  # an interim answer's (100 Continue) or a proxy's headers
        elif ":" in text:
            name, _, value = text.partition(":")
            self[name.strip().lower()] = value.strip()

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def get(self, name: str, default: Any = None) -> Any:
        return super().get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return super().__contains__(name.lower() if isinstance(name, str) else name)


_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# Kept as they are in a request target: RFC 3986's reserved and unreserved characters, and "%" (a path
# template may hold escapes already).
_PATH_SAFE = "/?#[]@!$&'()*+,;=:%~-._"
# libcurl error codes, named as the exceptions other clients raise (the message says the rest).
_TLS_REFUSED = frozenset({58, 60, 77})  # client certificate, peer certificate, CA bundle
_CURL_ERRORS = {5: "ProxyError", 6: "NameResolutionError", 7: "ConnectionRefusedError", 28: "TimeoutError",
                35: "SSLError", 52: "RemoteDisconnected", 55: "ConnectionResetError", 56: "ConnectionResetError",
                58: "SSLError", 60: "SSLCertVerificationError", 77: "SSLError", 97: "ProxyError"}


def _retry_after(answer: Answer) -> float | None:
    return parse_retry_after(answer.headers.get("Retry-After"), maximum=RETRY_AFTER_MAX)


def _checked(headers: Mapping[str, str] | None, what: str) -> Mapping[str, str]:
    """Headers as libcurl sends them, one line each: a name or value with a line break would smuggle
    another header in (http.client refuses those too)."""
    for name, value in (headers or {}).items():
        if not name or any(c in f"{name}{value}" for c in "\r\n\0") or ":" in name or ";" in name:
            raise ValueError(f"{what}: header {name!r} has a line break, NUL or colon in its name or value")
        try:
            f"{name}{value}".encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(f"{what}: header {name!r} is not Latin-1 text (HTTP headers cannot carry it)") from None
    return headers or {}


@functools.cache  # handles are reconfigured after every request: look the paths up once
def _system_cas() -> tuple[str | None, str | None]:
    """The trust store Python's ``ssl`` uses (libcurl's bundled build might look elsewhere)."""
    import os
    import ssl

    paths = ssl.get_default_verify_paths()
    cafile = paths.cafile or (paths.openssl_cafile if os.path.exists(paths.openssl_cafile) else None)
    capath = paths.capath or (paths.openssl_capath if os.path.isdir(paths.openssl_capath) else None)
    if cafile is None and capath is None:
        try:
            import certifi

            cafile = certifi.where()
        except ImportError:
            pass
    return cafile, capath


def _proxy_for(origin: str) -> str | None:
    host = urlsplit(origin).hostname or ""
    if urllib.request.proxy_bypass(host) or host in ("127.0.0.1", "localhost", "::1"):
        return None
    proxies = urllib.request.getproxies()
    return proxies.get(urlsplit(origin).scheme)


def encode_json(body: Any) -> bytes:
    """Compact JSON (orjson: an order of magnitude faster than json on record batches); values neither
    knows become strings, and what orjson refuses (integers over 64 bits) goes through json."""
    import orjson

    try:
        return orjson.dumps(body, default=str, option=orjson.OPT_NON_STR_KEYS)
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(body, separators=(",", ":"), default=str).encode()


def _first(e: BaseException) -> str:
    return str(e).splitlines()[0][:200] if str(e) else ""
