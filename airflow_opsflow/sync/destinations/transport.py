"""HTTP for destinations: pooled keep-alive connections (urllib3), answers classified for the engine.

urllib3 rather than a ``requests.Session``: the same connection pool without the per-request session
machinery, which at a thousand small requests a second is most of the client's CPU. Retries are the
engine's (it knows about rate limits and splitting), so urllib3's own are off.

* 2xx: done. 429: rate limited (``Retry-After`` honoured). 408/425/5xx, timeouts, resets: transient; so is
  409 to a request with an ``Idempotency-Key`` (the same key still in progress).
* 401/403: the run stops (no batch can succeed). Other 4xx: the batch is refused (the engine splits it).

Headers (they carry credentials) never appear in errors or logs.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from airflow_opsflow.sync.destinations.base import BatchRejected, DestinationFailed, TransientError
from airflow_opsflow.sync.ratelimit import RateLimiter, parse_retry_after

TRANSIENT = frozenset({408, 425, 500, 502, 503, 504, 507, 509, 520, 521, 522, 523, 524})


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
    :param timeout: seconds to connect and to read each answer.
    :param verify: verify TLS certificates (or a CA bundle path).
    """

    base_url: str
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 30.0
    verify: bool | str = True


class HttpTransport:
    """Thread-safe JSON requests against one base URL.

    :param target: the base URL, headers and TLS settings.
    :param max_connections: pooled keep-alive connections (the sync's concurrency).
    :param limiter: the request budget shared by every sender.
    :param what: names the destination in errors.
    """

    def __init__(self, target: HttpTarget, max_connections: int = 4, limiter: RateLimiter | None = None,
                 what: str = "destination") -> None:
        import urllib3

        self.target = target
        self.limiter = limiter or RateLimiter()
        self.what = what
        parts = urlsplit(target.base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{what}: base URL must be http(s)://host[:port][/path], got {target.base_url!r}")
        self._prefix = parts.path.rstrip("/")
        origin = f"{parts.scheme}://{parts.netloc}"
        tls: dict[str, Any] = {}
        if parts.scheme == "https":
            tls = {"cert_reqs": "CERT_REQUIRED" if target.verify else "CERT_NONE"}
            if isinstance(target.verify, str):
                tls["ca_certs"] = target.verify
        timeout = urllib3.Timeout(connect=min(10.0, target.timeout), read=target.timeout)
        proxy = _proxy_for(origin)
        manager: Any = (urllib3.ProxyManager(proxy, num_pools=1, maxsize=max_connections, block=True, **tls)
                        if proxy else urllib3.PoolManager(num_pools=1, maxsize=max_connections, block=True, **tls))
        self._pool = manager.connection_from_url(origin)
        self._timeout = timeout
        self._headers = {"Content-Type": "application/json", "Accept": "application/json",
                         "User-Agent": "airflow-opsflow", **target.headers}

    def url(self, path: str) -> str:
        return f"{self._prefix}/{path.lstrip('/')}" if path else (self._prefix or "/")

    def request(self, method: str, path: str, body: Any = None, headers: Mapping[str, str] | None = None,
                raw: bytes | None = None) -> Answer:
        """One request; raises TransientError/BatchRejected/DestinationFailed unless the answer is 2xx."""
        import urllib3

        data = raw if raw is not None else (None if body is None else encode_json(body))
        sent = {**self._headers, **(headers or {})}
        self.limiter.acquire()
        try:
            r = self._pool.urlopen(method, self.url(path), body=data, headers=sent, retries=False,
                                   timeout=self._timeout, redirect=False, preload_content=True)
        except (urllib3.exceptions.TimeoutError, urllib3.exceptions.ProtocolError,
                urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError, OSError) as e:
            raise TransientError(f"{self.what}: {method} {path}: {type(e).__name__}: {_first(e)}") from None
        except urllib3.exceptions.HTTPError as e:
            raise TransientError(f"{self.what}: {method} {path}: {type(e).__name__}: {_first(e)}") from None
        answer = Answer(r.status, r.headers, r.data or b"")
        self.limiter.observe(answer.headers)
        if answer.status == 409 and "Idempotency-Key" in sent:
            # The same key is still being processed (a request of a killed run, say): try again later.
            raise TransientError(f"{self.what}: {method} {path} answered HTTP 409: a request with this "
                                 "Idempotency-Key is still in progress",
                                 parse_retry_after(answer.headers.get("Retry-After")))
        return self.check(method, path, answer)

    def check(self, method: str, path: str, a: Answer) -> Answer:
        if 200 <= a.status < 300:
            return a
        where = f"{self.what}: {method} {path} answered HTTP {a.status}"
        if a.status == 429:
            raise TransientError(f"{where} (rate limited)", parse_retry_after(a.headers.get("Retry-After")),
                                 rate_limited=True)
        if a.status in TRANSIENT:
            raise TransientError(f"{where}: {a.snippet()}", parse_retry_after(a.headers.get("Retry-After")))
        if a.status in (401, 403):
            raise DestinationFailed(f"{where}: the credentials were refused ({a.snippet()})")
        raise BatchRejected(f"HTTP {a.status}: {a.snippet()}")

    def close(self) -> None:
        self._pool.close()


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
