"""A fast local HTTP sink for the reverse-ETL benchmark: accepts JSON batches, counts requests and records.

    python bench/_sync_sink.py [--port 0] [--count json|key:NAME|none]   # prints "PORT <n>", serves until killed
    python bench/_sync_sink.py --loadtest [--count ...]                 # measure its ceiling

Any POST/PUT/PATCH body counts as one request and is answered ``200 {"ok":true}`` on a keep-alive
HTTP/1.1 connection. Records are counted from the body: a JSON array is its length, an object holding a
list under ``records``/``inputs``/``data``/``rows`` that list's length, any other object one record.
``--count key:o_orderkey`` counts occurrences of ``"o_orderkey"`` in the raw bytes instead (no parse),
``--count none`` counts nothing but requests. ``GET /_stats`` returns the counters as JSON,
``POST /_reset`` zeroes them; neither is counted.

Written on a raw ``asyncio.Protocol`` with the ``httptools`` (llhttp) parser because http.server costs
a thread and several Python-level header parses per request, which would make the sink, not the peer,
the bottleneck. Measured ceiling (``--loadtest``: 4 raw-socket client processes, keep-alive, one request
in flight each, 100-record ``orders`` batches of 31 KB, on the 2-core benchmark machine with the
clients sharing its CPUs): about 5,500 requests/s (550k records/s) with ``--count json`` (the JSON
parse is most of the cost), about 15,000 requests/s with ``--count key:o_orderkey``. The peers send at
most ~300 requests/s (dlt's load phase; drt at batch 100 sends ~45/s), so the sink takes a few percent
of one core.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import httptools

OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
BAD = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
LIST_KEYS = ("records", "inputs", "data", "rows")


class Counters:
    def __init__(self, count: str) -> None:
        self.count = count
        self.key = f'"{count[4:]}"'.encode() if count.startswith("key:") else b""
        self.reset()

    def reset(self) -> None:
        self.requests = self.records = self.bytes = self.unparsed = 0
        self.first_at: float | None = None
        self.last_at: float | None = None

    def add(self, body: bytes) -> None:
        now = time.time()
        if self.first_at is None:
            self.first_at = now
        self.last_at = now
        self.requests += 1
        self.bytes += len(body)
        if self.key:
            self.records += body.count(self.key)
        elif self.count == "json":
            self.records += self._records(body)

    def _records(self, body: bytes) -> int:
        try:
            doc = json.loads(body)
        except ValueError:
            self.unparsed += 1
            return 0
        if isinstance(doc, list):
            return len(doc)
        if isinstance(doc, dict):
            for key in LIST_KEYS:
                if isinstance(doc.get(key), list):
                    return len(doc[key])
            return 1
        self.unparsed += 1
        return 0

    def as_json(self) -> bytes:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return json.dumps(
            {
                "requests": self.requests,
                "records": self.records,
                "bytes": self.bytes,
                "unparsed": self.unparsed,
                "first_at": self.first_at,
                "last_at": self.last_at,
                "count": self.count,
                "peak_rss_mb": usage.ru_maxrss / 1024,
                "cpu_s": usage.ru_utime + usage.ru_stime,  # the sink's own CPU since it started
            }
        ).encode()


class SinkProtocol(asyncio.Protocol):
    """One connection; httptools calls the ``on_*`` methods while ``feed_data`` runs (pipelining works)."""

    def __init__(self, counters: Counters) -> None:
        self.counters = counters
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        # The parser refers back to this protocol, so a closed connection lives on until a full GC: it must
        # not hold its last body meanwhile (drt opens a connection per batch; at batch 10,000 bodies of
        # 3.3 MB piled up to 800 MB before this).
        self.body = []
        self.transport = None

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.write(BAD)
                self.transport.close()

    def on_message_begin(self) -> None:
        self.url = b""
        self.body = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        assert self.transport is not None
        method = self.parser.get_method()
        if self.url.startswith(b"/_stats"):
            payload = self.counters.as_json()
            head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
            self.transport.write(head.encode() + payload)
        elif self.url.startswith(b"/_reset"):
            self.counters.reset()
            self.transport.write(OK)
        elif method in (b"POST", b"PUT", b"PATCH"):
            self.counters.add(b"".join(self.body))
            self.body = []
            self.transport.write(OK)
        else:
            self.transport.write(NOT_FOUND)
        if not self.parser.should_keep_alive():
            self.transport.close()


async def serve(port: int, count: str) -> None:
    counters = Counters(count)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SinkProtocol(counters), "127.0.0.1", port, backlog=1024)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def _call(url: str, method: str) -> dict[str, Any]:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(request, timeout=10) as response:
        return dict(json.loads(response.read()))


def stats(sink_url: str) -> dict[str, Any]:
    """The counters of the sink whose base URL (scheme, host, port) is ``sink_url``."""
    return _call(sink_url.rstrip("/") + "/_stats", "GET")


def reset(sink_url: str) -> None:
    _call(sink_url.rstrip("/") + "/_reset", "POST")


class Sink:
    """The sink in its own process (so its CPU never competes with the GIL of whoever measures)."""

    def __init__(self, count: str = "json", port: int = 0) -> None:
        self.count, self.port = count, port
        self._proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Sink:
        self._proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--port", str(self.port), "--count", self.count],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(f"sink did not start: {line!r}")
        self.port = int(line.split()[1])
        return self

    def stats(self) -> dict[str, Any]:
        return stats(self.url)

    def reset(self) -> None:
        reset(self.url)

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5)
            if self._proc.poll() is None:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    def __enter__(self) -> Sink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- ceiling measurement ------------------------------------------------------------------------------


def _sample_batch(records: int) -> bytes:
    """A JSON array of ``orders``-shaped records, about the size the peers send."""
    row = {
        "o_orderkey": 1,
        "o_custkey": 36901,
        "o_orderstatus": "O",
        "o_totalprice": "173665.47",
        "o_orderdate": "1996-01-02",
        "o_orderpriority": "5-LOW          ",
        "o_clerk": "Clerk#000000951",
        "o_shippriority": 0,
        "o_comment": "nstructions sleep furiously among ",
        "updated_at": "2025-01-01T00:00:00.000000+00:00",
    }
    return json.dumps([{**row, "o_orderkey": i} for i in range(records)]).encode()


def _client(port: int, seconds: float, body: bytes, results: Any) -> None:
    """Raw-socket keep-alive client: one request in flight, the response read by Content-Length."""
    request = (
        f"POST /sync HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    done = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sock.sendall(request)
        received = b""
        while len(received) < len(OK):  # every answer here is exactly OK
            received += sock.recv(4096)
        done += 1
    sock.close()
    results.put(done)


def loadtest(count: str, clients: int = 4, records: int = 100, seconds: float = 5.0) -> dict[str, float]:
    body = _sample_batch(records)
    with Sink(count) as sink:
        results: Any = multiprocessing.Queue()
        procs = [
            multiprocessing.Process(target=_client, args=(sink.port, seconds, body, results)) for _ in range(clients)
        ]
        for proc in procs:
            proc.start()
        sent = sum(results.get() for _ in procs)
        for proc in procs:
            proc.join()
        stats = sink.stats()
    span = (stats["last_at"] or 0) - (stats["first_at"] or 0) or seconds
    return {
        "requests_per_s": round(stats["requests"] / span),
        "records_per_s": round(stats["records"] / span),
        "requests": stats["requests"],
        "sent": sent,
        "body_bytes": len(body),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--count", default="json", help="json (default), key:NAME or none")
    parser.add_argument("--loadtest", action="store_true", help="measure the sink's ceiling and exit")
    args = parser.parse_args()
    if args.loadtest:
        print(json.dumps(loadtest(args.count)))
        return 0
    asyncio.run(serve(args.port, args.count))
    return 0


if __name__ == "__main__":
    sys.exit(main())
