"""The HTTP transport of the sync destinations (libcurl) against real local servers: methods and bodies,
timeouts, lost answers, refused connections, rate-limit headers, TLS verification, and no credential in
any error."""

from __future__ import annotations

import http.server
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from airflow_opsflow_testing.recording_http import RecordingHTTPServer

from airflow_opsflow.sync.destinations.base import BatchRejected, DestinationFailed, TransientError
from airflow_opsflow.sync.destinations.transport import HttpTarget, HttpTransport

SECRET = "Bearer s3cret-token"


@pytest.fixture
def api(recording_http: RecordingHTTPServer) -> RecordingHTTPServer:
    recording_http.reset()
    recording_http.keyed("/v1/items")
    return recording_http


def transport(api: RecordingHTTPServer, timeout: float = 5.0, connections: int = 2) -> HttpTransport:
    return HttpTransport(HttpTarget(api.url + "/v1", {"Authorization": SECRET}, timeout=timeout), connections,
                         what="items API")


def test_methods_bodies_and_headers_reach_the_server(api: RecordingHTTPServer) -> None:
    t = transport(api)
    assert t.request("POST", "/items", [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}]).status == 200
    assert t.request("PUT", "/items/3", {"v": "c"}).status in (200, 201)
    assert t.request("PATCH", "/items/3", {"v": "d"}, headers={"X-Trace": "t1"}).status == 200
    assert t.request("DELETE", "/items/2").status == 204
    got = t.request("GET", "/items/3")
    assert got.json() == {"id": "3", "v": "d"} and got.headers["content-type"].startswith("application/json")
    assert got.headers.get("Content-Type") == got.headers["content-type"]  # any case
    sent = api.requests
    assert [(r.method, r.path) for r in sent] == [("POST", "/v1/items"), ("PUT", "/v1/items/3"),
                                                  ("PATCH", "/v1/items/3"), ("DELETE", "/v1/items/2"),
                                                  ("GET", "/v1/items/3")]
    assert sent[0].body == [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}]
    assert all(r.headers["Authorization"] == SECRET for r in sent) and sent[2].headers["X-Trace"] == "t1"
    assert sent[3].body == b"" and "Expect" not in sent[0].headers  # no 100-continue round trip
    assert api.state("/v1/items") == {"1": {"id": 1, "v": "a"}, "3": {"id": "3", "v": "d"}}
    t.close()


def test_a_hung_answer_times_out_and_the_connection_recovers(api: RecordingHTTPServer) -> None:
    t = transport(api, timeout=1.0, connections=1)
    api.hang_next(3.0)
    with pytest.raises(TransientError, match="items API: POST /items: TimeoutError") as caught:
        t.request("POST", "/items", [{"id": 7}])
    assert SECRET not in str(caught.value)
    assert t.request("POST", "/items", [{"id": 8}]).status == 200  # the same (only) handle, a new connection


def test_a_lost_answer_and_a_refused_connection_are_transient(api: RecordingHTTPServer) -> None:
    t = transport(api)
    api.drop_response_next()
    with pytest.raises(TransientError, match=r"RemoteDisconnected|ConnectionReset"):
        t.request("POST", "/items", [{"id": 1}])
    assert t.request("POST", "/items", [{"id": 2}]).status == 200
    closed = HttpTransport(HttpTarget("http://127.0.0.1:9/v1", {"Authorization": SECRET}), 1, what="down API")
    with pytest.raises(TransientError, match="down API: POST /x: ConnectionRefusedError") as caught:
        closed.request("POST", "/x", {"id": 1})
    assert SECRET not in str(caught.value)


def test_answers_are_classified(api: RecordingHTTPServer) -> None:
    t = transport(api)
    api.fail_next(1, status=429, retry_after=2)
    with pytest.raises(TransientError) as limited:
        t.request("POST", "/items", [{"id": 1}])
    assert limited.value.rate_limited and limited.value.retry_after == 2
    api.fail_next(1, status=503, retry_after=1)
    with pytest.raises(TransientError) as unavailable:
        t.request("POST", "/items", [{"id": 1}])
    assert not unavailable.value.rate_limited and unavailable.value.retry_after == 1
    with pytest.raises(BatchRejected, match="HTTP 400"):
        t.request("POST", "/items", [{"no": "key"}])
    api.require_auth("Bearer other")
    with pytest.raises(DestinationFailed, match="credentials were refused") as refused:
        t.request("POST", "/items", [{"id": 1}])
    assert SECRET not in str(refused.value)


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A local HTTPS server with a self-signed certificate for 127.0.0.1 (and that certificate's path)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out",
                    str(cert)], check=True, capture_output=True)

    class Ok(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}", cert
    server.shutdown()


def test_tls_certificates_are_verified_unless_told_otherwise(tls_server: tuple[str, Path]) -> None:
    url, cert = tls_server
    untrusted = HttpTransport(HttpTarget(url), 1, what="TLS API")
    with pytest.raises(DestinationFailed, match=r"TLS API: POST /x: SSLCertVerificationError.*TLS settings"):
        untrusted.request("POST", "/x", {"id": 1})
    assert HttpTransport(HttpTarget(url, verify=str(cert)), 1).request("POST", "/x", {"id": 1}).status == 200
    assert HttpTransport(HttpTarget(url, verify=False), 1).request("POST", "/x", {"id": 1}).status == 200


def test_headers_cannot_smuggle_other_headers(api: RecordingHTTPServer) -> None:
    with pytest.raises(ValueError, match="items API: header 'X-A' has a line break"):
        HttpTransport(HttpTarget(api.url, {"X-A": "v\r\nX-Injected: 1"}), 1, what="items API")
    t = transport(api)
    with pytest.raises(ValueError, match="header 'X-B'"):
        t.request("POST", "/items", [{"id": 1}], headers={"X-B": "a\nb"})
    assert api.requests == []


def test_paths_are_percent_encoded_and_bodiless_writes_say_so(api: RecordingHTTPServer) -> None:
    # Keys end up in templated paths: spaces and non-ASCII characters go out percent-encoded (UTF-8).
    t = transport(api)
    assert t.request("PUT", "/items/a b", {"v": 1}).status in (200, 201)
    assert t.request("PUT", "/items/José", {"v": 2}).status in (200, 201)
    assert t.request("POST", "/archive", headers={"X-Empty": ""}).status == 200
    sent = api.requests
    assert [r.path for r in sent] == ["/v1/items/a b", "/v1/items/José", "/v1/archive"]  # as the server decodes
    assert sorted(api.state("/v1/items")) == ["José", "a b"]
    assert sent[2].headers["Content-Length"] == "0" and sent[2].headers["X-Empty"] == ""
    with pytest.raises(ValueError, match="not Latin-1"):
        t.request("POST", "/items", [{"id": 1}], headers={"X-Name": "Łukasz"})
